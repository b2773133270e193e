package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// KafkaImage is the image of the Kafka container: Apache Kafka in KRaft
// mode, the same release that tools/itservers/itservers.sh runs from its
// Maven Central artifacts on machines without Docker (a test keeps the two
// versions equal).
const KafkaImage = "apache/kafka:4.1.0"

// KafkaEndpoint is a Kafka cluster. Tests isolate themselves by topic and
// group names from [Name]; topics are not created for them.
type KafkaEndpoint struct {
	// Bootstrap is a comma-separated list of host:port, as
	// bootstrap.servers takes it.
	Bootstrap string
	// Source says where the cluster came from and, when known, which
	// server it is, for test logs (the Kafka protocol does not tell).
	Source string
}

var kafkaServer shared[KafkaEndpoint]

// Kafka returns a Kafka cluster (see the package doc for the order of
// choice).
func Kafka(t testing.TB) KafkaEndpoint {
	t.Helper()
	return resolve(t, "Kafka", EnvKafkaBootstrap, kafkaFromEnv, &kafkaServer, startKafka)
}

func kafkaFromEnv() (KafkaEndpoint, error) {
	bootstrap := os.Getenv(EnvKafkaBootstrap)
	addrs := strings.Split(bootstrap, ",")
	for i := range addrs {
		addrs[i] = strings.TrimSpace(addrs[i])
	}
	if err := checkReachable(EnvKafkaBootstrap, addrs...); err != nil {
		return KafkaEndpoint{}, err
	}
	source := EnvKafkaBootstrap + "=" + bootstrap
	if server := os.Getenv(EnvKafkaServer); server != "" {
		source += " (" + server + ")"
	}
	return KafkaEndpoint{Bootstrap: strings.Join(addrs, ","), Source: source}, nil
}

// The Kafka container must advertise the host's address of its listener,
// which is known only once the container runs: the container waits for a
// start script that the harness writes after start.
const (
	kafkaPort          = "9093/tcp"
	kafkaStarterScript = "/tmp/it-kafka-start.sh"
)

func startKafka(ctx context.Context) (KafkaEndpoint, error) {
	c, err := run(ctx, KafkaImage,
		testcontainers.WithEnv(map[string]string{
			"CLUSTER_ID":                                     "5L6g3nShT-eMCtK--X86sw",
			"KAFKA_NODE_ID":                                  "1",
			"KAFKA_PROCESS_ROLES":                            "broker,controller",
			"KAFKA_LISTENERS":                                "PLAINTEXT://0.0.0.0:9093,BROKER://0.0.0.0:9092,CONTROLLER://0.0.0.0:9094",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"KAFKA_INTER_BROKER_LISTENER_NAME":               "BROKER",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9094",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
			"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":             "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		}),
		testcontainers.WithExposedPorts(kafkaPort),
		// The image's entrypoint execs its command: keep it, and make the
		// command wait for the start script.
		testcontainers.WithCmd("sh", "-c",
			"while [ ! -f "+kafkaStarterScript+" ]; do sleep 0.1; done; . "+kafkaStarterScript+"; exec /etc/kafka/docker/run"),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostStarts: []testcontainers.ContainerHook{writeKafkaStarter},
		}),
	)
	if err != nil {
		return KafkaEndpoint{}, err
	}
	bootstrap, err := c.PortEndpoint(ctx, kafkaPort, "")
	if err != nil {
		return KafkaEndpoint{}, fmt.Errorf("kafka container port: %w", err)
	}
	return KafkaEndpoint{Bootstrap: bootstrap, Source: "container " + KafkaImage}, nil
}

// writeKafkaStarter writes the start script with the advertised listeners
// and waits for the broker; one hook, so that the wait never runs before the
// script exists.
func writeKafkaStarter(ctx context.Context, c testcontainers.Container) error {
	if err := wait.ForMappedPort(kafkaPort).WaitUntilReady(ctx, c); err != nil {
		return fmt.Errorf("kafka mapped port: %w", err)
	}
	endpoint, err := c.PortEndpoint(ctx, kafkaPort, "PLAINTEXT")
	if err != nil {
		return fmt.Errorf("kafka port endpoint: %w", err)
	}
	inspect, err := c.Inspect(ctx)
	if err != nil {
		return fmt.Errorf("inspect kafka container: %w", err)
	}
	script := fmt.Sprintf("export KAFKA_ADVERTISED_LISTENERS=%s,BROKER://%s:9092\n", endpoint, inspect.Config.Hostname)
	if err := c.CopyToContainer(ctx, []byte(script), kafkaStarterScript, 0o644); err != nil {
		return fmt.Errorf("copy kafka start script: %w", err)
	}
	return wait.ForLog("Kafka Server started").WaitUntilReady(ctx, c)
}
