package chsink

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// Config is the runtime's sink settings (DANUBE_*, SUBSCRIPTION_*, BATCH_*, RETRY_*, DLQ_TOPIC, ...)
// plus ClickHouse's. The variable names of the design's docker-compose block are kept.
type Config struct {
	runtime.SinkConfig

	Host     string        `env:"CH_HOST,required" desc:"ClickHouse host (native protocol)"`
	Port     int           `env:"CH_PORT" envDefault:"0" desc:"native protocol port; 0 = 9000, or 9440 with CH_TLS"`
	Database string        `env:"CH_DATABASE" envDefault:"default" desc:"database of CH_TABLE"`
	Table    string        `env:"CH_TABLE,required" desc:"table the rows are inserted into; its columns are read from system.columns"`
	User     string        `env:"CH_USER" envDefault:"default" desc:"ClickHouse user"`
	Password config.Secret `env:"CH_PASSWORD" desc:"password of CH_USER"`

	TLS           bool   `env:"CH_TLS" envDefault:"false" desc:"connect with TLS (the secure native port, 9440 by default)"`
	TLSCAFile     string `env:"CH_TLS_CA_FILE" desc:"PEM CA bundle trusted for the server, in addition to the system roots (turns CH_TLS on)"`
	TLSCertFile   string `env:"CH_TLS_CERT_FILE" desc:"client certificate for mTLS (with CH_TLS_KEY_FILE; turns CH_TLS on)"`
	TLSKeyFile    string `env:"CH_TLS_KEY_FILE" desc:"client key for mTLS (with CH_TLS_CERT_FILE)"`
	TLSServerName string `env:"CH_TLS_SERVER_NAME" desc:"server name checked against the certificate (default: CH_HOST)"`
	TLSSkipVerify bool   `env:"CH_TLS_INSECURE_SKIP_VERIFY" envDefault:"false" desc:"DANGEROUS: accept any server certificate (testing only; logged as a warning)"`

	FlushInterval config.Millis `env:"FLUSH_INTERVAL_MS" envDefault:"1000" desc:"least time between the starts of two INSERTs of partial batches (cut by BATCH_TIMEOUT_MS or a gap); full batches are inserted at once. Bounds the parts a trickle creates; 0 = no gap"`
	UnknownFields UnknownFields `env:"UNKNOWN_FIELDS" envDefault:"ignore" desc:"a message field with no column: ignore, or error (the message goes to DLQ_TOPIC)"`
	InsertTimeout config.Millis `env:"CH_INSERT_TIMEOUT_MS" envDefault:"60000" desc:"max time for one INSERT; longer counts as a lost connection (reconnect, the same batch again)"`
	DialTimeout   config.Millis `env:"CH_DIAL_TIMEOUT_MS" envDefault:"5000" desc:"max time to connect"`
	Compression   Compression   `env:"CH_COMPRESSION" envDefault:"lz4" desc:"block compression on the wire: lz4, zstd or none"`

	// Tables from schemas (ddl.go).
	CreateTable bool     `env:"CH_CREATE_TABLE" envDefault:"false" desc:"create CH_TABLE when it does not exist, from the schema of the first record that carries one (columns from its fields, ORDER BY its key)"`
	AlterTable  bool     `env:"CH_ALTER_TABLE" envDefault:"false" desc:"add a column (ALTER TABLE ADD COLUMN) for each field of a record's schema version that CH_TABLE lacks; never drops or retypes one"`
	OrderBy     []string `env:"CH_ORDER_BY" envSeparator:"," desc:"with CH_CREATE_TABLE: the ORDER BY columns, comma-separated (default: the schema's x-primary-key, else none: tuple())"`
	TableEngine string   `env:"CH_TABLE_ENGINE" envDefault:"MergeTree" desc:"with CH_CREATE_TABLE: the table's ENGINE clause, e.g. ReplacingMergeTree(version) or MergeTree PARTITION BY toYYYYMM(ts)"`
}

// EnvDefaults gives the runtime's batching variables the design's values (config.Defaulter):
// an INSERT of up to 10,000 rows, or of what arrived within a second. ClickHouse makes a part of
// every INSERT, so the runtime's generic BATCH_SIZE of 1 would make a part per row.
func (*Config) EnvDefaults() map[string]string {
	return map[string]string{"BATCH_SIZE": "10000", "BATCH_TIMEOUT_MS": "1000"}
}

