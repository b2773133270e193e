// Package bridge runs the Kafka bridge: every mapping of IMPORT_MAPPINGS as a source and every
// mapping of EXPORT_MAPPINGS as a sink, in one process with one telemetry server.
package bridge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaconn"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/mapping"
)

// Config is the bridge's whole configuration: the runtime's common settings, the Kafka connection,
// and the settings of each direction. The runtime's source and sink variables whose meaning differs
// between the directions (MAX_IN_FLIGHT, BATCH_SIZE) are prefixed IMPORT_ and EXPORT_.
type Config struct {
	runtime.Common
	Kafka  kafkaconn.Config
	Import Import
	Export Export
}

// Import is the Kafka → Danube direction.
type Import struct {
	Mappings     mapping.Imports       `env:"IMPORT_MAPPINGS" desc:"Kafka topics to import: kafka-topic=/namespace/topic, semicolon-separated"`
	GroupID      string                `env:"KAFKA_GROUP_ID" desc:"consumer group of the imports (required with IMPORT_MAPPINGS); replicas in one group share the partitions"`
	Start        Start                 `env:"KAFKA_AUTO_OFFSET_RESET" envDefault:"earliest" desc:"where a group without committed offsets starts: earliest (the topic's existing data) or latest"`
	Partitions   int                   `env:"DANUBE_PARTITIONS" envDefault:"0" desc:"partitions of the Danube topics the imports create (0 = not partitioned); the Kafka key picks the partition"`
	Mirror       bool                  `env:"IMPORT_MIRROR_PARTITIONS" envDefault:"false" desc:"publish Kafka partition N to partition N of the Danube topic (<topic>-part-N), creating a partitioned Danube topic like the Kafka topic; not with DANUBE_PARTITIONS"`
	MaxInFlight  int                   `env:"IMPORT_MAX_IN_FLIGHT" envDefault:"1000" desc:"per import: records read from Kafka and not yet acked by Danube (reading waits above it)"`
	BatchSize    int                   `env:"IMPORT_BATCH_SIZE" envDefault:"500" desc:"per import: most records handed to the runtime at once"`
	DLQTopic     string                `env:"IMPORT_DLQ_TOPIC" desc:"Danube dead-letter topic for Kafka records Danube refuses for good (over its message size limit, invalid): a JSON descriptor (Kafka topic, partition, offset, size, reason) goes there, the offset is committed and the import goes on; empty = such a record stops the bridge, naming it"`
	PublishOrder runtime.PublishOrder  `env:"PUBLISH_ORDER" envDefault:"key" desc:"publishes in flight per Danube topic: key (one per Kafka key: Kafka's per-key order; records without a key in order), strict or none"`
	Properties   kafkaconn.Properties  `env:"KAFKA_CONSUMER_PROPERTIES" desc:"extra librdkafka consumer properties, name=value;name=value (not the ones the bridge sets)"`
	Transforms   transform.SourceSteps `env:"IMPORT_TRANSFORMS" desc:"transform steps run on each Kafka record before it is published to Danube (TRANSFORM_<STEP>_* as below); a dropped record's offset is still committed"`
}

