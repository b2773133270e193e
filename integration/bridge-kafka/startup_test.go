package bridgekafka_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

// TestWaitsForKafka starts the bridge (LOG_FORMAT=json) before its Kafka broker exists: it keeps
// running, not ready, saying why on /readyz and in its log; once Kafka is up, the import of a
// topic that does not exist yet is not ready and names it; once the topic exists both directions
// flow. Every line the bridge wrote, librdkafka's included, is JSON.
func TestWaitsForKafka(t *testing.T) {
	k := newKafka(t, kafkaOptions{})
	b := runtimetest.StartBroker(t)
	const dest, src = "/default/waited-in", "/default/waited-out"
	runtimetest.CreateTopic(t, b, dest)
	col := runtimetest.Collect(t, b, dest, "reader")
	preSubscribe(t, b, src, "bridge-export-default-waited-out", "bridge-kafka")
	env := bridgeEnv(b, k.Bootstrap, "KAFKA_GROUP_ID=bridge", "IMPORT_MAPPINGS=in="+dest, "EXPORT_MAPPINGS="+src+"=out")
	for i, e := range env {
		if e == "LOG_FORMAT=text" {
			env[i] = "LOG_FORMAT=json"
		}
	}
	c := launch(t, env...)

	err := c.waitNotReadyWith(func(err error) bool {
		return strings.Contains(err.Error(), "kafka unreachable") && strings.Contains(c.Logs(), "external system not reachable yet")
	})
	t.Logf("Kafka not there: /readyz %v", err)
	if strings.Contains(err.Error(), "brokers are down") {
		t.Errorf("/readyz: %v; want the brokers named, not librdkafka's count", err)
	}

	k.Start(t)
	err = c.waitNotReadyWith(func(err error) bool { return strings.Contains(err.Error(), `kafka topic "in" does not exist`) })
	t.Logf("Kafka up, topic missing: /readyz %v", err)
	kafkatest.CreateTopic(t, k.Bootstrap, "in", 1)
	c.WaitReady()

	kafkatest.Produce(t, k.Bootstrap, "in", &kafka.Message{Key: []byte("k"), Value: []byte("from-kafka")})
	runtimetest.Produce(t, b, src, danube.ProducerMessage{Key: "k", Payload: []byte("from-danube")})
	col.WaitFor(t, "the imported record", func(ms []*danube.Message) bool { return len(ms) == 1 })
	kafkatest.Read(t, k.Bootstrap, "out", 1).WaitFor(t, "the exported message", func(ms []*kafka.Message) bool { return len(ms) == 1 })
	c.Stop()

	logs := strings.TrimSpace(c.Logs())
	librdkafka := 0
	for line := range strings.SplitSeq(logs, "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("LOG_FORMAT=json, but this line is not JSON: %q", line)
		}
		if m["librdkafka"] != nil {
			librdkafka++
		}
	}
	if librdkafka == 0 {
		t.Errorf("no librdkafka line (refused connections while Kafka was not there) in the log:\n%s", logs)
	}
}

// TestFailsFastOnWhatWaitingCannotFix: credentials Kafka refuses, and an export to a topic that
// does not exist on brokers that do not create topics, stop the bridge at start (exit 1) with
// what is wrong, instead of waiting forever.
func TestFailsFastOnWhatWaitingCannotFix(t *testing.T) {
	k := newKafka(t, kafkaOptions{SASLUsers: map[string]string{"bridge": "right"}, NoAutoCreate: true})
	k.Start(t)
	b := runtimetest.StartBroker(t)
	sasl := func(password string, extra ...string) []string {
		return append(bridgeEnv(b, k.SASL, "KAFKA_SECURITY_PROTOCOL=sasl_plaintext", "KAFKA_SASL_MECHANISM=PLAIN",
			"KAFKA_SASL_USERNAME=bridge", "KAFKA_SASL_PASSWORD="+password), extra...)
	}
	const wrong = "Wr0ngPassw0rd"
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"import, wrong password", sasl(wrong, "KAFKA_GROUP_ID=g", "IMPORT_MAPPINGS=in=/default/in"), "kafka authentication failed"},
		{"export, wrong password", sasl(wrong, "EXPORT_MAPPINGS=/default/out=out"), "kafka authentication failed"},
		{"export, missing topic", sasl("right", "EXPORT_MAPPINGS=/default/out=nosuch"), "does not exist, and the brokers do not create topics on demand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := launch(t, tc.env...)
			if code := c.Wait(); code != 1 || !strings.Contains(c.Logs(), tc.want) || strings.Contains(c.Logs(), wrong) {
				t.Errorf("exit %d, want 1 with %q (and the password not logged):\n%s", code, tc.want, c.Logs())
			}
		})
	}
}
