package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// Common is the configuration every connector shares. Connector configs embed SinkConfig or
// SourceConfig (which embed Common) and add their own fields. Every variable has one meaning in
// every connector.
type Common struct {
	DanubeServiceURL string        `env:"DANUBE_SERVICE_URL,required" desc:"Danube broker URL, http://host:6650 or https://host:6650"`
	DanubeToken      config.Secret `env:"DANUBE_TOKEN" desc:"JWT sent as authorization: Bearer (turns TLS on)"`
	DanubeTokenFile  string        `env:"DANUBE_TOKEN_FILE" desc:"file holding the JWT, re-read when it changes (rotation without restart)"`
	DanubeCAFile     string        `env:"DANUBE_CA_FILE" desc:"PEM CA bundle to verify the broker (and the admin API)"`
	DanubeCertFile   string        `env:"DANUBE_CERT_FILE" desc:"client certificate for mTLS (with DANUBE_KEY_FILE)"`
	DanubeKeyFile    string        `env:"DANUBE_KEY_FILE" desc:"client key for mTLS (with DANUBE_CERT_FILE)"`
	DanubeAdminURL   string        `env:"DANUBE_ADMIN_URL" desc:"Danube admin API URL (http(s)://host:50051), same TLS and token as the broker; lets a sink size its subscription's window"`
	DanubeFailAfter  config.Millis `env:"DANUBE_FAIL_AFTER_MS" envDefault:"60000" desc:"a rejected token or an untrusted broker certificate is logged at once and stops the connector (exit 1) once Danube refused it for this long (0 = never)"`
	ConnectorName    string        `env:"CONNECTOR_NAME,required" desc:"unique name: Danube consumer/producer identity, metrics label"`

	RetryPolicy     retry.Kind    `env:"RETRY_POLICY" envDefault:"exponential" desc:"backoff growth between retries: linear or exponential (every wait is jittered into [d/2, d])"`
	MaxRetries      int           `env:"MAX_RETRIES" envDefault:"3" desc:"retries of a failed record or batch before RETRY_EXHAUSTED applies (-1 = forever)"`
	RetryBackoff    config.Millis `env:"RETRY_BACKOFF_MS" envDefault:"1000" desc:"wait before the first retry (and the first reconnect)"`
	RetryMaxBackoff config.Millis `env:"RETRY_MAX_BACKOFF_MS" envDefault:"30000" desc:"cap on any retry or reconnect wait (a Retry-After hint may exceed it)"`

	ShutdownTimeout config.Millis       `env:"SHUTDOWN_TIMEOUT_MS" envDefault:"25000" desc:"on SIGTERM: time to flush batches and wait for acks before closing"`
	LogLevel        slog.Level          `env:"LOG_LEVEL" envDefault:"info" desc:"debug, info, warn or error"`
	LogFormat       telemetry.LogFormat `env:"LOG_FORMAT" envDefault:"json" desc:"json or text"`
	MetricsAddr     string              `env:"METRICS_ADDR" envDefault:":9090" emptyDisables:"true" desc:"listen address of /metrics, /healthz, /readyz; empty disables"`
	LivenessTimeout config.Millis       `env:"LIVENESS_TIMEOUT_MS" envDefault:"300000" desc:"/healthz fails while one connector call (process, batch, commit) runs longer than this (0 = never)"`
}

// Validate implements config.Validator.
func (c *Common) Validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{{"DANUBE_SERVICE_URL", c.DanubeServiceURL}, {"DANUBE_ADMIN_URL", c.DanubeAdminURL}} {
		if u.value != "" && !strings.HasPrefix(u.value, "http://") && !strings.HasPrefix(u.value, "https://") {
			errs = append(errs, config.Invalid(u.name, u.value, "want http://host:port or https://host:port"))
		}
	}
	if (c.DanubeCertFile == "") != (c.DanubeKeyFile == "") {
		errs = append(errs, config.Invalid("DANUBE_CERT_FILE", c.DanubeCertFile, "DANUBE_CERT_FILE and DANUBE_KEY_FILE go together"))
	}
	if c.DanubeToken.IsSet() && c.DanubeTokenFile != "" {
		errs = append(errs, config.Invalid("DANUBE_TOKEN_FILE", c.DanubeTokenFile, "set together with DANUBE_TOKEN; use one"))
	}
	for _, f := range []struct{ name, path string }{
		{"DANUBE_CA_FILE", c.DanubeCAFile}, {"DANUBE_CERT_FILE", c.DanubeCertFile},
		{"DANUBE_KEY_FILE", c.DanubeKeyFile}, {"DANUBE_TOKEN_FILE", c.DanubeTokenFile},
	} {
		if err := readable(f.path); err != nil {
			errs = append(errs, config.Invalid(f.name, f.path, err.Error()))
		}
	}
	if c.MetricsAddr != "" {
		if err := checkListenAddr(c.MetricsAddr); err != nil {
			errs = append(errs, config.Invalid("METRICS_ADDR", c.MetricsAddr, err.Error()))
		}
	}
	if c.MaxRetries < -1 {
		errs = append(errs, config.Invalid("MAX_RETRIES", c.MaxRetries, "must be -1 (forever) or more"))
	}
	if c.RetryMaxBackoff > 0 && c.RetryMaxBackoff < c.RetryBackoff {
		errs = append(errs, config.Invalid("RETRY_MAX_BACKOFF_MS", c.RetryMaxBackoff, "must not be below RETRY_BACKOFF_MS="+c.RetryBackoff.String()))
	}
	return errors.Join(errs...)
}

