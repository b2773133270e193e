package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func init() { register(&bridgeKafkaCase{}) }

// bridgeKafkaCase measures the bridge-kafka binary in both directions against a plain
// confluent-kafka-go consumer and producer doing the same Kafka work in the same run.
type bridgeKafkaCase struct {
	bootstrap string
}

func (*bridgeKafkaCase) Name() string { return "bridge-kafka" }

func (c *bridgeKafkaCase) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.bootstrap, "bridge-kafka-bootstrap", "", "Kafka bootstrap servers for the bridge-kafka case (default: $IT_KAFKA_BOOTSTRAP)")
}

func (*bridgeKafkaCase) About() string {
	return "Records of 1 KiB with 64 keys, through the Kafka at `IT_KAFKA_BOOTSTRAP` (a real Apache Kafka, " +
		"single node, on the same machine; topics of 4 partitions created for the run) and the in-process " +
		"development broker. **import**: the topic is filled first; the " +
		"`bridge-kafka` binary (a separate process, configured by its environment only) consumes it in a " +
		"group and publishes every record to Danube, committing offsets after Danube's acks, once with " +
		"PUBLISH_ORDER=key (the default: one publish per key in flight), once with none; the rate runs " +
		"from the first to the last record the development broker accepted (counted in the broker, not by a " +
		"consumer, which would take the cores the bridge needs). The baseline is a plain " +
		"confluent-kafka-go consumer reading the same topic in a new group (no commits), in the bench process. " +
		"**export**: the Danube topic is filled first; the bridge produces every message to Kafka with an " +
		"idempotent producer, acking each on its delivery report (broker window 256), once streaming records " +
		"to concurrent produces, one per key (EXPORT_MAX_IN_FLIGHT=128), once in batches produced in order " +
		"(EXPORT_BATCH_SIZE=256); the rate is taken from the first to the last record read back from Kafka. The baseline is a " +
		"plain idempotent confluent-kafka-go producer producing the same messages and waiting for every " +
		"delivery report. Peak RSS is the bridge's VmHWM (the baselines run in the bench process: not measured). " +
		"Goals: at least 0.8x the baseline's rate, RSS under 64 MiB."
}

func (c *bridgeKafkaCase) Run(ctx context.Context, env *Env) (Result, error) {
	bootstrap := cmp.Or(c.bootstrap, os.Getenv("IT_KAFKA_BOOTSTRAP"))
	if bootstrap == "" {
		return Result{}, unavailable("bridge-kafka: no Kafka: set IT_KAFKA_BOOTSTRAP (source /tmp/it-shared.env, or tools/itservers) or -bridge-kafka-bootstrap")
	}
	n := 20000
	if env.Quick {
		n = 300
	}
	bin, err := env.Build(ctx, "services/bridge-kafka")
	if err != nil {
		return Result{}, err
	}
	// Topics of this run only: the Kafka keeps what earlier runs left.
	run := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	topics := kafkaTopics{in: run + "in", out: run + "out", outBatch: run + "out-batch", plainOut: run + "plain-out"}
	if err := createKafkaTopics(ctx, bootstrap, topics.all()...); err != nil {
		return Result{}, err
	}
	defer deleteKafkaTopics(bootstrap, topics.all()...)
	env.Logf("bridge-kafka: %d records each way", n)

	imp, err := c.importRows(ctx, bin, bootstrap, topics, n)
	if err != nil {
		return Result{}, fmt.Errorf("import: %w", err)
	}
	exp, err := c.exportRows(ctx, bin, bootstrap, topics, n)
	if err != nil {
		return Result{}, fmt.Errorf("export: %w", err)
	}
	return Result{Groups: []Group{{Setting: "import Kafka → Danube", Rows: imp}, {Setting: "export Danube → Kafka", Rows: exp}}}, nil
}

// kafkaTopics are the Kafka topics of one run, 4 partitions each.
type kafkaTopics struct{ in, out, outBatch, plainOut string }

func (t kafkaTopics) all() []string { return []string{t.in, t.out, t.outBatch, t.plainOut} }

const kafkaPartitions = 4

