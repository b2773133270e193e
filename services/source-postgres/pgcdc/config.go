package pgcdc

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// Config is the runtime's source settings plus the PostgreSQL connection and the CDC settings.
type Config struct {
	runtime.SourceConfig

	Host        string        `env:"PG_HOST,required" desc:"PostgreSQL host (the primary: logical replication needs it)"`
	Port        int           `env:"PG_PORT" envDefault:"5432" desc:"PostgreSQL port"`
	Database    string        `env:"PG_DATABASE,required" desc:"database whose changes are captured"`
	User        string        `env:"PG_USER,required" desc:"user with the REPLICATION attribute (and SELECT on the tables for the snapshot)"`
	Password    config.Secret `env:"PG_PASSWORD" desc:"password of PG_USER (or PG_PASSWORD_FILE)"`
	SSLMode     string        `env:"PG_SSLMODE" envDefault:"prefer" desc:"disable, allow, prefer, require, verify-ca or verify-full"`
	SSLRootCert string        `env:"PG_SSLROOTCERT" desc:"PEM CA bundle to verify the server (verify-ca, verify-full)"`
	SSLCert     string        `env:"PG_SSLCERT" desc:"client certificate (with PG_SSLKEY)"`
	SSLKey      string        `env:"PG_SSLKEY" desc:"client key (with PG_SSLCERT)"`

	Slot          string        `env:"SLOT_NAME" envDefault:"danube_cdc_slot" desc:"logical replication slot (created when missing, never dropped); one replica streams from it at a time"`
	Publication   string        `env:"PUBLICATION_NAME" envDefault:"danube_publication" desc:"publication streamed (created when missing, set to exactly TABLE_WHITELIST when it differs)"`
	Tables        []string      `env:"TABLE_WHITELIST,required" envSeparator:"," desc:"comma-separated tables to capture: schema.table, or table for public.table"`
	TopicTemplate string        `env:"TOPIC_TEMPLATE" desc:"per-table destination, e.g. /default/pg-{schema}-{table}; empty = every table to DANUBE_TOPIC"`
	SnapshotMode  string        `env:"SNAPSHOT_MODE" envDefault:"initial" desc:"initial (read the tables when the slot is created, and tables added to TABLE_WHITELIST later, then stream), never (stream only) or initial_only (read the tables without a slot, then exit 0 once Danube acked them)"`
	SnapshotState string        `env:"SNAPSHOT_STATE_TABLE" envDefault:"public.danube_cdc_snapshot" desc:"table (created when missing) where snapshot progress is kept, so a restart resumes a snapshot instead of starting over"`
	Heartbeat     config.Millis `env:"HEARTBEAT_INTERVAL_MS" envDefault:"10000" desc:"standby status interval: how often the acked LSN is reported to PostgreSQL, even when idle (keeps the slot from retaining WAL)"`
	TxMarkers     bool          `env:"TX_MARKERS" envDefault:"false" desc:"also publish BEGIN and COMMIT events around each transaction"`
}

// Snapshot modes.
const (
	SnapshotInitial     = "initial"
	SnapshotNever       = "never"
	SnapshotInitialOnly = "initial_only"
)

// Table is a captured table.
type Table struct{ Schema, Name string }

func (t Table) String() string { return t.Schema + "." + t.Name }

// Quoted is the table's name for SQL.
func (t Table) Quoted() string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// parseTable reads schema.table or table (public).
func parseTable(s string) (Table, error) {
	s = strings.TrimSpace(s)
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		schema, name = "public", s
	}
	if schema == "" || name == "" || strings.Contains(name, ".") {
		return Table{}, errors.New("want schema.table or table")
	}
	return Table{schema, name}, nil
}