// checkListenAddr accepts host:port or :port with a numeric port (or a service name net knows).
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// readable reports why path cannot be read ("" is fine: the setting is off).
func readable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot read: %w", err)
	}
	return f.Close()
}

// Retry is the policy from RETRY_POLICY, MAX_RETRIES, RETRY_BACKOFF_MS and RETRY_MAX_BACKOFF_MS.
func (c *Common) Retry() retry.Policy {
	return retry.Policy{Kind: c.RetryPolicy, Base: c.RetryBackoff.D(), Max: c.RetryMaxBackoff.D(), MaxRetries: c.MaxRetries}
}

// ClientOptions are the Danube client options the config implies (TLS and token; the client keeps
// its own jittered backoff for the broker connection).
func (c *Common) ClientOptions() []danube.Option {
	var opts []danube.Option
	if c.DanubeCAFile != "" {
		opts = append(opts, danube.WithCAFile(c.DanubeCAFile))
	}
	if c.DanubeCertFile != "" {
		opts = append(opts, danube.WithClientCert(c.DanubeCertFile, c.DanubeKeyFile))
	}
	if c.DanubeToken.IsSet() {
		opts = append(opts, danube.WithToken(c.DanubeToken.Reveal()))
	}
	if c.DanubeTokenFile != "" {
		opts = append(opts, danube.WithTokenFile(c.DanubeTokenFile))
	}
	return opts
}

// RetryExhausted is RETRY_EXHAUSTED: what a sink does with a record whose retries ran out.
type RetryExhausted int

const (
	// AutoOnExhausted tells an outage from a poison record. When nothing else gets written either,
	// the external system is down: the sink pauses its Danube consumers (no delivery attempt is
	// spent) and retries the records in hand until it recovers. When other records are written
	// meanwhile, the record is poison: DeadLetterOnExhausted with DLQ_TOPIC, else
	// HoldOnExhausted.
	AutoOnExhausted RetryExhausted = iota
	// NackOnExhausted hands the record back to Danube (redelivered after NACK_DELAY_MS; every
	// redelivery spends one of the message's delivery attempts, and the broker's poison policy
	// applies once they are used up: by default it stops the subscription).
	NackOnExhausted
	// StopOnExhausted stops the connector without acking, exiting non-zero.
	StopOnExhausted
	// DeadLetterOnExhausted publishes the record to DLQ_TOPIC with the last error as the reason,
	// then acks it (if the publish fails, the record is nacked instead). Outages still pause.
	DeadLetterOnExhausted
	// HoldOnExhausted keeps the record and retries it without limit, reporting it on /readyz and
	// connector_records_poisoned. Outages still pause.
	HoldOnExhausted
)

var exhaustedNames = config.Enum[RetryExhausted]{
	{Value: AutoOnExhausted, Name: "auto"}, {Value: NackOnExhausted, Name: "nack"}, {Value: StopOnExhausted, Name: "stop"},
	{Value: DeadLetterOnExhausted, Name: "dlq"}, {Value: HoldOnExhausted, Name: "hold"},
}

func (r RetryExhausted) String() string { return exhaustedNames.Name(r) }

// UnmarshalText parses "auto", "nack", "stop", "dlq" or "hold".
func (r *RetryExhausted) UnmarshalText(b []byte) error { return exhaustedNames.Parse(r, b) }

// PoisonPolicy is SUBSCRIPTION_POISON_POLICY: the broker's treatment of a message that reached its
// redelivery limit, applied through the admin API.
type PoisonPolicy int

