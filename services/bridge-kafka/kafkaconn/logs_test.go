package kafkaconn_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaconn"
)

// jsonLines parses every line of b as a JSON object, failing the test on one that is not.
func jsonLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// TestErrorLogRepeats: an error librdkafka repeats many times a second is logged once, then its
// count when Kafka recovers; another error code is logged at once.
func TestErrorLogRepeats(t *testing.T) {
	var b bytes.Buffer
	l := &kafkaconn.ErrorLog{Log: slog.New(slog.NewJSONHandler(&b, nil)), Msg: "kafka consumer error", Every: time.Hour}
	l.Recovered() // nothing to tell
	for range 50 {
		l.Error(kafka.NewError(kafka.ErrAllBrokersDown, "1/1 brokers are down", false), "kafka_topic", "t")
	}
	l.Error(kafka.NewError(kafka.ErrTransport, "connection refused", false))
	l.Recovered("kafka_topic", "t")
	l.Recovered("kafka_topic", "t")
	lines := jsonLines(t, &b)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want the first error, the other one, the summary:\n%s", len(lines), b.String())
	}
	if lines[0]["err"] != "1/1 brokers are down" || lines[0]["repeated"] != nil || lines[1]["err"] != "connection refused" ||
		lines[2]["err"] != "1/1 brokers are down" || lines[2]["repeated"] != float64(49) {
		t.Fatalf("lines:\n%s", b.String())
	}
}

// TestForwardLogs: librdkafka's log lines go through the slog logger (so LOG_FORMAT and LOG_LEVEL
// apply), at the slog level of their syslog level.
func TestForwardLogs(t *testing.T) {
	var b bytes.Buffer
	logs := make(chan kafka.LogEvent, 3)
	logs <- kafka.LogEvent{Name: "rdkafka#consumer-1", Tag: "FAIL", Message: "Connect to ipv4#127.0.0.1:1 failed: Connection refused", Level: 3}
	logs <- kafka.LogEvent{Name: "rdkafka#consumer-1", Tag: "CONFWARN", Message: "Configuration property x is a producer property", Level: 4}
	logs <- kafka.LogEvent{Name: "rdkafka#consumer-1", Tag: "BROKER", Message: "debug chatter", Level: 7} // below LOG_LEVEL=info
	close(logs)
	kafkaconn.ForwardLogs(slog.New(slog.NewJSONHandler(&b, nil)), logs)
	lines := jsonLines(t, &b)
	if len(lines) != 2 || lines[0]["level"] != "ERROR" || lines[0]["tag"] != "FAIL" || lines[0]["librdkafka"] != "rdkafka#consumer-1" ||
		!strings.Contains(lines[0]["msg"].(string), "Connection refused") || lines[1]["level"] != "WARN" {
		t.Fatalf("lines:\n%s", b.String())
	}
}
