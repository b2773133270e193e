package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// SinkSuite is the conformance suite for a sink. The connector writes to its real external system;
// the suite drives Danube and reads the external system back through Written.
type SinkSuite struct {
	// New returns a connector for cfg writing to the shared external system. It is called again
	// after a crash or stop: the new instance must see what earlier ones wrote.
	New func(t *testing.T, cfg *runtime.SinkConfig) runtime.SinkConnector
	// Written returns the payloads the external system holds (any order, duplicates included).
	Written func(t *testing.T) []string
	// Reset empties the external system between cases.
	Reset func(t *testing.T)
	// Valid returns the i-th valid payload (distinct for distinct i).
	Valid func(i int) []byte
	// Invalid is a payload the connector rejects as invalid data; nil skips the dead-letter case.
	Invalid []byte
	// Configure, if set, adjusts the runtime settings of every case (MAX_IN_FLIGHT, BATCH_SIZE)
	// before New is called.
	Configure func(cfg *runtime.SinkConfig)
}

// ErrSimulatedCrash is what the suite's crash wrapper fails with.
var ErrSimulatedCrash = errors.New("runtimetest: simulated crash")

// Run runs every case as a subtest.
func (s SinkSuite) Run(t *testing.T) {
	t.Run("AtLeastOnceThroughCrashAndRestart", s.crash)
	t.Run("NoAckBeforeWrite", s.noAckBeforeWrite)
	t.Run("AtLeastOnceThroughBrokerRestart", s.brokerRestart)
	if s.Invalid != nil {
		t.Run("InvalidDataToDeadLetterTopic", s.deadLetter)
	}
	t.Run("GracefulDrainOnStop", s.drain)
}

// setup starts a case on b: it empties the external system, creates the case's topic (named after
// the case, unique per run) and returns a config whose subscription is unique per run too (an
// external broker keeps both across runs); the connector name stays name.
func (s SinkSuite) setup(t *testing.T, b Broker, name string) (*runtime.SinkConfig, string) {
	s.Reset(t)
	id := uniqueSuffix()
	topic := "/default/" + name + "-" + id
	CreateTopic(t, b, topic)
	cfg := SinkConfig(b, name, topic)
	cfg.SubscriptionName += "-" + id
	if s.Configure != nil {
		s.Configure(cfg)
	}
	return cfg, topic
}

func (s SinkSuite) payloads(from, to int) []danube.ProducerMessage {
	var out []danube.ProducerMessage
	for i := from; i < to; i++ {
		out = append(out, danube.ProducerMessage{Payload: s.Valid(i), Attributes: map[string]string{"i": fmt.Sprint(i)}})
	}
	return out
}

func (s SinkSuite) want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(s.Valid(i)))
	}
	return out
}