// TableList returns TABLE_WHITELIST parsed (Validate has checked it).
func (c *Config) TableList() []Table {
	var out []Table
	seen := map[Table]bool{}
	for _, s := range c.Tables {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if t, err := parseTable(s); err == nil && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// topicFor returns the destination topic of t ("" = DANUBE_TOPIC).
func (c *Config) topicFor(t Table) string {
	if c.TopicTemplate == "" {
		return ""
	}
	return strings.NewReplacer("{schema}", t.Schema, "{table}", t.Name).Replace(c.TopicTemplate)
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, config.Invalid("PG_PORT", c.Port, "must be 1 to 65535"))
	}
	switch c.SSLMode {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		errs = append(errs, config.Invalid("PG_SSLMODE", c.SSLMode, "want disable, allow, prefer, require, verify-ca or verify-full"))
	}
	if (c.SSLCert == "") != (c.SSLKey == "") {
		errs = append(errs, config.Invalid("PG_SSLCERT", c.SSLCert, "PG_SSLCERT and PG_SSLKEY go together"))
	}
	if !validSlot(c.Slot) {
		errs = append(errs, config.Invalid("SLOT_NAME", c.Slot, "want 1 to 63 lower-case letters, digits and '_' (PostgreSQL's rule for slot names)"))
	}
	if c.Publication == "" {
		errs = append(errs, config.Invalid("PUBLICATION_NAME", c.Publication, "must not be empty"))
	}
	n := 0
	for _, s := range c.Tables {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n++
		if _, err := parseTable(s); err != nil {
			errs = append(errs, config.Invalid("TABLE_WHITELIST", s, err.Error()))
		}
	}
	if n == 0 && len(c.Tables) > 0 {
		errs = append(errs, config.Invalid("TABLE_WHITELIST", strings.Join(c.Tables, ","), "names no table"))
	}
	switch {
	case c.TopicTemplate == "" && c.Topic == "":
		errs = append(errs, &config.FieldError{Var: "DANUBE_TOPIC", Reason: "required unless TOPIC_TEMPLATE is set"})
	case c.TopicTemplate != "":
		if !strings.Contains(c.TopicTemplate, "{table}") {
			errs = append(errs, config.Invalid("TOPIC_TEMPLATE", c.TopicTemplate, "must contain {table}"))
		}
		for _, t := range c.TableList() {
			if topic := c.topicFor(t); danube.CheckTopic(topic) != nil {
				errs = append(errs, config.Invalid("TOPIC_TEMPLATE", c.TopicTemplate,
					fmt.Sprintf("gives %q for %s: want /namespace/topic of letters, digits, '_' and '-'", topic, t)))
			}
		}
	}
	switch {
	case c.SchemaType == schema.Avro && c.TxMarkers:
		errs = append(errs, config.Invalid("SCHEMA_TYPE", c.SchemaType, "TX_MARKERS has no Avro events yet: use json_schema, or TX_MARKERS=false"))
	case c.SchemaType != schema.None && c.TopicTemplate == "":
		errs = append(errs, config.Invalid("SCHEMA_TYPE", c.SchemaType, "needs TOPIC_TEMPLATE: each table's events have a schema of their own, so each table needs a topic (a subject) of its own"))
	}
	if c.TxMarkers && c.Topic == "" {
		errs = append(errs, &config.FieldError{Var: "DANUBE_TOPIC", Reason: "required with TX_MARKERS=true (BEGIN and COMMIT events go there)"})
	}
	switch c.SnapshotMode {
	case SnapshotInitial, SnapshotNever, SnapshotInitialOnly:
	default:
		errs = append(errs, config.Invalid("SNAPSHOT_MODE", c.SnapshotMode, "want initial, never or initial_only"))
	}
	if c.SnapshotMode != SnapshotNever {
		if _, err := parseTable(c.SnapshotState); err != nil {
			errs = append(errs, config.Invalid("SNAPSHOT_STATE_TABLE", c.SnapshotState, err.Error()))
		}
	}
	if c.Heartbeat.D() <= 0 {
		errs = append(errs, config.Invalid("HEARTBEAT_INTERVAL_MS", c.Heartbeat, "must be positive"))
	}
	return errors.Join(errs...)
}

func validSlot(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// dsn is the connection URL; replication adds replication=database.
func (c *Config) dsn(replication bool) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), Path: "/" + c.Database}
	if c.Password.IsSet() {
		u.User = url.UserPassword(c.User, c.Password.Reveal())
	} else {
		u.User = url.User(c.User)
	}
	q := url.Values{}
	q.Set("sslmode", c.SSLMode)
	q.Set("application_name", "danube-source-postgres")
	for k, v := range map[string]string{"sslrootcert": c.SSLRootCert, "sslcert": c.SSLCert, "sslkey": c.SSLKey} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if replication {
		q.Set("replication", "database")
	}
	u.RawQuery = q.Encode()
	return u.String()
}