// UnknownFields is UNKNOWN_FIELDS.
type UnknownFields int

const (
	// IgnoreUnknown drops fields without a column.
	IgnoreUnknown UnknownFields = iota
	// RejectUnknown sends a message with such a field to the dead-letter topic.
	RejectUnknown
)

var unknownFieldsNames = config.Enum[UnknownFields]{{Value: IgnoreUnknown, Name: "ignore"}, {Value: RejectUnknown, Name: "error"}}

func (u UnknownFields) String() string { return unknownFieldsNames.Name(u) }

// UnmarshalText parses "ignore" or "error".
func (u *UnknownFields) UnmarshalText(b []byte) error { return unknownFieldsNames.Parse(u, b) }

// Compression is CH_COMPRESSION.
type Compression string

var compressions = config.Enum[Compression]{{Value: "lz4", Name: "lz4"}, {Value: "zstd", Name: "zstd"}, {Value: "none", Name: "none"}}

// UnmarshalText parses "lz4", "zstd" or "none".
func (c *Compression) UnmarshalText(b []byte) error { return compressions.Parse(c, b) }

// Validate implements config.Validator; it reports every problem at once and dials nothing.
func (c *Config) Validate() error {
	var errs []error
	if strings.ContainsAny(c.Host, "/ ") {
		errs = append(errs, config.Invalid("CH_HOST", c.Host, "want a host name or address, without scheme or path"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, config.Invalid("CH_PORT", c.Port, "want 1 to 65535, or 0 for the default"))
	}
	for _, id := range []struct{ name, value string }{{"CH_DATABASE", c.Database}, {"CH_TABLE", c.Table}} {
		if id.value != "" && !plainIdentifier(id.value) {
			errs = append(errs, config.Invalid(id.name, id.value, "want a plain identifier: letters, digits and _, not starting with a digit"))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, config.Invalid("CH_TLS_CERT_FILE", c.TLSCertFile, "CH_TLS_CERT_FILE and CH_TLS_KEY_FILE go together"))
	}
	for _, f := range []struct{ name, path string }{{"CH_TLS_CA_FILE", c.TLSCAFile}, {"CH_TLS_CERT_FILE", c.TLSCertFile}, {"CH_TLS_KEY_FILE", c.TLSKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, config.Invalid(f.name, f.path, "cannot read: "+strings.TrimPrefix(err.Error(), "stat "+f.path+": ")))
		}
	}
	if c.InsertTimeout <= 0 {
		errs = append(errs, config.Invalid("CH_INSERT_TIMEOUT_MS", c.InsertTimeout, "must be positive"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, config.Invalid("CH_DIAL_TIMEOUT_MS", c.DialTimeout, "must be positive"))
	}
	if c.FlushInterval < 0 {
		errs = append(errs, config.Invalid("FLUSH_INTERVAL_MS", c.FlushInterval, "must not be negative"))
	}
	if slices.ContainsFunc(c.OrderBy, func(name string) bool { return strings.TrimSpace(name) == "" }) {
		errs = append(errs, config.Invalid("CH_ORDER_BY", strings.Join(c.OrderBy, ","), "want column names separated by commas"))
	}
	if strings.TrimSpace(c.TableEngine) == "" || strings.Contains(c.TableEngine, ";") {
		errs = append(errs, config.Invalid("CH_TABLE_ENGINE", c.TableEngine, "want an engine clause such as MergeTree, without ;"))
	}
	return errors.Join(errs...)
}

// secure reports whether the connection uses TLS.
func (c *Config) secure() bool {
	return c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSSkipVerify
}

// addr is host:port with the default port for the protocol.
func (c *Config) addr() string {
	port := c.Port
	if port == 0 {
		port = 9000
		if c.secure() {
			port = 9440
		}
	}
	return fmt.Sprintf("%s:%d", c.Host, port)
}

// plainIdentifier reports whether s needs no quoting rules beyond backticks: no injection through
// CH_DATABASE or CH_TABLE.
func plainIdentifier(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
