package danube

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func TestProduceConsumeNonReliable(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/plain"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: NonReliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "cons", Subscription: "sub", Type: Shared})

	// Non-reliable delivery drops what does not fit the consumer's 4-slot
	// channel before its stream attaches, as the real broker does.
	const n = 4
	before := time.Now().Add(-time.Second)
	var lastID uint64
	for i := range n {
		id := mustSend(t, p, ProducerMessage{
			Payload:    fmt.Appendf(nil, "msg-%d", i),
			Key:        fmt.Sprintf("k%d", i),
			Attributes: map[string]string{"i": fmt.Sprint(i), "trace": "abc"},
		})
		if id <= lastID {
			t.Fatalf("Send #%d returned request id %d, want > %d", i, id, lastID)
		}
		lastID = id
	}
	for i := range n {
		m := receive(t, cons)
		if got, want := string(m.Payload), fmt.Sprintf("msg-%d", i); got != want {
			t.Fatalf("message %d payload = %q, want %q", i, got, want)
		}
		if m.Topic != topic || m.ProducerName != "prod" || m.Key != fmt.Sprintf("k%d", i) || m.Offset != 0 {
			t.Errorf("message %d = topic %q producer %q key %q offset %d", i, m.Topic, m.ProducerName, m.Key, m.Offset)
		}
		if want := map[string]string{"i": fmt.Sprint(i), "trace": "abc"}; !maps.Equal(m.Attributes, want) {
			t.Errorf("message %d attributes = %v, want %v", i, m.Attributes, want)
		}
		if m.PublishTime.Before(before) || m.PublishTime.After(time.Now()) {
			t.Errorf("message %d publish time %v not within the test", i, m.PublishTime)
		}
		if m.ProducerID == 0 || m.BrokerAddr != b.URL() || m.SchemaID != nil || m.SchemaVersion != nil {
			t.Errorf("message %d: producer id %d broker %q schema %v/%v", i, m.ProducerID, m.BrokerAddr, m.SchemaID, m.SchemaVersion)
		}
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.sends) != n || ev.sends[0].Topic != topic || ev.sends[0].Bytes != len("msg-0") || ev.sends[0].Err != nil {
		t.Errorf("send events = %+v", ev.sends)
	}
	if len(ev.receives) != n || ev.receives[n-1].Topic != topic || ev.receives[n-1].Bytes != len("msg-3") {
		t.Errorf("receive events = %+v", ev.receives)
	}
	if len(ev.acks) != n || ev.acks[0].Nack || ev.acks[0].Err != nil {
		t.Errorf("ack events = %+v", ev.acks)
	}
}

func TestReliableOffsetsAckAndNack(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	const topic = "/default/reliable"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "cons", Subscription: "sub", Type: Exclusive})
	for i := range 3 {
		mustSend(t, p, ProducerMessage{Payload: fmt.Appendf(nil, "r%d", i)})
	}
	m0 := receive(t, cons)
	if string(m0.Payload) != "r0" || m0.Offset != 0 {
		t.Fatalf("first = %q offset %d, want r0 offset 0", m0.Payload, m0.Offset)
	}
	if err := cons.Nack(testCtx(t), m0, 0, "try again"); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	got := map[uint64]int{}
	var redelivered *Message
	for redelivered == nil {
		m := receive(t, cons)
		got[m.Offset]++
		if m.Offset == 0 {
			redelivered = m
		} else if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatalf("Ack offset %d: %v", m.Offset, err)
		}
	}
	if string(redelivered.Payload) != "r0" {
		t.Fatalf("redelivered payload = %q, want r0", redelivered.Payload)
	}
	if err := cons.Ack(testCtx(t), redelivered); err != nil {
		t.Fatalf("Ack redelivered: %v", err)
	}
	for len(got) < 3 {
		m := receive(t, cons)
		got[m.Offset]++
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	expectNone(t, cons, 100*time.Millisecond)
}

