// Package telemetry is the observability every connector shares: slog logging, OpenTelemetry
// metrics exported in Prometheus format, /healthz and /readyz, and W3C trace context carried in
// Danube message attributes. One Server serves all connectors of a process.
package telemetry

import (
	"io"
	"log/slog"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// LogFormat is LOG_FORMAT: "json" (the zero value, for log shippers) or "text".
type LogFormat int

const (
	// JSON emits one JSON object per line.
	JSON LogFormat = iota
	// Text emits logfmt-style key=value lines for humans.
	Text
)

var logFormats = config.Enum[LogFormat]{{Value: JSON, Name: "json"}, {Value: Text, Name: "text"}}

func (f LogFormat) String() string { return logFormats.Name(f) }

// UnmarshalText parses "json" or "text" (case-insensitive).
func (f *LogFormat) UnmarshalText(b []byte) error { return logFormats.Parse(f, b) }

// NewLogger returns a logger writing to w at level in format.
func NewLogger(w io.Writer, level slog.Leveler, format LogFormat) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == Text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