// Export is the Danube → Kafka direction.
type Export struct {
	Mappings         mapping.Exports         `env:"EXPORT_MAPPINGS" desc:"Danube topics to export: /namespace/topic=kafka-topic, semicolon-separated"`
	SubscriptionName string                  `env:"SUBSCRIPTION_NAME" envDefault:"bridge-kafka" desc:"Danube subscription of the exports (the position is kept per subscription)"`
	SubscriptionType danube.SubscriptionType `env:"SUBSCRIPTION_TYPE" envDefault:"Exclusive" desc:"Exclusive, Shared, Failover or KeyShared"`
	MaxInFlight      int                     `env:"EXPORT_MAX_IN_FLIGHT" envDefault:"64" desc:"per export with EXPORT_BATCH_SIZE=1: records produced to Kafka and not yet confirmed (concurrent produces, one per routing key)"`
	BatchSize        int                     `env:"EXPORT_BATCH_SIZE" envDefault:"1" desc:"per export: above 1, records are produced in batches of up to this many, in Danube order, without waiting per key (keep it at most the subscription's window)"`
	BatchTimeout     config.Millis           `env:"EXPORT_BATCH_TIMEOUT_MS" envDefault:"5" desc:"with EXPORT_BATCH_SIZE > 1: produce a partial batch this long after its first record"`
	DeliveryTimeout  config.Millis           `env:"KAFKA_DELIVERY_TIMEOUT_MS" envDefault:"20000" desc:"how long the producer retries a record before the export reconnects and produces it again (message.timeout.ms)"`
	DLQTopic         string                  `env:"DLQ_TOPIC" desc:"dead-letter topic for records Kafka refuses for good (too large, invalid); empty = handled as RETRY_EXHAUSTED"`
	RetryExhausted   runtime.RetryExhausted  `env:"RETRY_EXHAUSTED" envDefault:"nack" desc:"when retries run out: nack (redeliver after NACK_DELAY_MS), stop (exit non-zero, unacked) or dlq"`
	NackDelay        config.Millis           `env:"NACK_DELAY_MS" envDefault:"1000" desc:"redelivery delay asked for with a nack"`
	Window           int                     `env:"SUBSCRIPTION_MAX_UNACKED" envDefault:"0" desc:"with DANUBE_ADMIN_URL: the subscription's window set at start; 0 = 2 x EXPORT_MAX_IN_FLIGHT"`
	PoisonPolicy     runtime.PoisonPolicy    `env:"SUBSCRIPTION_POISON_POLICY" envDefault:"keep" desc:"with DANUBE_ADMIN_URL: keep, block, drop or dead_letter (to DLQ_TOPIC)"`
	MaxRedeliveries  int                     `env:"SUBSCRIPTION_MAX_REDELIVERIES" envDefault:"0" desc:"with DANUBE_ADMIN_URL: delivery attempts before the poison policy; 0 = keep the broker's"`
	AckTimeout       config.Millis           `env:"SUBSCRIPTION_ACK_TIMEOUT_MS" envDefault:"0" desc:"with DANUBE_ADMIN_URL: the broker's re-send interval of an unacked message; 0 = keep the broker's"`
	Properties       kafkaconn.Properties    `env:"KAFKA_PRODUCER_PROPERTIES" desc:"extra librdkafka producer properties, name=value;name=value (not the ones the bridge sets)"`
	Transforms       transform.SinkSteps     `env:"EXPORT_TRANSFORMS" desc:"transform steps run on each Danube message before it is produced to Kafka (TRANSFORM_<STEP>_* as below); a dropped message is acked"`
}

// Start is KAFKA_AUTO_OFFSET_RESET.
type Start string

var starts = config.Enum[Start]{{Value: "earliest", Name: "earliest"}, {Value: "latest", Name: "latest"}}

// UnmarshalText accepts earliest or latest.
func (s *Start) UnmarshalText(b []byte) error { return starts.Parse(s, b) }