func TestPartitionedKeyRoutingAndRoundRobin(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	const topic = "/default/orders"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Partitions: 3, Dispatch: Reliable})
	// A neighbour whose partitions the broker's prefix match would also return.
	mustProducer(t, c, ProducerOptions{Topic: "/default/orders2", Name: "other", Partitions: 2})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "cons", Subscription: "sub", Type: Shared})
	topics := cons.Topics()
	if len(topics) != 3 {
		t.Fatalf("consumer topics = %v, want the 3 partitions of %s", topics, topic)
	}
	keys := []string{"a", "foobar", "customer-1", "customer-2", "customer-3", "zzz"}
	want := map[string]string{}
	for _, k := range keys {
		want[k] = fmt.Sprintf("%s-part-%d", topic, PartitionForKey(k, 3))
		mustSend(t, p, ProducerMessage{Payload: []byte(k), Key: k})
	}
	// Without a key: round-robin starting at partition 0.
	for i := range 6 {
		mustSend(t, p, ProducerMessage{Payload: fmt.Appendf(nil, "rr-%d", i)})
		want[fmt.Sprintf("rr-%d", i)] = fmt.Sprintf("%s-part-%d", topic, i%3)
	}
	for range len(want) {
		m := receive(t, cons)
		if w := want[string(m.Payload)]; m.Topic != w {
			t.Errorf("message %q arrived on %s, want %s", m.Payload, m.Topic, w)
		}
		if !strings.HasPrefix(m.ProducerName, "prod-") || !strings.HasSuffix(m.Topic, m.ProducerName[len("prod"):]) {
			t.Errorf("message %q from producer %q on %s: partition producer name should be prod-N", m.Payload, m.ProducerName, m.Topic)
		}
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatalf("Ack on %s: %v", m.Topic, err)
		}
		delete(want, string(m.Payload))
	}
	if len(want) != 0 {
		t.Errorf("missing messages: %v", want)
	}
}

func TestSubscribeMissingTopic(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	_, err := c.Subscribe(testCtx(t), ConsumerOptions{Topic: "/default/nothing", Name: "c", Subscription: "s"})
	if status.Code(err) != codes.NotFound || err.Error() != `danube: subscribe to topic "/default/nothing": rpc error: code = NotFound desc = topic has no partitions` {
		t.Fatalf("Subscribe missing topic error = %v", err)
	}
	_, err = c.Subscribe(testCtx(t), ConsumerOptions{Topic: "/default/x", Name: "c"})
	if err == nil || err.Error() != "danube: ConsumerOptions.Subscription is required" {
		t.Fatalf("missing subscription error = %v", err)
	}
	_, err = c.NewProducer(testCtx(t), ProducerOptions{Topic: "/default/x"})
	if err == nil || err.Error() != "danube: ProducerOptions.Name is required" {
		t.Fatalf("missing name error = %v", err)
	}
}

func TestDispatchMismatchIsNotRetried(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	mustProducer(t, c, ProducerOptions{Topic: "/default/mixed", Name: "rel", Dispatch: Reliable})
	_, err := c.NewProducer(testCtx(t), ProducerOptions{Topic: "/default/mixed", Name: "nonrel", Dispatch: NonReliable})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("NewProducer with mismatched dispatch: %v, want FailedPrecondition", err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.retries) != 0 {
		t.Errorf("retries = %+v, want none for a non-retryable code", ev.retries)
	}
}

func TestClusterModeFirstCreateUnavailable(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	b.SetClusterMode(true)
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	p := mustProducer(t, c, ProducerOptions{Topic: "/default/cluster", Name: "prod"})
	ev.mu.Lock()
	retries := append([]RetryEvent(nil), ev.retries...)
	ev.mu.Unlock()
	if len(retries) != 1 || retries[0].Op != "CreateProducer" || retries[0].Topic != "/default/cluster" || status.Code(retries[0].Err) != codes.Unavailable || retries[0].Attempt != 1 {
		t.Fatalf("retries = %+v, want one CreateProducer retry after UNAVAILABLE", retries)
	}
	cons := mustConsumer(t, c, ConsumerOptions{Topic: "/default/cluster", Name: "c", Subscription: "s", Type: Shared})
	mustSend(t, p, ProducerMessage{Payload: []byte("hello")})
	if m := receive(t, cons); string(m.Payload) != "hello" {
		t.Fatalf("payload = %q", m.Payload)
	}
}

