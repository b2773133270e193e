package watermark

import (
	"fmt"
	"testing"
)

func TestPrefixAdvancesInSourceOrder(t *testing.T) {
	var w Tracker[string]
	for _, p := range []string{"lsn1", "lsn1", "lsn2", "lsn3"} {
		w.Add(p)
	}
	steps := []struct {
		seq  uint64
		want string
	}{{2, "[]"}, {1, "[]"}, {1, "[]"}, {0, "[lsn1 lsn1 lsn2]"}, {9, "[]"}, {3, "[lsn3]"}, {0, "[]"}}
	for _, s := range steps {
		if got := fmt.Sprint(w.Done(s.seq, nil)); got != s.want {
			t.Fatalf("Done(%d) = %s, want %s", s.seq, got, s.want)
		}
	}
	if w.Pending() != 0 || w.Add("x") != 4 {
		t.Fatal("sequence numbers must continue")
	}
}
