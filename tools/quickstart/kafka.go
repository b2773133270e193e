package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
)

// The Kafka scenario's topics.
const (
	kafkaIn     = "orders"
	kafkaOut    = "orders-mirror"
	kafkaDanube = "/default/orders"
)

// runKafka is the Kafka scenario, both directions of bridge-kafka in one process as the service
// runs them:
//
//	producer ──► Kafka "orders" ──► import ──► Danube /default/orders ──► export ──► Kafka "orders-mirror" ──► reader
//
// Kafka is franz-go's kfake, an in-process Kafka-protocol fake (not Apache Kafka): the bridge
// talks to it through librdkafka as it would to a real cluster. The producer and the reader use
// franz-go, a separate Kafka client.
func runKafka(ctx context.Context, args []string, out io.Writer) error {
	fs, set := newFlags("kafka", "records", 10, out)
	if err := set.parse(fs, args); err != nil {
		return err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, kafkaIn, kafkaOut))
	if err != nil {
		return fmt.Errorf("start the in-process Kafka: %w", err)
	}
	defer cluster.Close()
	bootstrap := cluster.ListenAddrs()

	p, err := newPipeline(out, set)
	if err != nil {
		return err
	}
	defer p.close()

	var cfg bridge.Config
	if err := config.Load(&cfg, p.env(
		"CONNECTOR_NAME=quickstart-bridge", "KAFKA_BOOTSTRAP_SERVERS="+strings.Join(bootstrap, ","),
		"KAFKA_GROUP_ID=quickstart", "IMPORT_MAPPINGS="+kafkaIn+"="+kafkaDanube,
		"EXPORT_MAPPINGS="+kafkaDanube+"="+kafkaOut, "SUBSCRIPTION_NAME=quickstart",
	)); err != nil {
		return err
	}
	p.start("bridge-kafka", func(ctx context.Context) error { return bridge.Run(ctx, &cfg, p.options()...) })
	if err := p.waitSubscribed(ctx, kafkaDanube, cfg.Export.SubscriptionName); err != nil {
		return err
	}

	producer, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.DefaultProduceTopic(kafkaIn))
	if err != nil {
		return err
	}
	defer producer.Close()
	reader, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ConsumeTopics(kafkaOut),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer reader.Close()
	readCtx, stopReading := context.WithCancel(context.Background())
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readMirror(readCtx, p, reader)
	}()
	defer func() {
		stopReading()
		<-readDone
	}()

	fmt.Fprintf(out, "Danube quickstart (kafka): Kafka %s (in-process fake) %q → bridge-kafka import → broker %s %s → export → Kafka %q\n",
		strings.Join(bootstrap, ","), kafkaIn, p.broker.URL(), kafkaDanube, kafkaOut)
	fmt.Fprintf(out, "Producing to %q at %g records/s; Ctrl-C to stop.\n\n", kafkaIn, set.rate)
	return p.run(ctx, []stat{{"produced", p.produced.Load}, {"in Danube", p.inDanube(kafkaDanube, cfg.Export.SubscriptionName)}, {"exported", p.delivered.Load}},
		func(ctx context.Context) {
			p.produce(ctx, set.every(1), func(ctx context.Context, id int) error { return sendOrder(ctx, producer, id) })
		})
}

// sendOrder produces sample order id to Kafka, keyed by customer (Kafka's per-key order is kept
// through Danube and back).
func sendOrder(ctx context.Context, producer *kgo.Client, id int) error {
	customer := fmt.Sprintf("customer-%d", id%5)
	body, _ := json.Marshal(map[string]any{"id": id, "customer": customer, "amount": 10 + id%90})
	return producer.ProduceSync(ctx, &kgo.Record{Key: []byte(customer), Value: body}).FirstErr()
}

// readMirror reads what the export produced to Kafka, prints it and counts each order once (the
// export is at least once: a record may arrive twice after a retry).
func readMirror(ctx context.Context, p *pipeline, reader *kgo.Client) {
	seen := map[int]bool{}
	for {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.ui.printf("  read %s/%d: %v\n", topic, partition, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			var order struct {
				ID int `json:"id"`
			}
			_ = json.Unmarshal(r.Value, &order)
			dup := ""
			if seen[order.ID] {
				dup = "  (duplicate: at least once)"
			} else {
				seen[order.ID] = true
				p.deliver()
			}
			p.ui.printf("  ✓ %s/%d@%d %s  key=%s%s\n", r.Topic, r.Partition, r.Offset, r.Value, r.Key, dup)
		})
	}
}