func TestSendRetriesUnavailable(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	p := mustProducer(t, c, ProducerOptions{Topic: "/default/flaky", Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: "/default/flaky", Name: "c", Subscription: "s", Type: Exclusive})
	b.FailNext("/danube.ProducerService/SendMessage", 2, codes.Unavailable)
	mustSend(t, p, ProducerMessage{Payload: []byte("after-failures")})
	m := receive(t, cons)
	if string(m.Payload) != "after-failures" || m.Offset != 0 {
		t.Fatalf("got %q offset %d, want after-failures offset 0 (exactly once)", m.Payload, m.Offset)
	}
	ev.mu.Lock()
	n := 0
	for _, r := range ev.retries {
		if r.Op == "SendMessage" && status.Code(r.Err) == codes.Unavailable {
			n++
		}
	}
	ev.mu.Unlock()
	if n != 2 {
		t.Errorf("SendMessage retries = %d, want 2", n)
	}

	// A budget smaller than the failures surfaces the error.
	c2 := newTestClient(t, b.URL(), WithMaxRetries(1))
	p2 := mustProducer(t, c2, ProducerOptions{Topic: "/default/flaky", Name: "prod2", Dispatch: Reliable})
	b.FailNext("/danube.ProducerService/SendMessage", 5, codes.Unavailable)
	_, err := p2.Send(testCtx(t), ProducerMessage{Payload: []byte("x")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Send with exhausted retries = %v, want Unavailable", err)
	}
}

func TestExclusiveConflict(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	mustProducer(t, c, ProducerOptions{Topic: "/default/excl", Name: "prod"})
	mustConsumer(t, c, ConsumerOptions{Topic: "/default/excl", Name: "first", Subscription: "s", Type: Exclusive})
	_, err := c.Subscribe(testCtx(t), ConsumerOptions{Topic: "/default/excl", Name: "second", Subscription: "s", Type: Exclusive})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("second Exclusive consumer: %v, want PermissionDenied", err)
	}
	// The client's part of the text exactly; the broker's by its fixed fragment.
	prefix := `danube: subscribe consumer "second" to topic "/default/excl" (subscription "s") at ` + b.URL() +
		`: rpc error: code = PermissionDenied desc = Not able to subscribe to the topic /default/excl`
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, "Exclusive subscription can't be shared") {
		t.Errorf("error = %v\nwant %s … Exclusive subscription can't be shared", err, prefix)
	}
}

// consumerID returns the broker's id of c's consumer on topic.
func consumerID(c *Consumer, topic string) uint64 {
	pc := c.parts[topic]
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.id
}

