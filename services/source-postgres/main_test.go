package main

import (
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReadmeVariablesMatchHelp keeps README.md's configuration table identical to --help.
func TestReadmeVariablesMatchHelp(t *testing.T) {
	var cfg pgcdc.Config
	configtest.ReadmeMatchesHelp(t, "README.md", "source-postgres", &cfg, &cfg.Common)
}

// checkDesign asserts the settings of the design's block.
func checkDesign(t *testing.T, cfg *pgcdc.Config) {
	t.Helper()
	want := []pgcdc.Table{{Schema: "public", Name: "users"}, {Schema: "public", Name: "orders"}, {Schema: "public", Name: "products"}}
	if cfg.Host != "postgres-db" || cfg.Port != 5432 || cfg.Database != "myapp" || cfg.User != "replicator" ||
		cfg.Password.Reveal() != "secret" || cfg.Slot != "danube_cdc_slot" || cfg.Publication != "danube_publication" ||
		!slices.Equal(cfg.TableList(), want) || cfg.Topic != "/default/postgres-changes" || cfg.ConnectorName != "postgres-cdc-1" ||
		cfg.PollInterval.D().Milliseconds() != 100 || cfg.BatchSize != 1000 || cfg.SnapshotMode != pgcdc.SnapshotInitial {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestDesignComposeBlockLoads loads the source-postgres block of docs/connectors.md, as written,
// through the real configuration path.
func TestDesignComposeBlockLoads(t *testing.T) {
	image, environ := configtest.MarkdownComposeEnv(t, "../../docs/connectors.md", "source-postgres", "connector-postgres-cdc")
	if image != "danube-connect/source-postgres:v0.1" {
		t.Fatalf("the connector-postgres-cdc service's image is %q, not the design's", image)
	}
	checkDesign(t, configtest.Load[pgcdc.Config](t, environ))
}

// TestDeployComposeConfigLoads loads deploy/source-postgres's compose file the same way.
func TestDeployComposeConfigLoads(t *testing.T) {
	_, environ := configtest.ComposeEnv(t, "../../deploy/source-postgres/docker-compose.yml", "connector-postgres-cdc")
	checkDesign(t, configtest.Load[pgcdc.Config](t, environ))
}

// TestDeployKubernetesConfigLoads loads the Deployment's environment; the pod name and the
// password file it mounts are stood in for.
func TestDeployKubernetesConfigLoads(t *testing.T) {
	environ := deploytest.KubernetesEnv(t, "../../deploy/source-postgres/kubernetes.yaml", "source-postgres",
		map[string]string{"metadata.name": "source-postgres-7d9f-abcde"})
	secret := configtest.TempFile(t, "password", "s3cret\n")
	cfg := configtest.Load[pgcdc.Config](t, configtest.StandInFiles(environ, secret))
	if cfg.Password.Reveal() != "s3cret" || cfg.SSLMode != "verify-full" || len(cfg.TableList()) != 3 || cfg.ConnectorName != "source-postgres-7d9f-abcde" {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestInvalidConfigListsEveryProblem: bad settings stop the service at start, all at once.
func TestInvalidConfigListsEveryProblem(t *testing.T) {
	var cfg pgcdc.Config
	err := config.Load(&cfg, []string{
		"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=x", "PG_HOST=h", "PG_DATABASE=d", "PG_USER=u",
		"TABLE_WHITELIST=users,a.b.c", "SLOT_NAME=Bad-Slot", "SNAPSHOT_MODE=sometimes", "PG_SSLMODE=maybe",
		"TOPIC_TEMPLATE=/default/pg.{table}",
	})
	if err == nil {
		t.Fatal("loaded an invalid config")
	}
	for _, want := range []string{
		`TABLE_WHITELIST="a.b.c": want schema.table or table`,
		`SLOT_NAME="Bad-Slot": want 1 to 63 lower-case letters`,
		`SNAPSHOT_MODE="sometimes": want initial, never or initial_only`,
		`PG_SSLMODE="maybe"`,
		`TOPIC_TEMPLATE="/default/pg.{table}"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// SCHEMA_TYPE needs a topic per table, and this connector derives JSON Schemas only.
func TestSchemaSettings(t *testing.T) {
	base := []string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=x", "PG_HOST=h", "PG_DATABASE=d", "PG_USER=u",
		"TABLE_WHITELIST=users"}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"DANUBE_TOPIC=/default/all", "SCHEMA_TYPE=json_schema"}, `SCHEMA_TYPE="json_schema": needs TOPIC_TEMPLATE`},
		{[]string{"TOPIC_TEMPLATE=/default/pg-{table}", "DANUBE_TOPIC=/default/tx", "TX_MARKERS=true", "SCHEMA_TYPE=avro"}, `SCHEMA_TYPE="avro": TX_MARKERS has no Avro events yet`},
		{[]string{"TOPIC_TEMPLATE=/default/pg-{table}", "SCHEMA_TYPE=avro"}, ""},
		{[]string{"TOPIC_TEMPLATE=/default/pg-{table}", "SCHEMA_TYPE=json_schema"}, ""},
	} {
		var cfg pgcdc.Config
		err := config.Load(&cfg, append(slices.Clone(base), tc.env...))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
}
