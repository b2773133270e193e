// Package telemetry is the observability every connector shares: slog logging, OpenTelemetry
// metrics exported in Prometheus format, /healthz and /readyz, and W3C trace context carried in
// Danube message attributes. One Server serves all connectors of a process.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogFormat is LOG_FORMAT: "json" (the zero value, for log shippers) or "text".
type LogFormat int

const (
	// JSON emits one JSON object per line.
	JSON LogFormat = iota
	// Text emits logfmt-style key=value lines for humans.
	Text
)

func (f LogFormat) String() string {
	if f == Text {
		return "text"
	}
	return "json"
}

// UnmarshalText parses "json" or "text" (case-insensitive).
func (f *LogFormat) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "json":
		*f = JSON
	case "text":
		*f = Text
	default:
		return fmt.Errorf(`want "json" or "text"`)
	}
	return nil
}

// NewLogger returns a logger writing to w at level in format.
func NewLogger(w io.Writer, level slog.Leveler, format LogFormat) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == Text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