func TestSameNameTakeover(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	const topic = "/default/takeover"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	old, err := c.Subscribe(testCtx(t), ConsumerOptions{Topic: topic, Name: "worker", Subscription: "s", Type: Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	// The same name takes the subscription over (a restarted process).
	taker := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "worker", Subscription: "s", Type: Exclusive})
	// The old consumer's stream ends with the takeover and it resubscribes meanwhile: read its id
	// as the resubscribe writes it, under the lock.
	if oldID, takerID := consumerID(old, topic), consumerID(taker, topic); oldID != takerID {
		t.Errorf("takeover consumer id %d, want the existing id %d", takerID, oldID)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustSend(t, p, ProducerMessage{Payload: fmt.Appendf(nil, "t%d", i)})
	}
	for i := range 3 {
		m := receive(t, taker)
		if m.Offset != uint64(i) {
			t.Fatalf("message %d offset = %d", i, m.Offset)
		}
		if err := taker.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProducerRecreatedAfterForceClose(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/fc-prod"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	mustSend(t, p, ProducerMessage{Payload: []byte("before")})
	pp := p.parts[0]
	b.ForceClose(pp.current().id)
	eventually(t, "producer marked for recreation", pp.current().isDead)
	mustSend(t, p, ProducerMessage{Payload: []byte("after")})
	ev.waitFor(t, "producer reconnect", func(e *events) bool { return e.reconnected("producer") == 1 })
	ev.mu.Lock()
	if r := ev.reconnects[0]; r.Reason != "health check CLOSE" || r.Topic != topic {
		t.Errorf("reconnect = %+v", r)
	}
	ev.mu.Unlock()
	for i, want := range []string{"before", "after"} {
		m := receive(t, cons)
		if string(m.Payload) != want || m.Offset != uint64(i) {
			t.Fatalf("got %q offset %d, want %q offset %d", m.Payload, m.Offset, want, i)
		}
		_ = cons.Ack(testCtx(t), m)
	}
	eventually(t, "2 health loops (one producer, one consumer)", func() bool { return c.healthLoops.Load() == 2 })
}

func TestConsumerResubscribesOnForceCloseAndDrop(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/fc-cons"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	id := consumerID(cons, topic)

	// A first message proves the stream is attached.
	mustSend(t, p, ProducerMessage{Payload: []byte("zero")})
	_ = cons.Ack(testCtx(t), receive(t, cons))
	// CLOSE on an idle stream: no message is flowing when it happens.
	b.ForceClose(id)
	ev.waitFor(t, "consumer resubscribed after CLOSE", func(e *events) bool { return e.reconnected("consumer") >= 1 })
	mustSend(t, p, ProducerMessage{Payload: []byte("one")})
	m := receive(t, cons)
	if string(m.Payload) != "one" || m.Offset != 1 {
		t.Fatalf("got %q offset %d, want one offset 1", m.Payload, m.Offset)
	}
	_ = cons.Ack(testCtx(t), m)

	b.DropStream(id)
	ev.waitFor(t, "consumer resubscribed after stream drop", func(e *events) bool { return e.reconnected("consumer") >= 2 })
	mustSend(t, p, ProducerMessage{Payload: []byte("two")})
	m = receive(t, cons)
	if string(m.Payload) != "two" || m.Offset != 2 {
		t.Fatalf("got %q offset %d, want two offset 2", m.Payload, m.Offset)
	}
	_ = cons.Ack(testCtx(t), m)
	eventually(t, "2 health loops after resubscribes (one producer, one consumer)", func() bool { return c.healthLoops.Load() == 2 })
}

func TestBrokerRestartWithDataDir(t *testing.T) {
	b := fastBroker(t, devbroker.Config{DataDir: t.TempDir()})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/durable"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	for i := range 3 {
		mustSend(t, p, ProducerMessage{Payload: fmt.Appendf(nil, "m%d", i)})
	}
	for range 3 {
		if err := cons.Ack(testCtx(t), receive(t, cons)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	// The restarted broker forgot the producer (NOT_FOUND): Send recreates it.
	for i := 3; i < 6; i++ {
		mustSend(t, p, ProducerMessage{Payload: fmt.Appendf(nil, "m%d", i)})
	}
	ev.waitFor(t, "producer and consumer reconnected", func(e *events) bool {
		return e.reconnected("producer") >= 1 && e.reconnected("consumer") >= 1
	})
	seen := map[uint64]string{}
	for len(seen) < 3 {
		m := receive(t, cons)
		if m.Offset < 3 {
			continue // acked before the restart but possibly not flushed: at-least-once
		}
		seen[m.Offset] = string(m.Payload)
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(3); i < 6; i++ {
		if seen[i] != fmt.Sprintf("m%d", i) {
			t.Errorf("offset %d = %q, want m%d (offsets continue across the restart)", i, seen[i], i)
		}
	}
}

func TestBrokerRestartWithoutDataDir(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/volatile"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	mustSend(t, p, ProducerMessage{Payload: []byte("before")})
	_ = cons.Ack(testCtx(t), receive(t, cons))
	if err := b.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	// The topic is gone: the producer recreates it, then the consumer (which
	// keeps retrying NOT_FOUND) gets its subscription back.
	mustSend(t, p, ProducerMessage{Payload: []byte("recreates-topic")})
	ev.waitFor(t, "consumer resubscribed", func(e *events) bool { return e.reconnected("consumer") >= 1 })
	mustSend(t, p, ProducerMessage{Payload: []byte("after")})
	m := receive(t, cons)
	if string(m.Payload) == "recreates-topic" {
		// The resubscription may have landed before that send.
		m = receive(t, cons)
	}
	if string(m.Payload) != "after" {
		t.Fatalf("payload = %q, want after", m.Payload)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.reconnected("producer") == 0 {
		t.Errorf("reconnects = %+v, want a producer recreation", ev.reconnects)
	}
}

func TestSendNotFoundRecreatesInOrder(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/notfound"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	mustSend(t, p, ProducerMessage{Payload: []byte("m0")})
	b.FailNext("/danube.ProducerService/SendMessage", 1, codes.NotFound)
	mustSend(t, p, ProducerMessage{Payload: []byte("m1")})
	mustSend(t, p, ProducerMessage{Payload: []byte("m2")})
	for i := range 3 {
		m := receive(t, cons)
		if want := fmt.Sprintf("m%d", i); string(m.Payload) != want || m.Offset != uint64(i) {
			t.Fatalf("got %q offset %d, want %s offset %d", m.Payload, m.Offset, want, i)
		}
		_ = cons.Ack(testCtx(t), m)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.reconnects) != 1 || ev.reconnects[0] != (ReconnectEvent{Topic: topic, Kind: "producer", Reason: "NotFound"}) {
		t.Errorf("reconnects = %+v, want one producer recreation for NotFound", ev.reconnects)
	}
}

func TestRedirectBetweenBrokers(t *testing.T) {
	a := fastBroker(t, devbroker.Config{})
	bb := fastBroker(t, devbroker.Config{})
	const topic = "/default/moved"
	a.RedirectTopic(topic, bb)
	c := newTestClient(t, a.URL())
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	if got := p.parts[0].current().broker.connectURL; got != bb.URL() {
		t.Fatalf("producer connected to %s, want %s", got, bb.URL())
	}
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	if got := cons.parts[topic].broker.connectURL; got != bb.URL() {
		t.Fatalf("consumer connected to %s, want %s", got, bb.URL())
	}
	mustSend(t, p, ProducerMessage{Payload: []byte("via-b")})
	m := receive(t, cons)
	if string(m.Payload) != "via-b" || m.BrokerAddr != bb.URL() {
		t.Fatalf("got %q from %s", m.Payload, m.BrokerAddr)
	}
	if err := cons.Ack(testCtx(t), m); err != nil {
		t.Fatalf("Ack routed to the owning broker: %v", err)
	}
}

func TestTopicMoveRecreatesProducer(t *testing.T) {
	a := fastBroker(t, devbroker.Config{})
	bb := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, a.URL(), WithHooks(ev.hooks()))
	const topic = "/default/moving"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
	mustSend(t, p, ProducerMessage{Payload: []byte("on-a")})
	// Move: lookups now point at B, and A forgets the producer.
	a.RedirectTopic(topic, bb)
	a.ForceClose(p.parts[0].current().id)
	eventually(t, "producer marked for recreation", p.parts[0].current().isDead)
	mustSend(t, p, ProducerMessage{Payload: []byte("on-b")})
	if got := p.parts[0].current().broker.connectURL; got != bb.URL() {
		t.Fatalf("after move producer is at %s, want %s", got, bb.URL())
	}
	ev.waitFor(t, "producer reconnect", func(e *events) bool { return e.reconnected("producer") == 1 })
}

func TestCloseStopsEverything(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c, err := NewClient(b.URL(), fastOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	p, err := c.NewProducer(ctx, ProducerOptions{Topic: "/default/closing", Name: "p", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.Subscribe(ctx, ConsumerOptions{Topic: "/default/closing", Name: "c", Subscription: "s", Type: Shared})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "4 health loops (2 producer + 2 consumer partitions)", func() bool { return c.healthLoops.Load() == 4 })
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-cons.Messages(); ok {
		t.Error("Messages() still open after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := c.healthLoops.Load(); n != 0 {
		t.Errorf("health loops = %d after Close, want 0", n)
	}
	if _, err := p.Send(ctx, ProducerMessage{Payload: []byte("x")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if err := cons.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewProducer(ctx, ProducerOptions{Topic: "/default/closing", Name: "p2"}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewProducer on closed client = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
}

func TestKeySharedFilters(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	const topic = "/default/keyed"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	eu := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "eu", Subscription: "ks", Type: KeyShared, KeyFilters: []string{"eu-*"}})
	us := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "us", Subscription: "ks", Type: KeyShared, KeyFilters: []string{"us-?"}})
	for _, k := range []string{"eu-1", "us-1", "eu-22", "us-2"} {
		mustSend(t, p, ProducerMessage{Payload: []byte(k), Key: k})
	}
	for _, tc := range []struct {
		cons *Consumer
		want []string
	}{{eu, []string{"eu-1", "eu-22"}}, {us, []string{"us-1", "us-2"}}} {
		for _, w := range tc.want {
			m := receive(t, tc.cons)
			if string(m.Payload) != w || m.Key != w {
				t.Fatalf("consumer %s got %q (key %q), want %q", tc.cons.opts.Name, m.Payload, m.Key, w)
			}
			if err := tc.cons.Ack(testCtx(t), m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestNackDelayAndAckErrors(t *testing.T) {
	b := fastBroker(t, devbroker.Config{RedeliveryBaseDelay: time.Millisecond, RedeliveryMaxDelay: time.Second})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/nack"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	mustSend(t, p, ProducerMessage{Payload: []byte("retry-me")})
	m := receive(t, cons)
	start := time.Now()
	if err := cons.Nack(testCtx(t), m, 150*time.Millisecond, "downstream busy"); err != nil {
		t.Fatal(err)
	}
	again := receive(t, cons)
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("redelivered after %v, want >= the requested 150ms delay", waited)
	}
	if again.Offset != m.Offset || string(again.Payload) != "retry-me" {
		t.Fatalf("redelivery = %q offset %d", again.Payload, again.Offset)
	}
	if err := cons.Ack(testCtx(t), again); err != nil {
		t.Fatal(err)
	}
	ev.mu.Lock()
	if len(ev.acks) != 2 || !ev.acks[0].Nack || ev.acks[0].Offset != m.Offset || ev.acks[1].Nack {
		t.Errorf("ack events = %+v, want a Nack then an Ack", ev.acks)
	}
	ev.mu.Unlock()

	if err := cons.Ack(testCtx(t), &Message{Topic: topic}); err == nil || err.Error() != "danube: message was not received by this client" {
		t.Errorf("Ack of a foreign message = %v", err)
	}
	other := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c2", Subscription: "s2", Type: Exclusive})
	m.partition = "/default/elsewhere"
	if err := other.Ack(testCtx(t), m); err == nil || err.Error() != `danube: message from topic "/default/nack" was not received by this consumer` {
		t.Errorf("Ack routed to the wrong consumer = %v", err)
	}
	_ = cons.Close()
	if err := cons.Ack(testCtx(t), again); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close = %v, want ErrClosed", err)
	}
}

func TestConcurrentSendsKeepPerKeyOrder(t *testing.T) {
	b := fastBroker(t, devbroker.Config{MaxUnackedMessages: 1000})
	c := newTestClient(t, b.URL())
	const topic = "/default/concurrent"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Partitions: 2, Dispatch: Reliable})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive, Buffer: 10})
	const writers, perWriter = 4, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			key := fmt.Sprintf("writer-%d", w)
			for i := range perWriter {
				if _, err := p.Send(testCtx(t), ProducerMessage{Payload: fmt.Appendf(nil, "%d", i), Key: key}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	next := map[string]int{}
	for range writers * perWriter {
		m := receive(t, cons)
		if want := fmt.Sprint(next[m.Key]); string(m.Payload) != want {
			t.Fatalf("key %s: got %s, want %s (order within a producer)", m.Key, m.Payload, want)
		}
		if want := fmt.Sprintf("%s-part-%d", topic, PartitionForKey(m.Key, 2)); m.Topic != want {
			t.Fatalf("key %s on %s, want %s", m.Key, m.Topic, want)
		}
		next[m.Key]++
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsumerResubscribesOnReceiveNotFound(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	ev := newEvents()
	c := newTestClient(t, b.URL(), WithHooks(ev.hooks()))
	const topic = "/default/recv-notfound"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod", Dispatch: Reliable})
	b.FailNext("/danube.ConsumerService/ReceiveMessages", 1, codes.NotFound)
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	ev.waitFor(t, "resubscribe after NotFound", func(e *events) bool { return e.reconnected("consumer") == 1 })
	ev.mu.Lock()
	if r := ev.reconnects[0]; r.Reason != "NotFound" {
		t.Errorf("reconnect reason = %q, want NotFound", r.Reason)
	}
	ev.mu.Unlock()
	mustSend(t, p, ProducerMessage{Payload: []byte("delivered")})
	if m := receive(t, cons); string(m.Payload) != "delivered" {
		t.Fatalf("payload = %q", m.Payload)
	}
}
