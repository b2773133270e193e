package bridge_test

import (
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
)

// TestLoopRefused: mappings that feed each other in a circle are refused at start, naming every
// mapping of the circle; the round trip of one Kafka topic through one Danube topic, which the loop
// guard stops, and chains that end are accepted.
func TestLoopRefused(t *testing.T) {
	load := func(imports, exports string) error {
		var cfg bridge.Config
		return config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=bridge",
			"KAFKA_BOOTSTRAP_SERVERS=localhost:9092", "KAFKA_GROUP_ID=g", "IMPORT_MAPPINGS=" + imports, "EXPORT_MAPPINGS=" + exports})
	}
	err := load("a=/default/a;b=/default/b", "/default/a=b;/default/b=a")
	want := `invalid configuration (1 problem):
  IMPORT_MAPPINGS: with EXPORT_MAPPINGS, the mappings form a loop: ` +
		`Kafka a → Danube /default/a (IMPORT_MAPPINGS a=/default/a) → Kafka b (EXPORT_MAPPINGS /default/a=b), then ` +
		`Kafka b → Danube /default/b (IMPORT_MAPPINGS b=/default/b) → Kafka a (EXPORT_MAPPINGS /default/b=a): ` +
		`every record would go round forever (the loop guard stops only a Danube topic exported back to the Kafka topic it was imported from); remove one of these mappings`
	if err == nil || err.Error() != want {
		t.Errorf("two-topic loop: Load returned\n%v\nwant\n%s", err, want)
	}
	// A longer circle entered from a topic outside it, and a second, separate one: each reported once.
	err = load("x=/default/x;a=/default/a;b=/default/b;c=/default/c;p=/default/p;q=/default/q",
		"/default/x=a;/default/a=b;/default/b=c;/default/c=a;/default/p=q;/default/q=p")
	if err == nil || strings.Count(err.Error(), "form a loop") != 2 || !strings.Contains(err.Error(), "EXPORT_MAPPINGS /default/c=a") ||
		strings.Contains(err.Error(), "IMPORT_MAPPINGS x=") {
		t.Errorf("two loops and a lead-in: Load returned\n%v", err)
	}
	for _, ok := range [][2]string{
		{"orders=/default/orders", "/default/orders=orders"}, // the guarded round trip
		{"a=/default/a;b=/default/b", "/default/a=b"},        // a chain that ends
		{"a=/default/a", "/default/b=a"},
	} {
		if err := load(ok[0], ok[1]); err != nil {
			t.Errorf("IMPORT_MAPPINGS=%s EXPORT_MAPPINGS=%s: %v, want accepted", ok[0], ok[1], err)
		}
	}
}

// TestImportDLQTopic: IMPORT_DLQ_TOPIC is checked under its own name and must not be an import's
// destination; it becomes the imports' runtime DLQ_TOPIC.
func TestImportDLQTopic(t *testing.T) {
	load := func(dlq string) (bridge.Config, error) {
		var cfg bridge.Config
		err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=bridge",
			"KAFKA_BOOTSTRAP_SERVERS=localhost:9092", "KAFKA_GROUP_ID=g", "IMPORT_MAPPINGS=orders=/default/orders", "IMPORT_DLQ_TOPIC=" + dlq})
		return cfg, err
	}
	for dlq, want := range map[string]string{
		"/default/orders": `IMPORT_DLQ_TOPIC="/default/orders": must differ from the import's destination /default/orders`,
		"orders-dlq":      `IMPORT_DLQ_TOPIC="orders-dlq": `,
	} {
		if _, err := load(dlq); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), " DLQ_TOPIC") {
			t.Errorf("IMPORT_DLQ_TOPIC=%s: %v, want %q", dlq, err, want)
		}
	}
	if cfg, err := load("/default/orders-dlq"); err != nil || cfg.Import.DLQTopic != "/default/orders-dlq" {
		t.Errorf("a valid IMPORT_DLQ_TOPIC: %v (%q)", err, cfg.Import.DLQTopic)
	}
}

// TestStartText: KAFKA_AUTO_OFFSET_RESET takes earliest or latest in any case and names them
// otherwise.
func TestStartText(t *testing.T) {
	var s bridge.Start
	if err := s.UnmarshalText([]byte("Latest")); err != nil || s != "latest" || s.String() != "latest" {
		t.Fatalf("%q %v", s, err)
	}
	if err := s.UnmarshalText([]byte("newest")); err == nil || err.Error() != `want "earliest" or "latest"` {
		t.Fatalf("%v", err)
	}
}