const (
	// PoisonKeep leaves the subscription's policy as the broker has it.
	PoisonKeep PoisonPolicy = iota
	// PoisonBlock stops the subscription at the message (the broker's default).
	PoisonBlock
	// PoisonDrop skips the message.
	PoisonDrop
	// PoisonDeadLetter moves the message to DLQ_TOPIC.
	PoisonDeadLetter
)

var poisonNames = config.Enum[PoisonPolicy]{
	{Value: PoisonKeep, Name: "keep"}, {Value: PoisonBlock, Name: "block"},
	{Value: PoisonDrop, Name: "drop"}, {Value: PoisonDeadLetter, Name: "dead_letter"},
}

func (p PoisonPolicy) String() string { return poisonNames.Name(p) }

// UnmarshalText parses "keep", "block", "drop" or "dead_letter".
func (p *PoisonPolicy) UnmarshalText(b []byte) error { return poisonNames.Parse(p, b) }

// GapPolicy is GAP_POLICY: what a sink does when Danube skipped messages of its subscription.
type GapPolicy int

const (
	// GapReport logs the range, counts it (connector_delivery_gaps_total) and shows it on /readyz.
	GapReport GapPolicy = iota
	// GapStop reports, then stops the sink with ExitGap, so that an operator acts before more is lost.
	GapStop
)

var gapPolicyNames = config.Enum[GapPolicy]{{Value: GapReport, Name: "report"}, {Value: GapStop, Name: "stop"}}

func (p GapPolicy) String() string { return gapPolicyNames.Name(p) }

// UnmarshalText parses "report" or "stop".
func (p *GapPolicy) UnmarshalText(b []byte) error { return gapPolicyNames.Parse(p, b) }

// SinkConfig configures a sink; embed it in the connector's config struct.
type SinkConfig struct {
	Common
	Topics           []string                `env:"DANUBE_TOPIC,required" envSeparator:"," desc:"the connector's Danube topic: a sink consumes it (comma-separated for several), /namespace/topic"`
	SubscriptionName string                  `env:"SUBSCRIPTION_NAME,required" desc:"Danube subscription (the position is kept per subscription)"`
	SubscriptionType danube.SubscriptionType `env:"SUBSCRIPTION_TYPE" envDefault:"Exclusive" desc:"Exclusive, Shared, Failover or KeyShared"`
	KeyFilters       []string                `env:"KEY_FILTERS" envSeparator:"," desc:"KeyShared only: comma-separated globs (* and ?) of routing keys this instance takes"`
	BatchSize        int                     `env:"BATCH_SIZE" envDefault:"1" desc:"most records handed to the connector in one call (a sink's batch); boundaries align to offsets"`
	BatchTimeout     config.Millis           `env:"BATCH_TIMEOUT_MS" envDefault:"1000" desc:"flush a partial batch this long after its first record"`
	BatchIdle        config.Millis           `env:"BATCH_IDLE_MS" envDefault:"50" desc:"also flush a partial batch when no record arrived for this long: the broker sends no more than its window of unacked messages (max_unacked_messages, 10 by default), so a batch larger than the window waits for nothing; 0 = only BATCH_TIMEOUT_MS"`
	MaxInFlight      int                     `env:"MAX_IN_FLIGHT" envDefault:"1" desc:"most records sent to the destination and not yet confirmed; for a sink, concurrent writes (above 1, records stream to that many concurrent writes in per-key order, where the connector supports it)"`
	DLQTopic         string                  `env:"DLQ_TOPIC" desc:"dead-letter topic for invalid records and poison ones (RETRY_EXHAUSTED=auto or dlq); empty = invalid records are nacked (or stop the connector with RETRY_EXHAUSTED=stop)"`
	RetryExhausted   RetryExhausted          `env:"RETRY_EXHAUSTED" envDefault:"auto" desc:"when retries run out: auto (nothing else gets written: an outage, pause the consumers and retry until it recovers; others are written: a poison message, dlq with DLQ_TOPIC else hold), dlq (publish to DLQ_TOPIC with the reason, then ack), hold (keep retrying it, reported on /readyz), nack (give it back to Danube: spends its delivery attempts) or stop (exit non-zero, unacked)"`
	NackDelay        config.Millis           `env:"NACK_DELAY_MS" envDefault:"1000" desc:"redelivery delay asked for with a nack"`
	GapPolicy        GapPolicy               `env:"GAP_POLICY" envDefault:"report" desc:"Exclusive and Failover subscriptions: when Danube skips messages (offsets jump; a v0.15.1 defect), report (ERROR log, connector_delivery_gaps_total, /readyz until restart) or stop (report, then exit 3)"`
	GapConfirm       config.Millis           `env:"GAP_CONFIRM_MS" envDefault:"0" desc:"how long skipped offsets may still arrive before they count as lost (a consumer that died held them; the broker sends them again after its ack timeout); 0 = twice SUBSCRIPTION_ACK_TIMEOUT_MS, else 60000"`
	Transforms       transform.SinkSteps     `env:"TRANSFORMS" desc:"transform steps run in order on each record before the connector writes it (see below); a dropped record is acked, a failing one dead-lettered"`
	SinkSchemas

	Window          int           `env:"SUBSCRIPTION_MAX_UNACKED" envDefault:"0" desc:"with DANUBE_ADMIN_URL: the subscription's window (broker max_unacked_messages, 1-10000) requested at start (a v0.15.1 broker stores it but dispatches with its default); 0 = enough for BATCH_SIZE and MAX_IN_FLIGHT"`
	PoisonPolicy    PoisonPolicy  `env:"SUBSCRIPTION_POISON_POLICY" envDefault:"keep" desc:"with DANUBE_ADMIN_URL: the broker's policy for a message past its redelivery limit, stored at start (a v0.15 broker applies it when it next loads the subscription): keep (the broker's), block, drop or dead_letter (to DLQ_TOPIC)"`
	MaxRedeliveries int           `env:"SUBSCRIPTION_MAX_REDELIVERIES" envDefault:"0" desc:"with DANUBE_ADMIN_URL: the broker's delivery attempts before the poison policy, set at start; 0 = keep the broker's"`
	AckTimeout      config.Millis `env:"SUBSCRIPTION_ACK_TIMEOUT_MS" envDefault:"0" desc:"with DANUBE_ADMIN_URL: the broker's re-send interval of an unacked message, set at start; 0 = keep the broker's"`
}

