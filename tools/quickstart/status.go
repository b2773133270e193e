package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// status keeps a live counter line at the bottom of a terminal while other lines scroll above it;
// on a pipe it prints the counters as a plain line every few seconds instead.
type status struct {
	mu      sync.Mutex
	out     io.Writer
	tty     bool
	c       *counters
	drawn   bool
	started time.Time
	quit    chan struct{}
	done    chan struct{}
}

func newStatus(out io.Writer, c *counters) *status {
	s := &status{out: out, c: c, quit: make(chan struct{}), done: make(chan struct{})}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			s.tty = true
		}
	}
	return s
}

func (s *status) line() string {
	return fmt.Sprintf("produced %d │ delivered %d │ retried %d │ %s",
		s.c.produced.Load(), s.c.delivered.Load(), s.c.retried.Load(), time.Since(s.started).Round(time.Second))
}

// printf prints a line above the status line.
func (s *status) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drawn {
		fmt.Fprint(s.out, "\r\033[K")
	}
	fmt.Fprintf(s.out, format, args...)
	if s.drawn {
		fmt.Fprint(s.out, s.line())
	}
}

func (s *status) start() {
	s.started = time.Now()
	every := 5 * time.Second
	if s.tty {
		every = 250 * time.Millisecond
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.mu.Lock()
				if s.tty {
					fmt.Fprint(s.out, "\r\033[K"+s.line())
					s.drawn = true
				} else {
					fmt.Fprintln(s.out, s.line())
				}
				s.mu.Unlock()
			}
		}
	}()
}

func (s *status) stop() {
	select {
	case <-s.quit:
		return
	default:
	}
	close(s.quit)
	if !s.started.IsZero() {
		<-s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drawn {
		fmt.Fprint(s.out, "\r\033[K"+s.line()+"\n")
		s.drawn = false
	}
}

// logWriter sends log lines through printf so they do not tear the status line.
func (s *status) logWriter() io.Writer { return logWriter{s} }

type logWriter struct{ s *status }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.printf("%s", p)
	return len(p), nil
}
