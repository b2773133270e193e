package kafkaimport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

// PartitionTopic is the Danube topic that mirrors Kafka partition p of an import to base: partition
// p of the partitioned Danube topic base, which Danube names base-part-p.
func PartitionTopic(base string, p int32) string {
	return base + "-part-" + strconv.FormatInt(int64(p), 10)
}

// metadataTimeout bounds the wait for the Kafka topic's partition count at start; without an
// answer only partition 0 is created up front (the others on their first record).
const metadataTimeout = 10 * time.Second

// mirrorTopics returns the Danube partition topics of the Kafka topic's current partitions, at
// least the one of partition 0 (which every Kafka topic has, and whose creation is enough to find a
// non-partitioned Danube topic in the way).
func (s *Source) mirrorTopics(c *kafka.Consumer) []string {
	n := 1
	md, err := c.GetMetadata(&s.opts.Topic, false, int(metadataTimeout/time.Millisecond))
	if err != nil {
		s.log.Warn("no Kafka metadata; creating Danube partition 0 now and the others on their first record",
			"kafka_topic", s.opts.Topic, "err", err)
	} else if tm, ok := md.Topics[s.opts.Topic]; ok && tm.Error.Code() == kafka.ErrNoError {
		n = max(n, len(tm.Partitions))
	}
	topics := make([]string, n)
	for p := range topics {
		topics[p] = PartitionTopic(s.opts.Destination, int32(p))
	}
	return topics
}

// alreadyExistsAttempts is how often a creation Danube refuses with AlreadyExists is tried: once
// more covers a creation race between replicas (the topic then exists and the next attempt
// succeeds); a refusal that persists is the partitioned/non-partitioned name clash.
const alreadyExistsAttempts = 3

// DanubeTopics creates the Danube partition topics of a mirroring import (Create is an
// Options.CreateTopics) the way the runtime does when it publishes to them: by registering on each
// a reliable producer named Producer, the name the runtime's producers of the import have, so that
// nothing new stays registered on the broker.
type DanubeTopics struct {
	ServiceURL string          // DANUBE_SERVICE_URL
	Client     []danube.Option // TLS and token (runtime.Common.ClientOptions)
	Producer   string          // the import's connector name
	Base       string          // the Danube topic whose partitions are created
	Retry      retry.Policy    // waits between attempts while Danube is unreachable
	FailAfter  time.Duration   // DANUBE_FAIL_AFTER_MS: how long a refused token is retried (0 = forever)
	Log        *slog.Logger
}

// Create creates topics, retrying an unreachable broker until ctx ends. A topic Danube refuses to
// create because Base exists as a non-partitioned topic stops the import with a fatal error naming
// both: its records could never be published.
func (d DanubeTopics) Create(ctx context.Context, topics []string) error {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	c, err := danube.NewClient(d.ServiceURL, append(slices.Clone(d.Client), danube.WithLogger(d.Log))...)
	if err != nil {
		return runtime.Fatal(fmt.Errorf("danube client: %w", err))
	}
	defer func() { _ = c.Close() }()
	var refusedSince time.Time
	for _, topic := range topics {
		exists := 0
		err := d.Retry.Forever().Do(ctx, func(ctx context.Context) error {
			p, err := c.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: d.Producer, Dispatch: danube.Reliable})
			if err != nil {
				return err
			}
			return p.Close()
		}, func(err error) bool {
			switch status.Code(err) {
			case codes.AlreadyExists:
				exists++
				return exists < alreadyExistsAttempts
			case codes.InvalidArgument:
				return false
			case codes.Unauthenticated:
				if refusedSince.IsZero() {
					refusedSince = time.Now()
				}
				return d.FailAfter <= 0 || time.Since(refusedSince) < d.FailAfter
			}
			return true
		}, func(attempt int, wait time.Duration, err error) {
			d.Log.Warn("create Danube partition topic failed; retrying", "topic", topic, "attempt", attempt, "wait", wait, "err", err)
		})
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return errors.Join(ctx.Err(), err)
		case status.Code(err) == codes.AlreadyExists:
			return runtime.Fatal(fmt.Errorf("IMPORT_MIRROR_PARTITIONS: the Danube topic %q exists and is not partitioned, "+
				"so its partition %q cannot be created; import into a new Danube topic, or delete %q: %w", d.Base, topic, d.Base, err))
		default:
			return runtime.Fatal(fmt.Errorf("create Danube partition topic %q: %w", topic, err))
		}
	}
	return nil
}
