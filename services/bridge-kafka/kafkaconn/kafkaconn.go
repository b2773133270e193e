// Package kafkaconn is the bridge's Kafka connection settings (brokers, TLS, SASL and validated
// librdkafka pass-through properties) and the librdkafka configuration built from them.
package kafkaconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// Config is how the bridge reaches Kafka; imports and exports share it.
type Config struct {
	Bootstrap        []string      `env:"KAFKA_BOOTSTRAP_SERVERS,required" envSeparator:"," desc:"Kafka brokers, comma-separated host:port"`
	ClientID         string        `env:"KAFKA_CLIENT_ID" desc:"client.id sent to Kafka (empty = CONNECTOR_NAME)"`
	SecurityProtocol Protocol      `env:"KAFKA_SECURITY_PROTOCOL" envDefault:"plaintext" desc:"plaintext, ssl, sasl_plaintext or sasl_ssl"`
	SASLMechanism    string        `env:"KAFKA_SASL_MECHANISM" desc:"sasl_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	SASLUsername     string        `env:"KAFKA_SASL_USERNAME" desc:"sasl_*: user name"`
	SASLPassword     config.Secret `env:"KAFKA_SASL_PASSWORD" desc:"sasl_*: password of KAFKA_SASL_USERNAME"`
	CAFile           string        `env:"KAFKA_SSL_CA_FILE" desc:"ssl, sasl_ssl: PEM CA bundle to verify the brokers (empty = system roots)"`
	CertFile         string        `env:"KAFKA_SSL_CERT_FILE" desc:"ssl, sasl_ssl: client certificate for mTLS (with KAFKA_SSL_KEY_FILE)"`
	KeyFile          string        `env:"KAFKA_SSL_KEY_FILE" desc:"ssl, sasl_ssl: client key for mTLS (with KAFKA_SSL_CERT_FILE)"`
	KeyPassword      config.Secret `env:"KAFKA_SSL_KEY_PASSWORD" desc:"ssl, sasl_ssl: password of an encrypted KAFKA_SSL_KEY_FILE"`
}

// Protocol is KAFKA_SECURITY_PROTOCOL.
type Protocol string

var protocols = config.Enum[Protocol]{
	{Value: "plaintext", Name: "plaintext"}, {Value: "ssl", Name: "ssl"},
	{Value: "sasl_plaintext", Name: "sasl_plaintext"}, {Value: "sasl_ssl", Name: "sasl_ssl"},
}

// UnmarshalText accepts librdkafka's security.protocol values, in any case.
func (p *Protocol) UnmarshalText(b []byte) error { return protocols.Parse(p, b) }

func (p Protocol) tls() bool  { return p == "ssl" || p == "sasl_ssl" }
func (p Protocol) sasl() bool { return p == "sasl_plaintext" || p == "sasl_ssl" }

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	for _, b := range c.Bootstrap {
		if _, port, err := net.SplitHostPort(strings.TrimSpace(b)); err != nil || port == "" {
			errs = append(errs, config.Invalid("KAFKA_BOOTSTRAP_SERVERS", b, "want host:port"))
		}
	}
	p := c.SecurityProtocol
	if p.sasl() {
		switch c.SASLMechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		case "":
			errs = append(errs, &config.FieldError{Var: "KAFKA_SASL_MECHANISM", Reason: "required with KAFKA_SECURITY_PROTOCOL=" + string(p)})
		default:
			errs = append(errs, config.Invalid("KAFKA_SASL_MECHANISM", c.SASLMechanism, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
		}
		if c.SASLUsername == "" {
			errs = append(errs, &config.FieldError{Var: "KAFKA_SASL_USERNAME", Reason: "required with KAFKA_SECURITY_PROTOCOL=" + string(p)})
		}
		if !c.SASLPassword.IsSet() {
			errs = append(errs, &config.FieldError{Var: "KAFKA_SASL_PASSWORD", Reason: "required with KAFKA_SECURITY_PROTOCOL=" + string(p)})
		}
	} else {
		for _, s := range []struct{ name, v string }{{"KAFKA_SASL_MECHANISM", c.SASLMechanism}, {"KAFKA_SASL_USERNAME", c.SASLUsername}} {
			if s.v != "" {
				errs = append(errs, config.Invalid(s.name, s.v, "needs KAFKA_SECURITY_PROTOCOL=sasl_plaintext or sasl_ssl"))
			}
		}
		if c.SASLPassword.IsSet() {
			errs = append(errs, config.Invalid("KAFKA_SASL_PASSWORD", c.SASLPassword, "needs KAFKA_SECURITY_PROTOCOL=sasl_plaintext or sasl_ssl"))
		}
	}
	files := []struct{ name, path string }{{"KAFKA_SSL_CA_FILE", c.CAFile}, {"KAFKA_SSL_CERT_FILE", c.CertFile}, {"KAFKA_SSL_KEY_FILE", c.KeyFile}}
	for _, f := range files {
		switch {
		case f.path == "":
		case !p.tls():
			errs = append(errs, config.Invalid(f.name, f.path, "needs KAFKA_SECURITY_PROTOCOL=ssl or sasl_ssl"))
		default:
			if fh, err := os.Open(f.path); err != nil {
				var pe *os.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				errs = append(errs, config.Invalid(f.name, f.path, fmt.Sprintf("cannot read: %v", err)))
			} else {
				_ = fh.Close()
			}
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, config.Invalid("KAFKA_SSL_CERT_FILE", c.CertFile, "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together"))
	}
	if c.KeyPassword.IsSet() && c.KeyFile == "" {
		errs = append(errs, config.Invalid("KAFKA_SSL_KEY_PASSWORD", c.KeyPassword, "needs KAFKA_SSL_KEY_FILE"))
	}
	return errors.Join(errs...)
}

// ConfigMap returns the librdkafka configuration of the connection; clientID is used when
// KAFKA_CLIENT_ID is empty. The bridge adds the consumer's or producer's own settings to it.
func (c *Config) ConfigMap(clientID string) kafka.ConfigMap {
	bootstrap := make([]string, len(c.Bootstrap))
	for i, b := range c.Bootstrap {
		bootstrap[i] = strings.TrimSpace(b)
	}
	if c.ClientID != "" {
		clientID = c.ClientID
	}
	m := kafka.ConfigMap{
		"bootstrap.servers": strings.Join(bootstrap, ","),
		"client.id":         clientID,
		"security.protocol": string(c.SecurityProtocol),
		// KIP-714 client metrics push: nothing reads them here, and brokers (or Kafka-protocol
		// servers) without it only log errors.
		"enable.metrics.push": false,
	}
	if m["security.protocol"] == "" {
		m["security.protocol"] = "plaintext"
	}
	if c.SecurityProtocol.sasl() {
		m["sasl.mechanism"] = c.SASLMechanism
		m["sasl.username"] = c.SASLUsername
		m["sasl.password"] = c.SASLPassword.Reveal()
	}
	if c.SecurityProtocol.tls() {
		setIf(m, "ssl.ca.location", c.CAFile)
		setIf(m, "ssl.certificate.location", c.CertFile)
		setIf(m, "ssl.key.location", c.KeyFile)
		setIf(m, "ssl.key.password", c.KeyPassword.Reveal())
	}
	return m
}

func setIf(m kafka.ConfigMap, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// Properties is a list of librdkafka properties passed through as they are:
// "name=value;name=value". Names are checked for syntax and against the properties the bridge sets
// itself; librdkafka checks names and values when the client is created, and a rejected one stops
// the bridge at start (exit 1) with librdkafka's reason. Parsing never fails: Check reports the
// problems. The values of secret properties (see sensitive) are never printed.
type Properties struct {
	Values   map[string]string
	problems []string
}

// reserved are the properties the bridge owns: its data-safety guarantee or its other variables
// depend on them.
var reserved = map[string]string{
	"bootstrap.servers":        "set KAFKA_BOOTSTRAP_SERVERS",
	"group.id":                 "set KAFKA_GROUP_ID",
	"enable.auto.commit":       "offsets are committed only after Danube acknowledged the records",
	"enable.auto.offset.store": "offsets are committed only after Danube acknowledged the records",
	"auto.offset.reset":        "set KAFKA_AUTO_OFFSET_RESET",
	"enable.idempotence":       "the export's producer is always idempotent",
	"acks":                     "the idempotent producer needs acks=all",
	"message.timeout.ms":       "set KAFKA_DELIVERY_TIMEOUT_MS",
	"delivery.timeout.ms":      "set KAFKA_DELIVERY_TIMEOUT_MS",
	"security.protocol":        "set KAFKA_SECURITY_PROTOCOL",
	"sasl.mechanism":           "set KAFKA_SASL_MECHANISM",
	"sasl.mechanisms":          "set KAFKA_SASL_MECHANISM",
	"sasl.username":            "set KAFKA_SASL_USERNAME",
	"sasl.password":            "set KAFKA_SASL_PASSWORD",
	"ssl.key.password":         "set KAFKA_SSL_KEY_PASSWORD",
	"client.id":                "set KAFKA_CLIENT_ID",
}

// UnmarshalText parses "name=value;name=value"; see Check.
func (p *Properties) UnmarshalText(b []byte) error {
	*p = Properties{Values: map[string]string{}}
	for kv := range strings.SplitSeq(string(b), ";") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || k == "":
			p.problems = append(p.problems, fmt.Sprintf("%q: want name=value", k))
		case strings.HasPrefix(k, "go."):
			p.problems = append(p.problems, fmt.Sprintf("%q: go.* settings belong to the bridge", k))
		case reserved[k] != "":
			p.problems = append(p.problems, fmt.Sprintf("%q: set by the bridge (%s)", k, reserved[k]))
		case strings.ContainsFunc(k, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_') }):
			p.problems = append(p.problems, fmt.Sprintf("%q: not a librdkafka property name", k))
		default:
			p.Values[k] = v
		}
	}
	return nil
}

// Check reports the problems UnmarshalText found as one configuration error for variable, with
// the value as String prints it.
func (p Properties) Check(variable string) error {
	if len(p.problems) == 0 {
		return nil
	}
	return config.Invalid(variable, p.String(), strings.Join(p.problems, "; "))
}

// String renders the properties sorted by name (for --print-config and the start-up log), the
// value of a secret one redacted.
func (p Properties) String() string {
	keys := make([]string, 0, len(p.Values))
	for k := range p.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		v := p.Values[k]
		if sensitive(k) {
			v = config.NewSecret(v).String()
		}
		keys[i] = k + "=" + v
	}
	return strings.Join(keys, ";")
}

// sensitive reports whether librdkafka property name holds a secret: the properties librdkafka's
// CONFIGURATION.md marks sensitive (passwords, client secrets, private keys, the OAUTHBEARER
// configuration), and any property named like one, so that a property a later librdkafka adds is
// redacted too.
func sensitive(name string) bool {
	switch name {
	case "ssl.key.pem", "ssl_key", "sasl.oauthbearer.config":
		return true
	}
	for _, s := range []string{"password", "secret", "passphrase", "private.key"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// Apply sets the properties on m (after the bridge's own settings, so a tuning default such as
// queued.max.messages.kbytes can be overridden).
func (p Properties) Apply(m kafka.ConfigMap) {
	for k, v := range p.Values {
		m[k] = v
	}
}
