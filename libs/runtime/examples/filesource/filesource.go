// Package filesource is the minimal example source: it tails a JSON-lines file and publishes each
// line, committing the byte offset to a checkpoint file once Danube acked everything before it.
// A line's "topic" and "key" fields, when present, pick the destination topic and routing key; a
// line with "skip": true is filtered out but still advances the checkpoint (a checkpoint record).
// With LOCK_PATH set, only the instance holding the lock reads (the other stays not ready).
package filesource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// Config is the runtime's source settings plus this connector's own.
type Config struct {
	runtime.SourceConfig
	Input      string `env:"INPUT_PATH,required" desc:"JSON-lines file to tail"`
	Checkpoint string `env:"CHECKPOINT_PATH,required" desc:"file holding the committed byte offset"`
	Lock       string `env:"LOCK_PATH" desc:"leadership lock file; empty = always leader"`
}

// Offset is the source's position: the byte offset after a line.
type Offset int64

// Source tails a file.
type Source struct {
	runtime.SourceBase // a no-op Initialize; there is no default Commit
	cfg                *Config
	log                *slog.Logger
	offset             int64       // next byte to read (Poll's goroutine only)
	leader             atomic.Bool // readiness: holds the lock
	lock               *os.File
}

// New returns a source for cfg that logs with the runtime's logger.
func New(cfg *Config, res runtime.Resources) (runtime.SourceConnector[Offset], error) {
	return &Source{cfg: cfg, log: res.Logger}, nil
}

// resume reads the committed offset.
func (s *Source) resume() error {
	b, err := os.ReadFile(s.cfg.Checkpoint)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		s.offset, err = strconv.ParseInt(string(b), 10, 64)
	}
	return runtime.Fatal(err)
}

// Poll returns the complete lines after the offset, at most BATCH_SIZE of them; nil at end of file.
func (s *Source) Poll(ctx context.Context) ([]runtime.SourceRecord[Offset], error) {
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	f, err := os.Open(s.cfg.Input)
	if err != nil {
		return nil, runtime.Retryable(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, err := f.ReadAt(buf, s.offset)
	if err != nil && !errors.Is(err, io.EOF) { // EOF: the file ends within buf
		return nil, runtime.Retryable(err)
	}
	var recs []runtime.SourceRecord[Offset]
	for rest := buf[:n]; len(recs) < s.cfg.BatchSize; {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			break // incomplete line: wait for the writer
		}
		s.offset += int64(len(line) + 1)
		rest = after
		var meta struct {
			Topic, Key string
			Skip       bool
		}
		_ = json.Unmarshal(line, &meta) // a line that is not a JSON object has no topic, key or skip
		if meta.Skip {
			recs = append(recs, runtime.Checkpoint(Offset(s.offset)))
			continue
		}
		recs = append(recs, runtime.NewSourceRecord(meta.Topic, bytes.Clone(line), Offset(s.offset)).WithKey(meta.Key))
	}
	return recs, nil
}

// Lag is the number of input bytes not read yet.
func (s *Source) Lag() int64 {
	st, err := os.Stat(s.cfg.Input)
	if err != nil {
		return 0
	}
	return max(st.Size()-s.offset, 0)
}

// Commit persists the last acked offset (write to a temp file, then rename: never a torn checkpoint).
func (s *Source) Commit(_ context.Context, positions []Offset) error {
	tmp := s.cfg.Checkpoint + ".tmp"
	last := positions[len(positions)-1]
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(int64(last), 10)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.cfg.Checkpoint)
}

// lead blocks until this instance holds LOCK_PATH (or there is none), then resumes.
func (s *Source) lead(ctx context.Context) error {
	if s.leader.Load() {
		return nil
	}
	if s.cfg.Lock == "" {
		s.leader.Store(true)
		return s.resume()
	}
	f, err := os.OpenFile(s.cfg.Lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return runtime.Fatal(err)
	}
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		select {
		case <-ctx.Done():
			_ = f.Close() // the lock was never taken and nothing was written
			return ctx.Err()
		case <-time.After(s.cfg.PollInterval.D()):
		}
	}
	s.lock = f
	s.leader.Store(true)
	s.log.Info("leading: holds the lock", "lock", s.cfg.Lock)
	return s.resume()
}

// HealthCheck is not ready until this instance leads.
func (s *Source) HealthCheck(context.Context) error {
	if !s.leader.Load() && s.cfg.Lock != "" {
		return fmt.Errorf("waiting for leadership (%s)", s.cfg.Lock)
	}
	return nil
}

// Shutdown releases leadership.
func (s *Source) Shutdown(context.Context) error {
	if s.lock != nil {
		return s.lock.Close() // closing releases the flock
	}
	return nil
}
