package webhook

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// sender is the suite's external system: a webhook provider that posts its events one at a time,
// in order, each retried until answered 2xx (503 while Danube is away, connection refused while no
// connector listens), to the address every connector of the suite listens on.
type sender struct {
	url   string
	mu    sync.Mutex
	queue [][]byte
	busy  bool
	idle  *sync.Cond
}

func newSender(url string) *sender {
	s := &sender{url: url}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// emit queues payloads; a goroutine posts them while the queue is not empty.
func (s *sender) emit(payloads ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, payloads...)
	if !s.busy {
		s.busy = true
		go s.run()
	}
}

func (s *sender) run() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.busy = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		p := s.queue[0]
		s.mu.Unlock()
		for !s.post(p) {
			time.Sleep(20 * time.Millisecond)
		}
		s.mu.Lock()
		s.queue = s.queue[1:]
		s.mu.Unlock()
	}
}

func (s *sender) post(p []byte) bool {
	req, err := http.NewRequest(http.MethodPost, s.url, strings.NewReader(string(p)))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Key", keyOf(p))
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// wait waits until every queued payload was accepted.
func (s *sender) wait(t *testing.T) {
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		for s.busy {
			s.idle.Wait()
		}
		s.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the sender's events were not all accepted")
	}
}

func keyOf(p []byte) string {
	var i int
	_, _ = fmt.Sscanf(string(p), `{"i":%d}`, &i)
	return fmt.Sprintf("device-%d", i%3)
}

// TestSourceSuite runs the runtime's source conformance cases with HTTP POSTs as the external
// system: order, crash and restart, broker restart, a long broker outage, graceful drain.
func TestSourceSuite(t *testing.T) {
	addr := freeAddr(t)
	snd := newSender("http://" + addr + "/in")
	runtimetest.SourceSuite[Seq]{
		New: func(t *testing.T, sc *runtime.SourceConfig) runtime.SourceConnector[Seq] {
			var cfg Config
			if err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=" + sc.DanubeServiceURL, "CONNECTOR_NAME=" + sc.ConnectorName,
				"WEBHOOK_ADDR=" + addr, "WEBHOOK_ROUTES=/in key=header:X-Key", "DANUBE_TOPIC=" + sc.Topic,
				"WEBHOOK_ACK_TIMEOUT_MS=1000", "WEBHOOK_WRITE_TIMEOUT_MS=5000"}); err != nil {
				t.Fatal(err)
			}
			cfg.SourceConfig = *sc
			src, err := newSource(&cfg, runtime.NewResources(&cfg.Common))
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Emit: func(t *testing.T, payloads ...[]byte) { snd.emit(payloads...) },
		Reset: func(t *testing.T) {
			snd.wait(t)
		},
		Payload: func(i int) []byte { return fmt.Appendf(nil, `{"i":%d}`, i) },
		Key:     func(i int) string { return keyOf(fmt.Appendf(nil, `{"i":%d}`, i)) },
	}.Run(t)
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
