package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

type Common struct {
	ServiceURL string        `env:"DANUBE_SERVICE_URL,required" desc:"Danube broker URL"`
	Token      config.Secret `env:"DANUBE_TOKEN" desc:"JWT"`
	BatchSize  int           `env:"BATCH_SIZE" envDefault:"1" desc:"records per batch"`
	Timeout    config.Millis `env:"BATCH_TIMEOUT_MS" envDefault:"1000" desc:"flush after"`
	Topics     []string      `env:"DANUBE_TOPIC" envSeparator:"," desc:"topics"`
}

func (c *Common) Validate() error {
	if c.BatchSize < 1 {
		return config.Invalid("BATCH_SIZE", c.BatchSize, "must be at least 1")
	}
	return nil
}

type connector struct {
	Common
	TargetURL string        `env:"TARGET_URL,required" desc:"where to POST"`
	Password  config.Secret `env:"PASSWORD" desc:"basic auth password"`
	DB        struct {
		Port int `env:"PORT" envDefault:"5432" desc:"db port"`
	} `envPrefix:"PG_"`
}

func (c *connector) Validate() error {
	var errs []error
	if strings.HasPrefix(c.TargetURL, "ftp:") {
		errs = append(errs, config.Invalid("TARGET_URL", c.TargetURL, "scheme must be http or https"))
	}
	errs = append(errs, c.Common.Validate()) // duplicates of the promoted check are dropped
	return errors.Join(errs...)
}

func TestLoadParsesEmbeddedNestedAndDefaults(t *testing.T) {
	var c connector
	err := config.Load(&c, []string{
		"DANUBE_SERVICE_URL=http://127.0.0.1:6650", "TARGET_URL=http://x", "DANUBE_TOPIC=/default/a,/default/b",
		"PG_PORT=6543", "PASSWORD=hunter2",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.ServiceURL != "http://127.0.0.1:6650" || c.BatchSize != 1 || c.Timeout.D() != time.Second ||
		c.DB.Port != 6543 || c.Password.Reveal() != "hunter2" || len(c.Topics) != 2 || c.Topics[1] != "/default/b" {
		t.Fatalf("got %+v", c)
	}
}

func TestLoadReportsEveryProblemWithNameAndValue(t *testing.T) {
	var c connector
	err := config.Load(&c, []string{"BATCH_SIZE=ten", "BATCH_TIMEOUT_MS=-5", "PG_PORT=x", "TARGET_URL="})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *config.Error, got %v", err)
	}
	want := []string{
		`DANUBE_SERVICE_URL: required, but not set`,
		`BATCH_SIZE="ten": want an integer (invalid syntax)`,
		`BATCH_TIMEOUT_MS="-5": want a non-negative integer number of milliseconds`,
		`TARGET_URL: required, but empty`,
		`PG_PORT="x": want an integer (invalid syntax)`,
	}
	got := map[string]bool{}
	for _, p := range ce.Problems {
		got[p.Error()] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("missing problem %q in:\n%v", w, err)
		}
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ce.Problems), len(want), err)
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Var == "" {
		t.Errorf("errors.As(*FieldError) failed: %v", err)
	}
}

