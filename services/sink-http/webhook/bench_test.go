package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkDeliver measures the engine against a local receiver: 1 KiB messages, 10 per Deliver
// call (a runtime batch), 8 in flight; ns/op and allocs/op are per message.
//
//	go test -run '^$' -bench Deliver -benchmem ./services/sink-http/webhook/
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"single", Config{URL: srv.URL, MaxInFlight: 8}},
		{"single-signed", Config{URL: srv.URL, MaxInFlight: 8, Secret: "whsec_c2VjcmV0LWtleS1ieXRlcw=="}},
		{"array", Config{URL: srv.URL, MaxInFlight: 1, BatchSize: 10}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(c.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := bytes.Repeat([]byte("x"), 1024)
			msgs := make([]Message, 10)
			for i := range msgs {
				msgs[i] = Message{Topic: "/default/bench", Offset: uint64(i), Key: fmt.Sprintf("k%d", i), Payload: payload,
					Attributes: map[string]string{"content-type": "application/json"}, PublishTime: time.Now()}
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n%len(msgs) == 0 {
					for _, err := range s.Deliver(context.Background(), msgs) {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				n++
			}
		})
	}
}