// Validate implements config.Validator: what the types cannot check, and the runtime's own checks
// of every source and sink the mappings imply.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Import.Mappings.Routes) == 0 && len(c.Export.Mappings.Routes) == 0 {
		errs = append(errs, &config.FieldError{Var: "IMPORT_MAPPINGS", Reason: "set IMPORT_MAPPINGS, EXPORT_MAPPINGS or both"})
	}
	if len(c.Import.Mappings.Routes) > 0 && c.Import.GroupID == "" {
		errs = append(errs, &config.FieldError{Var: "KAFKA_GROUP_ID", Reason: "required with IMPORT_MAPPINGS"})
	}
	if c.Import.MaxInFlight < 1 {
		errs = append(errs, config.Invalid("IMPORT_MAX_IN_FLIGHT", c.Import.MaxInFlight, "must be at least 1"))
	}
	if c.Import.BatchSize < 1 {
		errs = append(errs, config.Invalid("IMPORT_BATCH_SIZE", c.Import.BatchSize, "must be at least 1"))
	}
	if c.Export.MaxInFlight < 1 || c.Export.MaxInFlight > 10000 {
		errs = append(errs, config.Invalid("EXPORT_MAX_IN_FLIGHT", c.Export.MaxInFlight, "must be 1 to 10000"))
	}
	if c.Export.BatchSize < 1 || c.Export.BatchSize > 10000 {
		errs = append(errs, config.Invalid("EXPORT_BATCH_SIZE", c.Export.BatchSize, "must be 1 to 10000"))
	}
	if c.Export.BatchSize > 1 && c.Export.BatchTimeout <= 0 {
		errs = append(errs, config.Invalid("EXPORT_BATCH_TIMEOUT_MS", c.Export.BatchTimeout, "must be positive"))
	}
	if c.Export.DeliveryTimeout <= 0 {
		errs = append(errs, config.Invalid("KAFKA_DELIVERY_TIMEOUT_MS", c.Export.DeliveryTimeout, "must be positive"))
	}
	errs = append(errs, c.validateMirror()...)
	errs = append(errs, c.loops()...)
	errs = append(errs, c.Import.Properties.Check("KAFKA_CONSUMER_PROPERTIES"), c.Export.Properties.Check("KAFKA_PRODUCER_PROPERTIES"))
	// The runtime's own checks (DLQ_TOPIC, RETRY_EXHAUSTED, SUBSCRIPTION_*, DANUBE_PARTITIONS) on
	// one representative source and sink; the bridge-specific fields above are valid there.
	sc := c.sinkConfig(mapping.Route{Danube: "/default/x"})
	sc.MaxInFlight = max(1, min(sc.MaxInFlight, 10000))
	sc.BatchSize = max(1, min(sc.BatchSize, 10000))
	if sc.BatchTimeout <= 0 {
		sc.BatchTimeout = 1
	}
	errs = append(errs, sc.Validate())
	src := c.sourceConfig(mapping.Route{Danube: "/default/x"})
	src.MaxInFlight, src.BatchSize = max(1, src.MaxInFlight), max(1, src.BatchSize)
	src.DLQTopic = "" // checked below, under its own name
	errs = append(errs, src.Validate())
	if t := c.Import.DLQTopic; t != "" {
		if err := danube.CheckTopic(t); err != nil {
			errs = append(errs, config.Invalid("IMPORT_DLQ_TOPIC", t, err.Error()))
		}
		for _, r := range c.Import.Mappings.Routes {
			if r.Danube == t || c.Import.Mirror && strings.HasPrefix(t, r.Danube+"-part-") {
				errs = append(errs, config.Invalid("IMPORT_DLQ_TOPIC", t, "must differ from the import's destination "+r.Danube))
			}
		}
	}
	return errors.Join(errs...)
}

// validateMirror checks IMPORT_MIRROR_PARTITIONS against the settings it cannot be combined with.
func (c *Config) validateMirror() []error {
	if !c.Import.Mirror {
		return nil
	}
	var errs []error
	if len(c.Import.Mappings.Routes) == 0 {
		errs = append(errs, config.Invalid("IMPORT_MIRROR_PARTITIONS", true, "applies to imports only: set IMPORT_MAPPINGS, or leave it false"))
	}
	if c.Import.Partitions != 0 {
		errs = append(errs, config.Invalid("DANUBE_PARTITIONS", c.Import.Partitions,
			"must be 0 with IMPORT_MIRROR_PARTITIONS=true: the Danube topic gets the Kafka topic's partitions"))
	}
	for _, r := range c.Import.Mappings.Routes {
		if strings.Contains(r.Danube, "-part-") {
			errs = append(errs, config.Invalid("IMPORT_MAPPINGS", r.Kafka+"="+r.Danube,
				"with IMPORT_MIRROR_PARTITIONS=true the Danube topic must not contain \"-part-\" (its partitions are named <topic>-part-N)"))
		}
	}
	return errs
}