func TestValidateRunsOnEveryLevelOnce(t *testing.T) {
	var c connector
	err := config.Load(&c, []string{"DANUBE_SERVICE_URL=u", "TARGET_URL=ftp://x", "BATCH_SIZE=0"})
	want := "invalid configuration (2 problems):\n" +
		"  BATCH_SIZE=\"0\": must be at least 1\n" +
		"  TARGET_URL=\"ftp://x\": scheme must be http or https"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestSecretFileVariant(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tok")
	if err := os.WriteFile(p, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c connector
	if err := config.Load(&c, []string{"DANUBE_SERVICE_URL=u", "TARGET_URL=http://x", "DANUBE_TOKEN_FILE=" + p}); err != nil {
		t.Fatal(err)
	}
	if c.Token.Reveal() != "s3cr3t" {
		t.Fatalf("token %q", c.Token.Reveal())
	}
	missing := filepath.Join(dir, "nope")
	err := config.Load(&connector{}, []string{"DANUBE_SERVICE_URL=u", "TARGET_URL=http://x",
		"PASSWORD_FILE=" + missing, "DANUBE_TOKEN=a", "DANUBE_TOKEN_FILE=" + p})
	want := "invalid configuration (2 problems):\n" +
		"  DANUBE_TOKEN_FILE=\"" + p + "\": set together with DANUBE_TOKEN; use one\n" +
		"  PASSWORD_FILE=\"" + missing + "\": cannot read: open " + missing + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c := connector{Password: config.NewSecret("hunter2")}
	c.Token = config.NewSecret("tok")
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %+v %#v %s", c, c, c, c.Password)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "c", c, "p", c.Password)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "p", c.Password)
	b, _ := json.Marshal(c)
	buf.Write(b)
	if err := config.Print(&buf, &c); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); strings.Contains(s, "hunter2") || strings.Contains(s, "tok\"") || strings.Contains(s, "=tok") {
		t.Fatalf("secret leaked:\n%s", s)
	}
}

func TestUsageAndPrint(t *testing.T) {
	var buf bytes.Buffer
	if err := config.Usage(&buf, &connector{}); err != nil {
		t.Fatal(err)
	}
	want := `VARIABLE            TYPE            DEFAULT     DESCRIPTION
DANUBE_SERVICE_URL  string          (required)  Danube broker URL
DANUBE_TOKEN        secret          -           JWT
DANUBE_TOKEN_FILE   path            -           file holding DANUBE_TOKEN (alternative to setting it directly)
BATCH_SIZE          int             1           records per batch
BATCH_TIMEOUT_MS    milliseconds    1000        flush after
DANUBE_TOPIC        list of string  -           topics
TARGET_URL          string          (required)  where to POST
PASSWORD            secret          -           basic auth password
PASSWORD_FILE       path            -           file holding PASSWORD (alternative to setting it directly)
PG_PORT             int             5432        db port
`
	if buf.String() != want {
		t.Fatalf("usage:\n%s\nwant:\n%s", buf.String(), want)
	}
	var c connector
	if err := config.Load(&c, []string{"DANUBE_SERVICE_URL=u", "TARGET_URL=http://x", "PASSWORD=p", "DANUBE_TOPIC=/a/b,/a/c"}); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := config.Print(&buf, &c); err != nil {
		t.Fatal(err)
	}
	want = "DANUBE_SERVICE_URL=u\nDANUBE_TOKEN=\nBATCH_SIZE=1\nBATCH_TIMEOUT_MS=1000\nDANUBE_TOPIC=/a/b,/a/c\n" +
		"TARGET_URL=http://x\nPASSWORD=[REDACTED]\nPG_PORT=5432\n"
	if buf.String() != want {
		t.Fatalf("print:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestLoadRejectsNonPointer(t *testing.T) {
	if err := config.Load(connector{}, nil); err == nil || err.Error() != "config: Load needs a non-nil pointer to a struct, got config_test.connector" {
		t.Fatalf("got %v", err)
	}
}

// batcher is a connector whose natural batch is larger than the embedded struct's default.
type batcher struct{ Common }

func (*batcher) EnvDefaults() map[string]string { return map[string]string{"BATCH_SIZE": "500"} }

func TestEnvDefaultsReplaceEmbeddedDefaults(t *testing.T) {
	for _, c := range []struct {
		environ []string
		want    int
	}{
		{nil, 500},
		{[]string{"BATCH_SIZE="}, 500},
		{[]string{"BATCH_SIZE=1"}, 1},
	} {
		var b batcher
		if err := config.Load(&b, append([]string{"DANUBE_SERVICE_URL=u"}, c.environ...)); err != nil {
			t.Fatal(err)
		}
		if b.BatchSize != c.want {
			t.Errorf("%q: BATCH_SIZE %d, want %d", c.environ, b.BatchSize, c.want)
		}
	}
	var buf bytes.Buffer
	if err := config.Usage(&buf, &batcher{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "BATCH_SIZE          int             500") {
		t.Errorf("usage does not show the default of EnvDefaults:\n%s", buf.String())
	}
}

// misnamed declares a default for a variable that no field has.
type misnamed struct{ Common }

func (*misnamed) EnvDefaults() map[string]string { return map[string]string{"BATCH_SIZ": "500"} }

func TestEnvDefaultsOfUndeclaredVariable(t *testing.T) {
	var m misnamed
	err := config.Load(&m, []string{"DANUBE_SERVICE_URL=u"})
	if err == nil || !strings.Contains(err.Error(), "names BATCH_SIZ, which no field declares") {
		t.Fatalf("Load = %v, want the undeclared variable named", err)
	}
}
