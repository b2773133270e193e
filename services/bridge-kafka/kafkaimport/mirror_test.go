package kafkaimport_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaimport"
)

const createProducer = "/danube.ProducerService/CreateProducer"

// danubeTopics creates base's partitions on b, as the bridge does.
func danubeTopics(b runtimetest.Broker, base string, failAfter time.Duration) kafkaimport.DanubeTopics {
	return kafkaimport.DanubeTopics{
		ServiceURL: b.URL(), Producer: "import", Base: base, FailAfter: failAfter,
		Retry: retry.Policy{Kind: retry.Exponential, Base: 5 * time.Millisecond, Max: 20 * time.Millisecond},
	}
}

// TestDanubeTopicsCreate: the partitions exist afterwards (a consumer can subscribe to each),
// through a broker that is unavailable for a while and an AlreadyExists of a creation race.
func TestDanubeTopicsCreate(t *testing.T) {
	b := runtimetest.StartBroker(t)
	const base = "/default/created"
	topics := []string{kafkaimport.PartitionTopic(base, 0), kafkaimport.PartitionTopic(base, 1)}
	b.FailNext(createProducer, 6, codes.Unavailable)
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	if err := danubeTopics(b, base, 0).Create(ctx, topics); err != nil {
		t.Fatal(err)
	}
	b.FailNext(createProducer, 1, codes.AlreadyExists)
	if err := danubeTopics(b, base, 0).Create(ctx, topics); err != nil {
		t.Fatalf("an AlreadyExists that a retry resolves: %v", err)
	}
	for _, topic := range topics {
		runtimetest.Collect(t, b, topic, "reader") // fails the test unless topic exists
	}
	runtimetest.Collect(t, b, base, "base-reader")
}

// TestDanubeTopicsRefused: a clash with a non-partitioned topic and a token refused for longer
// than DANUBE_FAIL_AFTER_MS are fatal; the end of the context is not.
func TestDanubeTopicsRefused(t *testing.T) {
	b := runtimetest.StartBroker(t)
	const base = "/default/refused"
	runtimetest.CreateTopic(t, b, base)
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	part := kafkaimport.PartitionTopic(base, 0)

	err := danubeTopics(b, base, 0).Create(ctx, []string{part})
	want := `IMPORT_MIRROR_PARTITIONS: the Danube topic "/default/refused" exists and is not partitioned, so its partition "/default/refused-part-0" cannot be created; ` +
		`import into a new Danube topic, or delete "/default/refused": danube: create producer "import" on topic "/default/refused-part-0" at ` + b.URL() +
		`: rpc error: code = AlreadyExists desc = Cannot create partition /default/refused-part-0: non-partitioned topic /default/refused already exists`
	if err == nil || err.Error() != want || runtime.ClassOf(err) != runtime.ClassFatal {
		t.Fatalf("Create returned %v (%v), want the fatal\n%s", err, runtime.ClassOf(err), want)
	}

	b.FailNext(createProducer, 1000, codes.Unauthenticated)
	err = danubeTopics(b, "/default/other", 50*time.Millisecond).Create(ctx, []string{"/default/other-part-0"})
	if err == nil || runtime.ClassOf(err) != runtime.ClassFatal || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("a refused token: Create returned %v (%v), want a fatal Unauthenticated", err, runtime.ClassOf(err))
	}

	short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	defer stop()
	err = danubeTopics(b, "/default/other", 0).Create(short, []string{"/default/other-part-0"})
	if !errors.Is(err, context.DeadlineExceeded) || runtime.ClassOf(err) == runtime.ClassFatal {
		t.Fatalf("a context that ended: Create returned %v (%v)", err, runtime.ClassOf(err))
	}
}
