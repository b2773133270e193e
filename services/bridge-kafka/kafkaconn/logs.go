package kafkaconn

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// ForwardLogs writes librdkafka's log lines (a client created with go.logs.channel.enable=true)
// through log, so that they follow LOG_FORMAT and LOG_LEVEL like the bridge's own lines; without
// it librdkafka prints them to stderr in its own format. It returns when logs is closed (the
// client's Close).
func ForwardLogs(log *slog.Logger, logs <-chan kafka.LogEvent) {
	for e := range logs {
		log.Log(context.Background(), syslogLevel(e.Level), e.Message, "librdkafka", e.Name, "tag", e.Tag)
	}
}

// syslogLevel maps librdkafka's syslog level (0 emergency … 7 debug) to slog's.
func syslogLevel(l int) slog.Level {
	switch {
	case l <= 3:
		return slog.LevelError
	case l == 4:
		return slog.LevelWarn
	case l <= 6:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// ErrorLog logs librdkafka's error events, which repeat as often as librdkafka retries (up to 20 a
// second while Kafka is down): each error code is logged the first time, then at most once per
// Every with the number of times it recurred meanwhile; Recovered logs those still untold once the
// trouble is over.
type ErrorLog struct {
	Log   *slog.Logger
	Msg   string
	Every time.Duration

	mu   sync.Mutex
	seen map[kafka.ErrorCode]*repeats // guarded by mu
}

type repeats struct {
	logged time.Time
	n      int // since logged
	last   kafka.Error
}

// Error logs e (or counts it), with attrs.
func (l *ErrorLog) Error(e kafka.Error, attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[kafka.ErrorCode]*repeats{}
	}
	r := l.seen[e.Code()]
	if r != nil && time.Since(r.logged) < l.Every {
		r.n++
		r.last = e
		return
	}
	args := append([]any{"err", e, "fatal", e.IsFatal()}, attrs...)
	if r != nil && r.n > 0 {
		args = append(args, "repeated", r.n, "repeated_since", r.logged)
	}
	l.Log.Warn(l.Msg, args...)
	l.seen[e.Code()] = &repeats{logged: time.Now()}
}

// Recovered logs how often each error recurred since it was last logged, and forgets them, so
// that the next occurrence is logged at once. It is cheap when there is nothing to tell.
func (l *ErrorLog) Recovered(attrs ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		return
	}
	for _, r := range l.seen {
		if r.n > 0 {
			l.Log.Warn(l.Msg, append([]any{"err", r.last, "repeated", r.n, "repeated_since", r.logged}, attrs...)...)
		}
	}
	l.seen = nil
}