// maxWindow is the broker's upper bound on max_unacked_messages; defaultWindow its default.
const (
	maxWindow     = 10000
	defaultWindow = 10
)

// WantWindow is the window the sink needs: SUBSCRIPTION_MAX_UNACKED, or room for two batches (one
// processed while the next fills) or for twice MAX_IN_FLIGHT, at least the broker's default.
func (c *SinkConfig) WantWindow() int {
	if c.Window > 0 {
		return c.Window
	}
	return min(max(defaultWindow, 2*c.BatchSize, 2*c.MaxInFlight), maxWindow)
}

// Validate implements config.Validator.
func (c *SinkConfig) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > maxWindow {
		errs = append(errs, config.Invalid("BATCH_SIZE", c.BatchSize, fmt.Sprintf("must be 1 to %d (the broker's largest window)", maxWindow)))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxWindow {
		errs = append(errs, config.Invalid("MAX_IN_FLIGHT", c.MaxInFlight, fmt.Sprintf("must be 1 to %d", maxWindow)))
	}
	if c.Window < 0 || c.Window > maxWindow {
		errs = append(errs, config.Invalid("SUBSCRIPTION_MAX_UNACKED", c.Window, fmt.Sprintf("must be 0 (automatic) or 1 to %d", maxWindow)))
	}
	if c.MaxRedeliveries < 0 {
		errs = append(errs, config.Invalid("SUBSCRIPTION_MAX_REDELIVERIES", c.MaxRedeliveries, "must not be negative"))
	}
	for _, t := range c.Topics {
		if err := checkTopic(t); err != nil {
			errs = append(errs, config.Invalid("DANUBE_TOPIC", t, err.Error()))
		}
	}
	if c.DLQTopic != "" {
		if err := checkTopic(c.DLQTopic); err != nil {
			errs = append(errs, config.Invalid("DLQ_TOPIC", c.DLQTopic, err.Error()))
		}
	}
	if c.RetryExhausted == DeadLetterOnExhausted && c.DLQTopic == "" {
		errs = append(errs, &config.FieldError{Var: "DLQ_TOPIC", Reason: "required when RETRY_EXHAUSTED=dlq"})
	}
	if c.GapConfirm < 0 {
		errs = append(errs, config.Invalid("GAP_CONFIRM_MS", c.GapConfirm, "must not be negative"))
	}
	if c.PoisonPolicy == PoisonDeadLetter && c.DLQTopic == "" {
		errs = append(errs, &config.FieldError{Var: "DLQ_TOPIC", Reason: "required when SUBSCRIPTION_POISON_POLICY=dead_letter"})
	}
	if c.DanubeAdminURL == "" {
		for _, s := range []struct {
			name string
			set  bool
		}{{"SUBSCRIPTION_MAX_UNACKED", c.Window != 0}, {"SUBSCRIPTION_POISON_POLICY", c.PoisonPolicy != PoisonKeep},
			{"SUBSCRIPTION_MAX_REDELIVERIES", c.MaxRedeliveries != 0}, {"SUBSCRIPTION_ACK_TIMEOUT_MS", c.AckTimeout != 0}} {
			if s.set {
				errs = append(errs, &config.FieldError{Var: s.name, Reason: "needs DANUBE_ADMIN_URL (the setting is applied through the admin API)"})
			}
		}
	}
	return errors.Join(errs...)
}