// loops refuses mappings that feed each other in a circle other than the round trip the loop guard
// stops (Kafka T imported into Danube D and D exported back to T): with IMPORT_MAPPINGS
// a=/default/a;b=/default/b and EXPORT_MAPPINGS /default/a=b;/default/b=a every record would go
// round forever. Each Kafka topic has at most one import and each Danube topic at most one export,
// so every Kafka topic leads to at most one next one, and following those links finds each circle.
func (c *Config) loops() []error {
	imports, exports := map[string]mapping.Route{}, map[string]mapping.Route{} // by Kafka topic, by Danube topic
	for _, r := range c.Import.Mappings.Routes {
		imports[r.Kafka] = r
	}
	for _, r := range c.Export.Mappings.Routes {
		exports[r.Danube] = r
	}
	next := func(kafka string) (string, bool) {
		in, ok := imports[kafka]
		if !ok {
			return "", false
		}
		out, ok := exports[in.Danube]
		return out.Kafka, ok
	}
	var errs []error
	done := map[string]bool{}
	for _, r := range c.Import.Mappings.Routes {
		step := map[string]int{} // Kafka topic → its index in walk
		var walk []string
		for k, ok := r.Kafka, true; ok && !done[k]; k, ok = next(k) {
			if i, seen := step[k]; seen {
				if circle := walk[i:]; len(circle) > 1 {
					errs = append(errs, loopError(circle, imports, exports))
				}
				break
			}
			step[k] = len(walk)
			walk = append(walk, k)
		}
		for _, k := range walk {
			done[k] = true
		}
	}
	return errs
}

// loopError names every mapping of a circle through the Kafka topics circle.
func loopError(circle []string, imports, exports map[string]mapping.Route) error {
	var path []string
	for _, k := range circle {
		in := imports[k]
		out := exports[in.Danube]
		path = append(path, fmt.Sprintf("Kafka %s → Danube %s (IMPORT_MAPPINGS %s=%s) → Kafka %s (EXPORT_MAPPINGS %s=%s)",
			k, in.Danube, in.Kafka, in.Danube, out.Kafka, out.Danube, out.Kafka))
	}
	return &config.FieldError{Var: "IMPORT_MAPPINGS", Reason: "with EXPORT_MAPPINGS, the mappings form a loop: " + strings.Join(path, ", then ") +
		": every record would go round forever (the loop guard stops only a Danube topic exported back to the Kafka topic it was imported from); remove one of these mappings"}
}

// name is the connector name of one mapping: CONNECTOR_NAME-import-<kafka topic> or
// CONNECTOR_NAME-export-<namespace>-<topic>. It names the Danube producer or consumer and labels
// the mapping's metrics and readiness checks.
func (c *Config) name(dir string, r mapping.Route) string {
	if dir == "import" {
		return c.ConnectorName + "-import-" + r.Kafka
	}
	return c.ConnectorName + "-export-" + strings.ReplaceAll(strings.TrimPrefix(r.Danube, "/"), "/", "-")
}

// sourceConfig is the runtime configuration of the import of r.
func (c *Config) sourceConfig(r mapping.Route) *runtime.SourceConfig {
	sc := &runtime.SourceConfig{
		Common: c.Common, Topic: r.Danube, Partitions: c.Import.Partitions, MaxInFlight: c.Import.MaxInFlight,
		PublishOrder: c.Import.PublishOrder, BatchSize: c.Import.BatchSize, DLQTopic: c.Import.DLQTopic, Transforms: c.Import.Transforms,
	}
	sc.ConnectorName = c.name("import", r)
	if c.Import.Mirror {
		sc.Topic = "" // every record names its partition topic; a producer on r.Danube would create it unpartitioned
	}
	return sc
}

// sinkConfig is the runtime configuration of the export of r.
func (c *Config) sinkConfig(r mapping.Route) *runtime.SinkConfig {
	e := c.Export
	sc := &runtime.SinkConfig{
		Common: c.Common, Topics: []string{r.Danube}, SubscriptionName: e.SubscriptionName, SubscriptionType: e.SubscriptionType,
		BatchSize: e.BatchSize, BatchTimeout: e.BatchTimeout, MaxInFlight: e.MaxInFlight, DLQTopic: e.DLQTopic, RetryExhausted: e.RetryExhausted, NackDelay: e.NackDelay,
		Window: e.Window, PoisonPolicy: e.PoisonPolicy, MaxRedeliveries: e.MaxRedeliveries, AckTimeout: e.AckTimeout, Transforms: e.Transforms,
	}
	sc.ConnectorName = c.name("export", r)
	return sc
}

func (s Start) String() string { return string(s) }

var _ fmt.Stringer = Start("")
