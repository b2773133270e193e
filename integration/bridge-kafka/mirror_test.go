package bridgekafka_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

// TestMirrorIntoUnpartitionedTopicExits is what an operator sees when IMPORT_MIRROR_PARTITIONS
// points at a Danube topic that exists unpartitioned: the process stops at start with exit status
// 1 and an error that names the topic, the partition Danube refused and what to do.
func TestMirrorIntoUnpartitionedTopicExits(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, 1)
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/plain")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = bridgeEnv(b, ep.Bootstrap, "METRICS_ADDR=", "KAFKA_GROUP_ID="+topic+"_group",
		"IMPORT_MAPPINGS="+topic+"=/default/plain", "IMPORT_MIRROR_PARTITIONS=true")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("bridge exited with %v (%v), want status 1; output:\n%s", cmd.ProcessState, err, out)
	}
	want := `IMPORT_MIRROR_PARTITIONS: the Danube topic \"/default/plain\" exists and is not partitioned, ` +
		`so its partition \"/default/plain-part-0\" cannot be created; import into a new Danube topic, or delete \"/default/plain\"`
	if !strings.Contains(string(out), want) {
		t.Errorf("output does not say\n%s\noutput:\n%s", want, out)
	}
}