// Sink returns c; it lets MainSink find the runtime part of a connector's config.
func (c *SinkConfig) Sink() *SinkConfig { return c }

// PublishOrder is PUBLISH_ORDER: which records a source keeps in order while it pipelines
// publishes to one topic.
type PublishOrder int

const (
	// OrderByKey never has two records with the same routing key in flight; records without a key
	// are kept in order among themselves (as if they shared one key).
	OrderByKey PublishOrder = iota
	// OrderStrict publishes one record at a time per topic: the topic holds them in source order.
	OrderStrict
	// OrderNone pipelines every record freely: fastest, no order at all.
	OrderNone
)

var orderNames = config.Enum[PublishOrder]{
	{Value: OrderByKey, Name: "key"}, {Value: OrderStrict, Name: "strict"}, {Value: OrderNone, Name: "none"},
}

func (o PublishOrder) String() string { return orderNames.Name(o) }

// UnmarshalText parses "key", "strict" or "none".
func (o *PublishOrder) UnmarshalText(b []byte) error { return orderNames.Parse(o, b) }

// SourceConfig configures a source; embed it in the connector's config struct.
type SourceConfig struct {
	Common
	Topic        string                `env:"DANUBE_TOPIC" desc:"the connector's Danube topic: a source publishes to it the records that name no other"`
	Partitions   int                   `env:"DANUBE_PARTITIONS" envDefault:"0" desc:"partitions of destination topics created by this source (0 = not partitioned)"`
	MaxInFlight  int                   `env:"MAX_IN_FLIGHT" envDefault:"1000" desc:"most records sent to the destination and not yet confirmed; for a source, records polled and not yet acked by Danube (Poll waits above it)"`
	PublishOrder PublishOrder          `env:"PUBLISH_ORDER" envDefault:"key" desc:"publishes kept in flight at once per topic: key (never two with the same routing key; unkeyed records in order), strict (one at a time: topic order = source order) or none"`
	PollInterval config.Millis         `env:"POLL_INTERVAL_MS" envDefault:"100" desc:"wait after a Poll that returned nothing (querying sources only)"`
	BatchSize    int                   `env:"BATCH_SIZE" envDefault:"1000" desc:"most records handed over in one call (a source's Poll)"`
	DLQTopic     string                `env:"DLQ_TOPIC" desc:"dead-letter topic for records Danube refuses for good (over its message size limit, invalid: a descriptor of the record goes there) or a transform step fails on (the record itself, with the reason); the stream goes on; empty = such a record stops the source"`
	Transforms   transform.SourceSteps `env:"TRANSFORMS" desc:"transform steps run in order on each record before it is published (see below); a dropped record's position is still committed"`
	SourceSchemas
}

// Validate implements config.Validator.
func (c *SourceConfig) Validate() error {
	var errs []error
	if c.Topic != "" {
		if err := checkTopic(c.Topic); err != nil {
			errs = append(errs, config.Invalid("DANUBE_TOPIC", c.Topic, err.Error()))
		}
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, config.Invalid("MAX_IN_FLIGHT", c.MaxInFlight, "must be at least 1"))
	}
	if c.Partitions < 0 {
		errs = append(errs, config.Invalid("DANUBE_PARTITIONS", c.Partitions, "must not be negative"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, config.Invalid("BATCH_SIZE", c.BatchSize, "must be at least 1"))
	}
	if c.DLQTopic != "" {
		if err := checkTopic(c.DLQTopic); err != nil {
			errs = append(errs, config.Invalid("DLQ_TOPIC", c.DLQTopic, err.Error()))
		} else if c.DLQTopic == c.Topic {
			errs = append(errs, config.Invalid("DLQ_TOPIC", c.DLQTopic, "must differ from DANUBE_TOPIC"))
		}
	}
	return errors.Join(errs...)
}

// Source returns c; it lets MainSource find the runtime part of a connector's config.
func (c *SourceConfig) Source() *SourceConfig { return c }

// checkTopic applies Danube's topic rule (danube.CheckTopic).
func checkTopic(t string) error { return danube.CheckTopic(t) }

// defaultShutdown is used when a config in code leaves ShutdownTimeout zero.
const defaultShutdown = 25 * time.Second
