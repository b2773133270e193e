package runtime

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Common is the configuration every connector shares. Connector configs embed SinkConfig or
// SourceConfig (which embed Common) and add their own fields.
type Common struct {
	DanubeServiceURL string        `env:"DANUBE_SERVICE_URL,required" desc:"Danube broker URL, http://host:6650 or https://host:6650"`
	DanubeToken      config.Secret `env:"DANUBE_TOKEN" desc:"JWT sent as authorization: Bearer (turns TLS on)"`
	DanubeCAFile     string        `env:"DANUBE_CA_FILE" desc:"PEM CA bundle to verify the broker"`
	DanubeCertFile   string        `env:"DANUBE_CERT_FILE" desc:"client certificate for mTLS (with DANUBE_KEY_FILE)"`
	DanubeKeyFile    string        `env:"DANUBE_KEY_FILE" desc:"client key for mTLS (with DANUBE_CERT_FILE)"`
	ConnectorName    string        `env:"CONNECTOR_NAME,required" desc:"unique name: Danube consumer/producer identity, metrics label"`

	RetryPolicy     retry.Kind    `env:"RETRY_POLICY" envDefault:"exponential" desc:"backoff growth between retries: linear or exponential"`
	MaxRetries      int           `env:"MAX_RETRIES" envDefault:"3" desc:"retries of a failed record or batch before RETRY_EXHAUSTED applies (-1 = forever)"`
	RetryBackoff    config.Millis `env:"RETRY_BACKOFF_MS" envDefault:"1000" desc:"wait before the first retry"`
	RetryMaxBackoff config.Millis `env:"RETRY_MAX_BACKOFF_MS" envDefault:"30000" desc:"cap on any retry wait (a Retry-After hint may exceed it)"`

	ShutdownTimeout config.Millis       `env:"SHUTDOWN_TIMEOUT_MS" envDefault:"25000" desc:"on SIGTERM: time to flush batches and wait for acks before closing"`
	LogLevel        slog.Level          `env:"LOG_LEVEL" envDefault:"info" desc:"debug, info, warn or error"`
	LogFormat       telemetry.LogFormat `env:"LOG_FORMAT" envDefault:"json" desc:"json or text"`
	MetricsAddr     string              `env:"METRICS_ADDR" envDefault:":9090" desc:"listen address of /metrics, /healthz, /readyz; empty disables"`
	LivenessTimeout config.Millis       `env:"LIVENESS_TIMEOUT_MS" envDefault:"300000" desc:"/healthz fails while one connector call (process, batch, commit) runs longer than this (0 = never)"`
}

// Validate implements config.Validator.
func (c *Common) Validate() error {
	var errs []error
	if u := c.DanubeServiceURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		errs = append(errs, config.Invalid("DANUBE_SERVICE_URL", u, "want http://host:port or https://host:port"))
	}
	if (c.DanubeCertFile == "") != (c.DanubeKeyFile == "") {
		errs = append(errs, config.Invalid("DANUBE_CERT_FILE", c.DanubeCertFile, "DANUBE_CERT_FILE and DANUBE_KEY_FILE go together"))
	}
	if c.MaxRetries < -1 {
		errs = append(errs, config.Invalid("MAX_RETRIES", c.MaxRetries, "must be -1 (forever) or more"))
	}
	if c.RetryMaxBackoff > 0 && c.RetryMaxBackoff < c.RetryBackoff {
		errs = append(errs, config.Invalid("RETRY_MAX_BACKOFF_MS", c.RetryMaxBackoff, "must not be below RETRY_BACKOFF_MS="+c.RetryBackoff.String()))
	}
	return errors.Join(errs...)
}

// Retry is the policy from RETRY_POLICY, MAX_RETRIES, RETRY_BACKOFF_MS and RETRY_MAX_BACKOFF_MS.
func (c *Common) Retry() retry.Policy {
	return retry.Policy{Kind: c.RetryPolicy, Base: c.RetryBackoff.D(), Max: c.RetryMaxBackoff.D(), MaxRetries: c.MaxRetries}
}

// ClientOptions are the Danube client options the config implies.
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
	return opts
}

// RetryExhausted is RETRY_EXHAUSTED: what a sink does with a record whose retries ran out.
type RetryExhausted int

const (
	// NackOnExhausted hands the record back to Danube (redelivered after NACK_DELAY_MS and the
	// broker's own backoff; the broker's poison policy applies after its redelivery budget).
	NackOnExhausted RetryExhausted = iota
	// StopOnExhausted stops the connector without acking, exiting non-zero.
	StopOnExhausted
	// DeadLetterOnExhausted publishes the record to DLQ_TOPIC with the last error as the reason,
	// then acks it (if the publish fails, the record is nacked instead).
	DeadLetterOnExhausted
)

