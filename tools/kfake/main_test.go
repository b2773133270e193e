package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var startLine = regexp.MustCompile(`^kfake (\S+) listening on (\S+) \((\d+) brokers\)$`)

// TestRunServesKafkaProtocol starts two brokers on random ports, produces to
// an auto-created topic and consumes the record back, then stops the cluster
// by cancelling the context as SIGTERM does.
func TestRunServesKafkaProtocol(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-port", "0", "-brokers", "2"}, pw)
		pw.Close()
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading start line: %v", err)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drains until pw is closed
	m := startLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		t.Fatalf("start line %q does not match %v", line, startLine)
	}
	if m[1] == "(unknown version)" || !strings.HasPrefix(m[1], "v") {
		t.Errorf("version = %q, want the kfake module version", m[1])
	}
	addrs := strings.Split(m[2], ",")
	if len(addrs) != 2 || m[3] != "2" {
		t.Fatalf("addresses %q, brokers %s: want 2 of each", m[2], m[3])
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("address %q is not on 127.0.0.1", a)
		}
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("smoke"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	defer cl.Close()
	opCtx, opCancel := context.WithTimeout(ctx, 20*time.Second)
	defer opCancel()
	if err := cl.ProduceSync(opCtx, &kgo.Record{Topic: "smoke", Key: []byte("k"), Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	for {
		fs := cl.PollFetches(opCtx)
		if err := opCtx.Err(); err != nil {
			t.Fatalf("no record consumed: %v", err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		if recs := fs.Records(); len(recs) > 0 {
			if got := string(recs[0].Value); got != "hello" || string(recs[0].Key) != "k" {
				t.Fatalf("consumed key %q value %q, want k hello", recs[0].Key, got)
			}
			return
		}
	}
}

func TestParseFlagsRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-brokers", "0"}, "-brokers 0: must be at least 1"},
		{[]string{"-port", "65535", "-brokers", "2"}, "-port 65535 with -brokers 2: ports must lie in 0..65535"},
		{[]string{"-port", "-1"}, "-port -1 with -brokers 1: ports must lie in 0..65535"},
		{[]string{"-partitions", "0"}, "-partitions 0: must be at least 1"},
		{[]string{"-log-level", "loud"}, `-log-level "loud": want none, error, warn, info or debug`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || err.Error() != tc.want {
			t.Errorf("parseFlags(%q) error = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{port: 9092, brokers: 1, partitions: 1, autoCreate: true, logLevel: "none"}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
}
