package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunServesAndStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--broker-addr", "127.0.0.1:0", "--admin-addr", "-", "--ack-timeout", "50ms",
			"--single-node", "--config-file", "ignored.yml"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^devbroker: serving the Danube client API on (127\.0\.0\.1:\d+) \(http://127\.0\.0\.1:\d+\) and the admin API on -\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("status line %q", line)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drains until pw is closed
	conn, err := grpc.NewClient(m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, cancelRPC := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelRPC()
	if _, err := pb.NewProducerServiceClient(conn).CreateProducer(c, &pb.ProducerRequest{TopicName: "/default/t", ProducerName: "p"}); err != nil {
		t.Fatalf("CreateProducer: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"--jwt-secret-file", "/nonexistent/secret"}, &out)
	if err == nil || !strings.Contains(err.Error(), `read --jwt-secret-file "/nonexistent/secret"`) {
		t.Fatalf("err = %v", err)
	}
	err = run(context.Background(), []string{"--mode", "edge"}, &out)
	if err == nil || err.Error() != `--mode "edge": want "standalone" or "cluster"` {
		t.Fatalf("err = %v", err)
	}
	err = run(context.Background(), []string{"--broker-addr", "127.0.0.1:0", "--jwt-secret", "x"}, &out)
	if err == nil || err.Error() != "devbroker: auth mode needs TLSCertFile, TLSKeyFile and JWTSecret together" {
		t.Fatalf("err = %v", err)
	}
}

func TestParseFlagsKeySharedEviction(t *testing.T) {
	cfg, cluster, err := parseFlags([]string{"--key-shared-eviction-timeout", "5s", "--key-shared-eviction-drops-unacked", "--mode", "cluster"}, io.Discard)
	if err != nil || !cluster || cfg.KeySharedEvictionTimeout != 5*time.Second || !cfg.KeySharedEvictionDropsUnacked {
		t.Fatalf("parseFlags = %+v, %v, %v", cfg, cluster, err)
	}
	cfg, cluster, err = parseFlags(nil, io.Discard)
	if err != nil || cluster || cfg.KeySharedEvictionTimeout != 0 || cfg.KeySharedEvictionDropsUnacked {
		t.Fatalf("defaults = %+v, %v, %v", cfg, cluster, err)
	}
}
