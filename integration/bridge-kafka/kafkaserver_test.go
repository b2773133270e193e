package bridgekafka_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

// kafkaArtifact is the Kafka release tools/itservers/itservers.sh fetches (its KAFKA_ARTIFACT); its
// jars are cached under IT_KAFKA_CACHE or ~/.cache/danube-it/<artifact>.
const kafkaArtifact = "org.apache.kafka:kafka_2.13:4.1.0"

// kafkaServer is an Apache Kafka broker (KRaft, one node) this test owns, started from the jars
// itservers cached, on free ports with its own data directory, so that the test can stop it and
// start it again with its data (the shared server must stay up for everyone else).
type kafkaServer struct {
	Bootstrap string
	dir       string
	java      []string
	cmd       *exec.Cmd
	out       *bytes.Buffer
	done      chan struct{}
}

// ownKafka formats and starts a broker; it is stopped at cleanup. Without java or the cached jars
// the test is skipped, or fails when CI_REQUIRE_INTEGRATION=1.
func ownKafka(t *testing.T) *kafkaServer {
	t.Helper()
	libs := filepath.Join(kafkaCache(), "libs")
	_, jerr := exec.LookPath("java")
	if _, err := os.Stat(filepath.Join(libs, "kafka_2.13-4.1.0.jar")); err != nil || jerr != nil {
		msg := fmt.Sprintf("no Kafka broker of its own: needs java and the jars tools/itservers/itservers.sh caches in %s (%v %v)", libs, err, jerr)
		if os.Getenv(harness.EnvRequire) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port, ctrl := harness.FreeAddr(t), harness.FreeAddr(t)
	k := &kafkaServer{Bootstrap: port, dir: t.TempDir()}
	// The same configuration as the shared broker's, on this broker's addresses and directory.
	if out, err := exec.Command("bash", "../../tools/itservers/itservers.sh", "kafka-config", k.dir, port, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("itservers.sh kafka-config: %v\n%s", err, out)
	}
	// As itservers runs its broker: small heap, serial GC and C1 only, to leave the cores to the tests.
	k.java = []string{"-Xms256m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + filepath.Join(k.dir, "log4j2.yaml"), "-cp", libs + "/*"}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	format := exec.Command("java", append(k.java, "kafka.tools.StorageTool", "format",
		"--cluster-id="+base64.RawURLEncoding.EncodeToString(id), "-c", filepath.Join(k.dir, "server.properties"))...)
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("kafka storage format: %v\n%s", err, out)
	}
	k.Start(t)
	t.Cleanup(func() {
		k.Stop(t)
		if t.Failed() {
			t.Logf("own Kafka output:\n%s", k.out)
		}
	})
	return k
}

func kafkaCache() string {
	if d := os.Getenv("IT_KAFKA_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "danube-it", strings.ReplaceAll(kafkaArtifact, ":", "_"))
}

// Start starts the broker on its data directory and waits until it answers metadata requests.
func (k *kafkaServer) Start(t *testing.T) {
	t.Helper()
	k.out = &bytes.Buffer{}
	k.cmd = exec.Command("java", append(k.java, "kafka.Kafka", filepath.Join(k.dir, "server.properties"))...)
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	cmd := k.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	k.done = done
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": k.Bootstrap, "enable.metrics.push": false, "log_level": 0})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		md, err := a.GetMetadata(nil, true, 2000)
		if err == nil && len(md.Brokers) > 0 {
			return
		}
		select {
		case <-done:
			t.Fatalf("own Kafka exited: %v\n%s", cmd.ProcessState, k.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("own Kafka not ready after 2 minutes (%v):\n%s", err, k.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops the broker (SIGTERM: a controlled shutdown) and waits until it is gone and its
// port refuses connections; safe to call twice.
func (k *kafkaServer) Stop(t *testing.T) {
	t.Helper()
	select {
	case <-k.done:
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(time.Minute):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
	for {
		c, err := net.DialTimeout("tcp", k.Bootstrap, time.Second)
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}
