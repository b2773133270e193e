package main

import "testing"

// The expected names are the repositories Gazelle's go_deps extension creates for these modules.
func TestRepoName(t *testing.T) {
	for path, want := range map[string]string{
		"google.golang.org/grpc":                        "org_golang_google_grpc",
		"go.uber.org/goleak":                            "org_uber_go_goleak",
		"github.com/ClickHouse/clickhouse-go/v2":        "com_github_clickhouse_clickhouse_go_v2",
		"github.com/confluentinc/confluent-kafka-go/v2": "com_github_confluentinc_confluent_kafka_go_v2",
		"github.com/eclipse/paho.mqtt.golang":           "com_github_eclipse_paho_mqtt_golang",
		"honnef.co/go/tools":                            "co_honnef_go_tools",
		"go.opentelemetry.io/otel/sdk/metric":           "io_opentelemetry_go_otel_sdk_metric",
	} {
		if got := repoName(path); got != want {
			t.Errorf("repoName(%q) = %q, want %q", path, got, want)
		}
	}
}