// createKafkaTopics creates topics and waits until the broker's metadata lists every partition
// with a leader (Kafka answers CreateTopics a moment before its broker knows the topic).
func createKafkaTopics(ctx context.Context, bootstrap string, topics ...string) error {
	a, err := kafka.NewAdminClient(kafkaConf(bootstrap))
	if err != nil {
		return err
	}
	defer a.Close()
	specs := make([]kafka.TopicSpecification, len(topics))
	for i, t := range topics {
		specs[i] = kafka.TopicSpecification{Topic: t, NumPartitions: kafkaPartitions, ReplicationFactor: 1}
	}
	res, err := a.CreateTopics(ctx, specs)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			return fmt.Errorf("create Kafka topic %s: %w", r.Topic, r.Error)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, t := range topics {
		for {
			md, err := a.GetMetadata(&t, false, 5000)
			if err == nil && len(md.Topics[t].Partitions) == kafkaPartitions && leadersKnown(md.Topics[t].Partitions) {
				break
			}
			if time.Now().After(deadline) {
				return errors.Join(fmt.Errorf("create Kafka topic %s: no leader for its partitions within a minute", t), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func leadersKnown(ps []kafka.PartitionMetadata) bool {
	for _, p := range ps {
		if p.Leader < 0 {
			return false
		}
	}
	return true
}

// deleteKafkaTopics deletes topics; a failure leaves them behind, which is not worth failing for.
func deleteKafkaTopics(bootstrap string, topics ...string) {
	a, err := kafka.NewAdminClient(kafkaConf(bootstrap))
	if err != nil {
		return
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = a.DeleteTopics(ctx, topics)
}

func benchPayload() []byte { return bytes.Repeat([]byte("x"), 1024) }

func kafkaConf(bootstrap string, kv ...any) *kafka.ConfigMap {
	m := kafka.ConfigMap{"bootstrap.servers": bootstrap, "enable.metrics.push": false, "log_level": 3}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return &m
}

// produceAll produces n keyed records to topic with an idempotent producer and waits for every
// delivery report; it is also the export's baseline.
func produceAll(bootstrap, topic string, n int) (time.Duration, error) {
	p, err := kafka.NewProducer(kafkaConf(bootstrap, "enable.idempotence", true, "linger.ms", 2))
	if err != nil {
		return 0, err
	}
	defer p.Close()
	go func() {
		for range p.Events() {
		}
	}()
	done := make(chan kafka.Event, n)
	payload := benchPayload()
	start := time.Now()
	for i := range n {
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: fmt.Appendf(nil, "k%d", i%64), Value: payload}
		for {
			err := p.Produce(m, done)
			var ke kafka.Error
			if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				return 0, err
			}
			break
		}
	}
	for range n {
		if m := (<-done).(*kafka.Message); m.TopicPartition.Error != nil {
			return 0, m.TopicPartition.Error
		}
	}
	return time.Since(start), nil
}

// consumeAll reads n records of topic in a new group; it returns the time from the first record
// to the last.
func consumeAll(ctx context.Context, bootstrap, topic, group string, n int) (time.Duration, error) {
	c, err := kafka.NewConsumer(kafkaConf(bootstrap, "group.id", group, "auto.offset.reset", "earliest", "enable.auto.commit", false))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		return 0, err
	}
	var first time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for got := 0; got < n; {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return 0, fmt.Errorf("read %d of %d records of %s", got, n, topic)
		}
		if m, ok := c.Poll(100).(*kafka.Message); ok && m.TopicPartition.Error == nil {
			if got == 0 {
				first = time.Now()
			}
			got++
		}
	}
	return time.Since(first), nil
}

func bridgeEnv(brokerURL, bootstrap string, extra ...string) []string {
	return append([]string{"DANUBE_SERVICE_URL=" + brokerURL, "CONNECTOR_NAME=bench", "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text",
		"LOG_LEVEL=warn", "KAFKA_BOOTSTRAP_SERVERS=" + bootstrap, "SHUTDOWN_TIMEOUT_MS=5000",
		"KAFKA_CONSUMER_PROPERTIES=log_level=3", "KAFKA_PRODUCER_PROPERTIES=log_level=3"}, extra...)
}

func (*bridgeKafkaCase) importRows(ctx context.Context, bin, bootstrap string, topics kafkaTopics, n int) ([]Row, error) {
	if _, err := produceAll(bootstrap, topics.in, n); err != nil {
		return nil, err
	}
	cpu0 := selfCPU()
	d, err := consumeAll(ctx, bootstrap, topics.in, topics.in+"-plain-consumer", n)
	if err != nil {
		return nil, err
	}
	plain := Row{Variant: "plain confluent-kafka-go consumer", Msgs: n, Rate: float64(n) / d.Seconds(),
		CPUMicros: float64(selfCPU()-cpu0) / float64(time.Microsecond) / float64(n)}

	rows := []Row{plain}
	for i, v := range []struct{ variant, order string }{
		{"bridge-kafka (PUBLISH_ORDER=key)", "key"},
		{"bridge-kafka (PUBLISH_ORDER=none)", "none"},
	} {
		topic := fmt.Sprintf("/default/bench-in-%d", i)
		dc, err := newDanubeCounter(ctx, topic, n)
		if err != nil {
			return nil, err
		}
		child, err := startChild(bin, bridgeEnv(dc.broker.URL(), bootstrap, fmt.Sprintf("KAFKA_GROUP_ID=%s-bridge-%d", topics.in, i),
			"IMPORT_MAPPINGS="+topics.in+"="+topic, "PUBLISH_ORDER="+v.order))
		if err != nil {
			dc.close()
			return nil, err
		}
		if err := waitCtx(ctx, dc.done, 5*time.Minute); err != nil {
			_ = child.stop()
			dc.close()
			return nil, fmt.Errorf("bridge imported %d of %d: %w\n%s", dc.got.Load(), n, err, child.out.String())
		}
		d := time.Duration(dc.last.Load() - dc.first.Load())
		err = child.stop()
		dc.close()
		if err != nil {
			return nil, err
		}
		rows = append(rows, Row{Variant: v.variant, Msgs: n, Rate: float64(n) / d.Seconds(), CPUMicros: child.cpuMicros(n), RSSMiB: child.rss})
	}
	return rows, nil
}

func (*bridgeKafkaCase) exportRows(ctx context.Context, bin, bootstrap string, topics kafkaTopics, n int) ([]Row, error) {
	cpu0 := selfCPU()
	d, err := produceAll(bootstrap, topics.plainOut, n)
	if err != nil {
		return nil, err
	}
	rows := []Row{{Variant: "plain confluent-kafka-go producer", Msgs: n, Rate: float64(n) / d.Seconds(),
		CPUMicros: float64(selfCPU()-cpu0) / float64(time.Microsecond) / float64(n)}}
	for _, v := range []struct{ variant, danube, kafka, env string }{
		{"bridge-kafka (streaming, EXPORT_MAX_IN_FLIGHT=128)", "/default/bench-out", topics.out, "EXPORT_MAX_IN_FLIGHT=128"},
		{"bridge-kafka (EXPORT_BATCH_SIZE=256)", "/default/bench-out-batch", topics.outBatch, "EXPORT_BATCH_SIZE=256"},
	} {
		row, err := exportRow(ctx, bin, bootstrap, n, v.danube, v.kafka, v.env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.variant, err)
		}
		row.Variant = v.variant
		rows = append(rows, row)
	}
	return rows, nil
}

// exportRow fills a Danube topic with n messages and measures the bridge exporting them to kafkaTopic.
func exportRow(ctx context.Context, bin, bootstrap string, n int, topic, kafkaTopic string, extra ...string) (Row, error) {
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: 256})
	if err != nil {
		return Row{}, err
	}
	defer broker.Close()
	client, err := danube.NewClient(broker.URL())
	if err != nil {
		return Row{}, err
	}
	defer client.Close()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "filler", Dispatch: danube.Reliable})
	if err != nil {
		return Row{}, err
	}
	defer prod.Close()
	// The export's subscription must exist before the messages (a new one starts at the tail).
	consumer := "bench-export-" + strings.ReplaceAll(strings.TrimPrefix(topic, "/"), "/", "-")
	pre, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: consumer, Subscription: "bridge-kafka", Type: danube.Exclusive})
	if err != nil {
		return Row{}, err
	}
	_ = pre.Close()
	payload := benchPayload()
	for i := range n {
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: payload, Key: fmt.Sprintf("k%d", i%64)}); err != nil {
			return Row{}, err
		}
	}
	child, err := startChild(bin, bridgeEnv(broker.URL(), bootstrap, append([]string{"EXPORT_MAPPINGS=" + topic + "=" + kafkaTopic}, extra...)...))
	if err != nil {
		return Row{}, err
	}
	d, err := waitHighWatermarks(ctx, bootstrap, kafkaTopic, kafkaPartitions, n)
	if err != nil {
		_ = child.stop()
		return Row{}, fmt.Errorf("%w\n%s", err, child.out.String())
	}
	if err := child.stop(); err != nil {
		return Row{}, err
	}
	return Row{Msgs: n, Rate: float64(n) / d.Seconds(), CPUMicros: child.cpuMicros(n), RSSMiB: child.rss}, nil
}

// waitHighWatermarks polls the topic's high watermarks until its partitions hold n records; it
// returns the time from the first record seen to the n-th.
func waitHighWatermarks(ctx context.Context, bootstrap, topic string, parts, n int) (time.Duration, error) {
	c, err := kafka.NewConsumer(kafkaConf(bootstrap, "group.id", "watermarks"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var first time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for {
		total := int64(0)
		for p := range int32(parts) {
			_, high, err := c.QueryWatermarkOffsets(topic, p, 5000)
			if err != nil {
				return 0, err
			}
			total += high
		}
		if total > 0 && first.IsZero() {
			first = time.Now()
		}
		if total >= int64(n) {
			return time.Since(first), nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return 0, fmt.Errorf("%s holds %d of %d records", topic, total, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
