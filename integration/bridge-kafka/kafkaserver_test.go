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
	SASL      string // with kafkaOptions.SASLUsers: the SASL_PLAINTEXT listener (mechanism PLAIN)
	dir       string
	java      []string
	cmd       *exec.Cmd
	out       *bytes.Buffer
	done      chan struct{}
}

// kafkaOptions change an own broker's configuration.
type kafkaOptions struct {
	// SASLUsers, when set, adds a SASL_PLAINTEXT listener (kafkaServer.SASL, mechanism PLAIN) with
	// these users and passwords.
	SASLUsers map[string]string
	// NoAutoCreate turns auto.create.topics.enable off.
	NoAutoCreate bool
}

// ownKafka formats and starts a broker; it is stopped at cleanup. Without java or the cached jars
// the test is skipped, or fails when CI_REQUIRE_INTEGRATION=1.
func ownKafka(t *testing.T) *kafkaServer {
	t.Helper()
	k := newKafka(t, kafkaOptions{})
	k.Start(t)
	return k
}

// newKafka formats a broker with opts without starting it (Start does); it is stopped at cleanup.
func newKafka(t *testing.T, opts kafkaOptions) *kafkaServer {
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
	if err := k.configure(t, opts); err != nil {
		t.Fatal(err)
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
	t.Cleanup(func() {
		k.Stop(t)
		if t.Failed() && k.out != nil {
			t.Logf("own Kafka output:\n%s", k.out)
		}
	})
	return k
}

// configure rewrites the server.properties itservers wrote for opts.
func (k *kafkaServer) configure(t *testing.T, opts kafkaOptions) error {
	path := filepath.Join(k.dir, "server.properties")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	props := string(b)
	if opts.SASLUsers != nil {
		k.SASL = harness.FreeAddr(t)
		users := ""
		for u, p := range opts.SASLUsers {
			users += fmt.Sprintf(" user_%s=%q", u, p)
		}
		for _, r := range [][2]string{
			{"listeners=PLAINTEXT://" + k.Bootstrap, "listeners=PLAINTEXT://" + k.Bootstrap + ",SASL_PLAINTEXT://" + k.SASL},
			{"advertised.listeners=PLAINTEXT://" + k.Bootstrap, "advertised.listeners=PLAINTEXT://" + k.Bootstrap + ",SASL_PLAINTEXT://" + k.SASL},
			{"listener.security.protocol.map=", "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,"},
		} {
			if !strings.Contains(props, r[0]) {
				return fmt.Errorf("%s: no %q to add the SASL listener to", path, r[0])
			}
			props = strings.Replace(props, r[0], r[1], 1)
		}
		props += "sasl.enabled.mechanisms=PLAIN\n" +
			"listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required" + users + ";\n"
	}
	if opts.NoAutoCreate {
		props += "auto.create.topics.enable=false\n"
	}
	return os.WriteFile(path, []byte(props), 0o644)
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
	if k.cmd == nil {
		return // never started
	}
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
