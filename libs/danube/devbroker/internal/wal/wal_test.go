package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func collect(t *testing.T, path string) ([]Record, *Log) {
	t.Helper()
	var recs []Record
	l, err := Open(path, Options{}, func(r Record) error { recs = append(recs, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return recs, l
}

func TestAppendReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.log")
	_, l := collect(t, path)
	for i := 0; i < 3; i++ {
		if err := l.Append(uint64(i), []byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(7, nil); err == nil || err.Error() != "wal: append offset 7, want 3" {
		t.Fatalf("gap append error = %v", err)
	}
	l.Close()
	recs, l := collect(t, path)
	defer l.Close()
	if len(recs) != 3 || l.Next() != 3 || string(recs[2].Payload) != "m2" || recs[2].Offset != 2 {
		t.Fatalf("replayed %v next %d", recs, l.Next())
	}
}

func TestCorruptionTruncates(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
		want    int
	}{
		{"torn header", func(b []byte) []byte { return append(b, 1, 2, 3) }, 3},
		{"torn payload", func(b []byte) []byte { return b[:len(b)-1] }, 2},
		{"bad crc in middle", func(b []byte) []byte { b[headerSize+2+headerSize] ^= 0xff; return b }, 1},
		{"absurd length", func(b []byte) []byte { return append(b, 3, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0) }, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.log")
			_, l := collect(t, path)
			for i := 0; i < 3; i++ {
				if err := l.Append(uint64(i), []byte("ab")); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.corrupt(b), 0o644); err != nil {
				t.Fatal(err)
			}
			recs, l := collect(t, path)
			if len(recs) != tc.want || l.Next() != uint64(tc.want) {
				t.Fatalf("kept %d records next %d, want %d", len(recs), l.Next(), tc.want)
			}
			if err := l.Append(uint64(tc.want), []byte("new")); err != nil {
				t.Fatal(err)
			}
			l.Close()
			recs, l = collect(t, path)
			l.Close()
			if len(recs) != tc.want+1 || string(recs[tc.want].Payload) != "new" {
				t.Fatalf("after append: %d records", len(recs))
			}
		})
	}
}

func TestSyncThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.log")
	syncs := 0
	var failWith error
	l, err := Open(path, Options{Sync: func(f *os.File) error {
		syncs++
		if failWith != nil {
			return failWith
		}
		return f.Sync()
	}}, func(Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if syncs != 1 { // Open syncs what it replayed and truncated
		t.Fatalf("open: %d syncs", syncs)
	}
	for i := 0; i < 3; i++ {
		if err := l.Append(uint64(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// One fsync covers every record appended before it started.
	if err := l.SyncThrough(1); err != nil || syncs != 2 {
		t.Fatalf("SyncThrough(1): %v, %d syncs", err, syncs)
	}
	if err := l.SyncThrough(3); err != nil || syncs != 2 {
		t.Fatalf("SyncThrough(3) after a covering fsync: %v, %d syncs", err, syncs)
	}
	failWith = fmt.Errorf("disk gone")
	if err := l.Append(3, []byte("y")); err != nil { // buffered: only the fsync fails
		t.Fatal(err)
	}
	if err := l.SyncThrough(4); err == nil || err.Error() != "wal: sync: disk gone" {
		t.Fatalf("SyncThrough with a failing fsync: %v", err)
	}
	failWith = nil
	if err := l.SyncThrough(4); err != nil || syncs != 4 {
		t.Fatalf("retry: %v, %d syncs", err, syncs)
	}
}

func TestReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.log")
	_, l := collect(t, path)
	for i, p := range []string{"a", "b"} {
		if err := l.Append(uint64(i), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Reset(7); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(7, []byte("c")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs, l := collect(t, path)
	defer l.Close()
	if len(recs) != 1 || recs[0].Offset != 7 || l.Next() != 8 {
		t.Fatalf("after reset: %v next %d", recs, l.Next())
	}
}