// waitWritten waits until the external system holds every payload of want (at least once).
func (s SinkSuite) waitWritten(t *testing.T, want []string, r *Running) []string {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		got := s.Written(t)
		if containsAll(got, want) {
			return got
		}
		if r != nil && r.Done() {
			t.Fatalf("sink stopped (%v) with %q written, want all of %q", r.err, got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: written %q, want all of %q", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// crashAfter passes records through until n were written, then fails fatally without writing.
type crashAfter struct {
	runtime.SinkConnector
	n atomic.Int64
}

func (c *crashAfter) Process(ctx context.Context, r *runtime.SinkRecord) error {
	if c.n.Add(-1) < 0 {
		return runtime.Fatal(ErrSimulatedCrash)
	}
	return c.SinkConnector.Process(ctx, r)
}

type crashAfterBatch struct {
	*crashAfter
	batch runtime.BatchSinkConnector
}

func (c *crashAfterBatch) ProcessBatch(ctx context.Context, rs []*runtime.SinkRecord) error {
	if c.n.Add(-int64(len(rs))) < 0 {
		return runtime.Fatal(ErrSimulatedCrash)
	}
	return c.batch.ProcessBatch(ctx, rs)
}

// crashAfterConcurrent keeps a ConcurrentSinkConnector streaming under the crash wrapper.
type crashAfterConcurrent struct{ *crashAfter }

func (c *crashAfterConcurrent) Concurrent() bool { return true }

func crashing(conn runtime.SinkConnector, n int) runtime.SinkConnector {
	c := &crashAfter{SinkConnector: conn}
	c.n.Store(int64(n))
	if cc, ok := conn.(runtime.ConcurrentSinkConnector); ok && cc.Concurrent() {
		return &crashAfterConcurrent{crashAfter: c}
	}
	if b, ok := conn.(runtime.BatchSinkConnector); ok {
		return &crashAfterBatch{crashAfter: c, batch: b}
	}
	return c
}

// streams reports whether the runtime streams records to conn instead of batching them.
func streams(conn runtime.SinkConnector, cfg *runtime.SinkConfig) bool {
	cc, ok := conn.(runtime.ConcurrentSinkConnector)
	return ok && cc.Concurrent() && cfg.MaxInFlight > 1
}

// crash: the first instance dies (fatal, exit non-zero) after 3 of 10 records; a restarted instance
// writes the rest. Nothing is lost; duplicates are allowed.
func (s SinkSuite) crash(t *testing.T) {
	br := SuiteBroker(t)
	cfg, topic := s.setup(t, br, "sink-crash")
	r := StartSink(t, cfg, crashing(s.New(t, cfg), 3))
	Produce(t, br, topic, s.payloads(0, 10)...)
	err := r.Wait()
	if !errors.Is(err, ErrSimulatedCrash) || !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("first run ended with %v, want the simulated fatal error", err)
	}
	r2 := StartSink(t, cfg, s.New(t, cfg))
	s.waitWritten(t, s.want(0, 10), r2)
	if err := r2.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// noAckBeforeWrite: a record whose write fails is not acked, so it comes back after a restart.
func (s SinkSuite) noAckBeforeWrite(t *testing.T) {
	br := SuiteBroker(t)
	cfg, topic := s.setup(t, br, "sink-noack")
	r := StartSink(t, cfg, crashing(s.New(t, cfg), 0))
	Produce(t, br, topic, s.payloads(0, 1)...)
	if err := r.Wait(); !errors.Is(err, ErrSimulatedCrash) {
		t.Fatalf("run ended with %v", err)
	}
	if got := s.Written(t); len(got) != 0 {
		t.Fatalf("written %q before any successful write", got)
	}
	r2 := StartSink(t, cfg, s.New(t, cfg))
	s.waitWritten(t, s.want(0, 1), r2)
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
}

// brokerRestart: the broker restarts between two halves; the sink reconnects and loses nothing.
// Skipped against an external broker.
func (s SinkSuite) brokerRestart(t *testing.T) {
	br := restartableBroker(t)
	cfg, topic := s.setup(t, br, "sink-brokerrestart")
	r := StartSink(t, cfg, s.New(t, cfg))
	Produce(t, br, topic, s.payloads(0, 5)...)
	s.waitWritten(t, s.want(0, 5), r)
	if err := br.Restart(); err != nil {
		t.Fatalf("broker restart: %v", err)
	}
	Produce(t, br, topic, s.payloads(5, 10)...)
	s.waitWritten(t, s.want(0, 10), r)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// deadLetter: an invalid record goes to DLQ_TOPIC with its attributes plus the reason and is acked;
// the records around it are written.
func (s SinkSuite) deadLetter(t *testing.T) {
	br := SuiteBroker(t)
	cfg, topic := s.setup(t, br, "sink-dlq")
	cfg.DLQTopic = topic + "-dead"
	r := StartSink(t, cfg, s.New(t, cfg))
	dlq := Collect(t, br, cfg.DLQTopic, "dlq-reader-"+uniqueSuffix())
	msgs := s.payloads(0, 1)
	msgs = append(msgs, danube.ProducerMessage{Payload: s.Invalid, Key: "k1", Attributes: map[string]string{"origin": "runtimetest"}})
	msgs = append(msgs, s.payloads(1, 2)...)
	Produce(t, br, topic, msgs...)
	s.waitWritten(t, s.want(0, 2), r)
	got := dlq.WaitFor(t, "one dead-lettered message", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	m := got[0]
	if string(m.Payload) != string(s.Invalid) || m.Key != "k1" || m.Attributes["origin"] != "runtimetest" ||
		m.Attributes[runtime.AttrOriginalTopic] != topic || m.Attributes[runtime.AttrOriginalSubscription] != cfg.SubscriptionName ||
		m.Attributes[runtime.AttrOriginalOffset] != "1" || m.Attributes[runtime.AttrFailureReason] == "" ||
		m.Attributes[runtime.AttrConnector] != cfg.ConnectorName {
		t.Fatalf("dead letter %q key %q attributes %v", m.Payload, m.Key, m.Attributes)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	// Acked: a restarted sink does not see it again (the sentinel arrives alone).
	dlqBefore := len(dlq.Messages())
	r2 := StartSink(t, cfg, s.New(t, cfg))
	Produce(t, br, topic, s.payloads(2, 3)...)
	s.waitWritten(t, s.want(0, 3), r2)
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(dlq.Messages()); n != dlqBefore {
		t.Fatalf("dead-lettered again after restart: %d messages", n)
	}
}

// drain: records waiting in a partial batch are written and acked on stop (SIGTERM), so a
// restarted sink does not get them again. A streaming connector (ConcurrentSinkConnector) has no
// partial batch: its records taken are written and acked before the stop returns. The record
// produced after the restart may arrive more than once (a real broker can deliver the next new
// message twice after a same-name re-attach); the drained ones must not come again.
func (s SinkSuite) drain(t *testing.T) {
	br := SuiteBroker(t)
	cfg, topic := s.setup(t, br, "sink-drain")
	cfg.BatchSize = 8
	cfg.BatchTimeout = config.Millis(time.Hour) // only the drain can flush
	conn := s.New(t, cfg)
	r := StartSink(t, cfg, conn)
	Produce(t, br, topic, s.payloads(0, 5)...)
	r.WaitMetric(t, `connector_records_received_total{connector="`+cfg.ConnectorName+`"}`, 5) // taken into the batch
	if w := s.Written(t); len(w) != 0 && !streams(conn, cfg) {
		t.Fatalf("written %q before the batch was full or drained", w)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	if w := s.Written(t); !writtenOnce(w, s.want(0, 5), nil) {
		t.Fatalf("after drain written %q, want each of %q once", w, s.want(0, 5))
	}
	cfg.BatchSize = 1
	r2 := StartSink(t, cfg, s.New(t, cfg))
	Produce(t, br, topic, s.payloads(5, 6)...)
	w := s.waitWritten(t, s.want(0, 6), r2)
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if !writtenOnce(w, s.want(0, 5), s.want(5, 6)) {
		t.Fatalf("written %q, want each of %q once (drained records were redelivered, not acked) and %q at least once",
			w, s.want(0, 5), s.want(5, 6))
	}
}

// writtenOnce reports whether got holds every payload of once exactly once, every payload of
// atLeastOnce at least once, and nothing else.
func writtenOnce(got, once, atLeastOnce []string) bool {
	n := map[string]int{}
	for _, g := range got {
		n[g]++
	}
	for _, w := range once {
		if n[w] != 1 {
			return false
		}
		delete(n, w)
	}
	for _, w := range atLeastOnce {
		if n[w] < 1 {
			return false
		}
		delete(n, w)
	}
	return len(n) == 0
}
