package chsink

import (
	"fmt"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chtype"
)

// BenchmarkConvert measures decoding and converting one 1 KiB message (the bench case's row).
func BenchmarkConvert(b *testing.B) {
	sc := &schema{byName: map[string]int{}}
	for i, c := range []struct{ n, t string }{{"id", "UInt64"}, {"ts", "DateTime"}, {"kind", "String"}, {"payload", "String"}} {
		typ, _ := chtype.Parse(c.t)
		sc.cols = append(sc.cols, column{name: c.n, typ: typ})
		sc.byName[c.n] = i
	}
	s := &Sink{cfg: &Config{}}
	p := fmt.Appendf(nil, `{"id":%d,"ts":"2026-01-02T03:04:05Z","kind":%q,"payload":%q}`, 5, "click", strings.Repeat("x", 940))
	row := make([]any, 4)
	present := make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.convert(sc, p, row, present, &misfits{}); err != nil {
			b.Fatal(err)
		}
	}
}
