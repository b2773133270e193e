// Package filesink is the minimal example sink: it appends every JSON message to a JSON-lines file.
// Payloads that are not JSON objects are invalid data (they go to DLQ_TOPIC).
package filesink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"go.opentelemetry.io/otel/metric"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// Config is the runtime's sink settings plus this connector's own.
type Config struct {
	runtime.SinkConfig
	Path string `env:"OUTPUT_PATH,required" desc:"JSON-lines file the messages are appended to"`
}

// Sink appends records to a file.
type Sink struct {
	path    string
	log     *slog.Logger
	written metric.Int64Counter
	mu      sync.Mutex
	f       *os.File
}

// New returns a sink for cfg that logs with the runtime's logger and counts the bytes it appends.
func New(cfg *Config, res runtime.Resources) (runtime.SinkConnector, error) {
	written, err := res.Meter.Int64Counter("filesink.bytes.written", metric.WithUnit("By"),
		metric.WithDescription("Bytes appended to OUTPUT_PATH."))
	if err != nil {
		return nil, err
	}
	return &Sink{path: cfg.Path, log: res.Logger, written: written}, nil
}

// Initialize opens the file.
func (s *Sink) Initialize(context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f, err = os.OpenFile(s.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		s.log.Info("appending messages", "path", s.path)
	}
	return runtime.Fatal(err) // nil stays nil
}

// Process validates and appends one record; it returns once the line is written.
func (s *Sink) Process(_ context.Context, r *runtime.SinkRecord) error {
	var obj map[string]any
	if err := r.PayloadJSON(&obj); err != nil {
		return err // already classified as invalid data
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.f.Write(append(r.Payload(), '\n'))
	if err != nil {
		return runtime.Retryable(fmt.Errorf("append to %s: %w", s.path, err))
	}
	s.written.Add(context.Background(), int64(n))
	return nil
}

// HealthCheck reports whether the file is open.
func (s *Sink) HealthCheck(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("%s not open", s.path)
	}
	return nil
}

// Shutdown syncs and closes the file.
func (s *Sink) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
