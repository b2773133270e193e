package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// stat is one number on the status line.
type stat struct {
	label string
	value func() int64
}

// status keeps a live counter line at the bottom of a terminal while other lines scroll above it;
// on a pipe it prints the counters as a plain line every few seconds instead.
type status struct {
	mu      sync.Mutex
	out     io.Writer
	tty     bool
	stats   []stat
	drawn   bool
	started time.Time
	quit    chan struct{}
	done    chan struct{}
}

func newStatus(out io.Writer) *status {
	s := &status{out: out, quit: make(chan struct{}), done: make(chan struct{})}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			s.tty = true
		}
	}
	return s
}

// counts is "label n, label n, ..." joined by sep.
func (s *status) counts(sep string) string {
	parts := make([]string, len(s.stats))
	for i, st := range s.stats {
		parts[i] = fmt.Sprintf("%s %d", st.label, st.value())
	}
	return strings.Join(parts, sep)
}

func (s *status) line() string {
	return s.counts(" │ ") + " │ " + time.Since(s.started).Round(time.Second).String()
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

// start shows stats from now on.
func (s *status) start(stats []stat) {
	s.stats = stats
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
