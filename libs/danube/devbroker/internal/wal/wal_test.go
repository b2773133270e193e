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
	l, err := Open(path, func(r Record) error { recs = append(recs, r); return nil })
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
				l.Append(uint64(i), []byte("ab"))
			}
			l.Close()
			b, _ := os.ReadFile(path)
			os.WriteFile(path, tc.corrupt(b), 0o644)
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