func (r RetryExhausted) String() string {
	switch r {
	case StopOnExhausted:
		return "stop"
	case DeadLetterOnExhausted:
		return "dlq"
	}
	return "nack"
}

// UnmarshalText parses "nack", "stop" or "dlq".
func (r *RetryExhausted) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "nack":
		*r = NackOnExhausted
	case "stop":
		*r = StopOnExhausted
	case "dlq":
		*r = DeadLetterOnExhausted
	default:
		return errors.New(`want "nack", "stop" or "dlq"`)
	}
	return nil
}

// SinkConfig configures a sink; embed it in the connector's config struct.
type SinkConfig struct {
	Common
	Topics           []string       `env:"DANUBE_TOPIC,required" envSeparator:"," desc:"topic(s) to consume, comma-separated /namespace/topic"`
	SubscriptionName string         `env:"SUBSCRIPTION_NAME,required" desc:"Danube subscription (the position is kept per subscription)"`
	SubscriptionType string         `env:"SUBSCRIPTION_TYPE" envDefault:"Exclusive" desc:"Exclusive, Shared, Failover or KeyShared"`
	KeyFilters       []string       `env:"KEY_FILTERS" envSeparator:"," desc:"KeyShared only: comma-separated globs (* and ?) of routing keys this instance takes"`
	BatchSize        int            `env:"BATCH_SIZE" envDefault:"1" desc:"records per batch; boundaries align to offsets (the broker's max_unacked_messages must be at least this)"`
	BatchTimeout     config.Millis  `env:"BATCH_TIMEOUT_MS" envDefault:"1000" desc:"flush a partial batch this long after its first record"`
	DLQTopic         string         `env:"DLQ_TOPIC" desc:"dead-letter topic for invalid records (and exhausted ones with RETRY_EXHAUSTED=dlq); empty = invalid records are handled as RETRY_EXHAUSTED"`
	RetryExhausted   RetryExhausted `env:"RETRY_EXHAUSTED" envDefault:"nack" desc:"when retries run out: nack (redeliver after NACK_DELAY_MS), stop (exit non-zero, unacked) or dlq (publish to DLQ_TOPIC with the reason, then ack)"`
	NackDelay        config.Millis  `env:"NACK_DELAY_MS" envDefault:"1000" desc:"redelivery delay asked for with a nack"`
}

// Validate implements config.Validator.
func (c *SinkConfig) Validate() error {
	var errs []error
	if _, err := danube.ParseSubscriptionType(c.SubscriptionType); err != nil {
		errs = append(errs, config.Invalid("SUBSCRIPTION_TYPE", c.SubscriptionType, "want Exclusive, Shared, Failover or KeyShared"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, config.Invalid("BATCH_SIZE", c.BatchSize, "must be at least 1"))
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
	return errors.Join(errs...)
}

// Sink returns c; it lets MainSink find the runtime part of a connector's config.
func (c *SinkConfig) Sink() *SinkConfig { return c }

// SourceConfig configures a source; embed it in the connector's config struct.
type SourceConfig struct {
	Common
	Topic        string        `env:"DANUBE_TOPIC" desc:"default destination topic for records that name none"`
	Partitions   int           `env:"DANUBE_PARTITIONS" envDefault:"0" desc:"partitions of destination topics created by this source (0 = not partitioned)"`
	MaxInFlight  int           `env:"MAX_IN_FLIGHT" envDefault:"1000" desc:"records polled but not yet acked by Danube; Poll waits above it"`
	PollInterval config.Millis `env:"POLL_INTERVAL_MS" envDefault:"100" desc:"wait after a Poll that returned nothing (querying sources only)"`
	BatchSize    int           `env:"BATCH_SIZE" envDefault:"1000" desc:"most records a connector should return from one Poll"`
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
	return errors.Join(errs...)
}

// Source returns c; it lets MainSource find the runtime part of a connector's config.
func (c *SourceConfig) Source() *SourceConfig { return c }

// checkTopic applies Danube's topic rule: /namespace/topic, characters [A-Za-z0-9_-].
func checkTopic(t string) error {
	parts := strings.Split(t, "/")
	if len(parts) != 3 || parts[0] != "" || parts[1] == "" || parts[2] == "" {
		return errors.New("want /namespace/topic")
	}
	for _, p := range parts[1:] {
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return errors.New("only letters, digits, '_' and '-' are allowed in a topic name")
			}
		}
	}
	return nil
}

// defaultShutdown is used when a config in code leaves ShutdownTimeout zero.
const defaultShutdown = 25 * time.Second
