// Package brokerparity pins the behaviours in which Danube v0.15.1 surprised us, so that the
// development broker keeps reproducing them. Every test runs against the in-process development
// broker, and against a real broker when the harness has one (IT_DANUBE_URL with
// IT_DANUBE_ADMIN_URL, or IT_DANUBE_IMAGE):
//
//	IT_DANUBE_URL=http://127.0.0.1:6650 IT_DANUBE_ADMIN_URL=http://127.0.0.1:50051 \
//	  go test -count=1 ./integration/brokerparity/
//
// A test that passes against one and fails against the other is a difference to close, except
// TestFallingBehindLosesNothing, which fails against v0.15.1: it pins a defect of that broker, and
// TestFallingBehindLosesAsV0151, which pins the development broker's LagDrop mode to that defect.
package brokerparity_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/proto/adminpb"
	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

func TestMain(m *testing.M) { harness.Main(m) }

// broker is the broker under test: its service URL, an admin client, and raw admin stubs for the
// calls whose exact status codes are pinned.
type broker struct {
	url    string
	admin  *danube.Admin
	topics adminpb.TopicAdminClient
	ns     adminpb.NamespaceAdminClient
	raw    *grpc.ClientConn // the client API, for calls the Go client would not make
	// window is the broker-wide max_unacked_messages: 10 unless the broker was configured otherwise.
	window int
	// evictAfter is longer than a KeyShared consumer may stay inactive before eviction.
	evictAfter time.Duration
}

func start(t *testing.T) broker { return startWith(t, false) }

// startWith starts the broker under test; lagDrop makes a development broker lose messages of a
// subscription that falls far behind as v0.15.1 does (devbroker.Config.LagDrop).
func startWith(t *testing.T, lagDrop bool) broker {
	t.Helper()
	ep := harness.Danube(t, devbroker.Config{RetryTick: 10 * time.Millisecond,
		KeySharedEvictionTimeout: 100 * time.Millisecond, KeySharedEvictionDropsUnacked: true, LagDrop: lagDrop})
	evictAfter := 500 * time.Millisecond
	if ep.Broker == nil {
		evictAfter = 5 * time.Second // a real broker: six 500 ms heartbeats
	}
	if ep.AdminURL == "" {
		t.Skipf("%s without an admin URL: these tests need the admin API", ep.Source)
	}
	admin, err := danube.NewAdmin(ep.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	cc := dial(t, ep.AdminURL)
	return broker{url: ep.URL, admin: admin, topics: adminpb.NewTopicAdminClient(cc), ns: adminpb.NewNamespaceAdminClient(cc),
		raw: dial(t, ep.URL), window: 10, evictAfter: evictAfter}
}

// dial opens a plain gRPC connection to an http://host:port URL until the test ends.
func dial(t *testing.T, rawURL string) *grpc.ClientConn {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// unique is a name part no earlier run used: a real broker keeps its topics.
func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + hex.EncodeToString(b)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, b broker) *danube.Client {
	t.Helper()
	c, err := danube.NewClient(b.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func producer(t *testing.T, c *danube.Client, topic string) *danube.Producer {
	t.Helper()
	p, err := c.NewProducer(ctxFor(t), danube.ProducerOptions{Topic: topic, Name: "p-" + unique(t), Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func subscribe(t *testing.T, c *danube.Client, topic, sub, name string, typ danube.SubscriptionType) *danube.Consumer {
	t.Helper()
	cons, err := c.Subscribe(ctxFor(t), danube.ConsumerOptions{Topic: topic, Subscription: sub, Name: name, Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons
}

func send(t *testing.T, p *danube.Producer, n int, key string) {
	t.Helper()
	for i := range n {
		if _, err := p.Send(ctxFor(t), danube.ProducerMessage{Payload: []byte{byte(i)}, Key: key, Attributes: map[string]string{"i": string(rune('a' + i%26))}}); err != nil {
			t.Fatal(err)
		}
	}
}

// received drains what arrives until nothing more comes for quiet.
func received(c *danube.Consumer, quiet time.Duration) []*danube.Message {
	var out []*danube.Message
	for {
		select {
		case m := <-c.Messages():
			out = append(out, m)
		case <-time.After(quiet):
			return out
		}
	}
}

func next(t *testing.T, c *danube.Consumer) *danube.Message {
	t.Helper()
	select {
	case m := <-c.Messages():
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no message within 20 s")
		return nil
	}
}

func wantCode(t *testing.T, what string, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), text) {
		t.Errorf("%s: got %v, want %s containing %q", what, err, code, text)
	}
}

// v0.15.1 stores a subscription's max_unacked_messages and returns it, but dispatches every
// subscription with the broker's default window.
func TestSubscriptionWindowIsStoredNotApplied(t *testing.T) {
	b := start(t)
	c := client(t, b)
	topic := "/default/" + unique(t)
	p := producer(t, c, topic)
	cons := subscribe(t, c, topic, "s", "c", danube.Shared)
	if err := b.admin.SetSubscriptionWindow(ctxFor(t), topic, "s", 25); err != nil {
		t.Fatal(err)
	}
	if n, err := b.admin.SubscriptionWindow(ctxFor(t), topic, "s"); err != nil || n != 25 {
		t.Fatalf("stored window = %d, %v; want 25", n, err)
	}
	send(t, p, 40, "")
	if got := len(received(cons, 1500*time.Millisecond)); got != b.window {
		t.Fatalf("%d messages delivered unacked, want the broker's default window %d", got, b.window)
	}
}

// A failure policy set on a live subscription is stored, and the next new consumer on that
// subscription writes the live policy back over it.
func TestNewConsumerWritesLivePolicyBack(t *testing.T) {
	b := start(t)
	c := client(t, b)
	topic := "/default/" + unique(t)
	producer(t, c, topic)
	subscribe(t, c, topic, "s", "first", danube.Shared)
	live, err := b.admin.SubscriptionFailurePolicy(ctxFor(t), topic, "s")
	if err != nil {
		t.Fatal(err)
	}
	changed := live
	changed.MaxRedeliveries = live.MaxRedeliveries + 3
	if err := b.admin.SetSubscriptionFailurePolicy(ctxFor(t), topic, "s", changed); err != nil {
		t.Fatal(err)
	}
	if got, err := b.admin.SubscriptionFailurePolicy(ctxFor(t), topic, "s"); err != nil || got.MaxRedeliveries != changed.MaxRedeliveries {
		t.Fatalf("stored policy %+v, %v; want max redeliveries %d", got, err, changed.MaxRedeliveries)
	}
	subscribe(t, c, topic, "s", "second", danube.Shared)
	if got, err := b.admin.SubscriptionFailurePolicy(ctxFor(t), topic, "s"); err != nil || got.MaxRedeliveries != live.MaxRedeliveries {
		t.Fatalf("policy after a new consumer %+v, %v; want the live one written back (max redeliveries %d)", got, err, live.MaxRedeliveries)
	}
}

// A policy stored before the subscription exists is the one it is created with; poison messages
// then go to a dead-letter topic the broker creates, carrying the payload and the attributes (the
// original ones and x-original-*) but neither the routing key nor the original id.
func TestDeadLetterTopicIsCreatedByTheBroker(t *testing.T) {
	b := start(t)
	c := client(t, b)
	name := unique(t)
	topic, dlq := "/default/"+name, "/default/"+name+"-dlq"
	p := producer(t, c, topic)
	policy := danube.FailurePolicy{MaxRedeliveries: 2, AckTimeout: 30 * time.Second, BaseDelay: 10 * time.Millisecond,
		MaxDelay: 20 * time.Millisecond, FixedBackoff: true, Poison: danube.PoisonDeadLetter, DeadLetterTopic: dlq}
	if err := b.admin.SetSubscriptionFailurePolicy(ctxFor(t), topic, "s", policy); err != nil {
		t.Fatal(err)
	}
	cons := subscribe(t, c, topic, "s", "c", danube.Shared)
	send(t, p, 1, "key-1")
	nackUntilPoisoned(t, cons, policy.MaxRedeliveries)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := b.topics.DescribeTopic(ctxFor(t), &adminpb.DescribeTopicRequest{Name: dlq})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter topic %s not created: %v", dlq, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if more := received(cons, 500*time.Millisecond); len(more) != 0 {
		t.Fatalf("the dead-lettered message was delivered again %d times", len(more))
	}
}

// nackUntilPoisoned nacks the one message in flight on every delivery: the first and maxRedeliveries
// more (a poison policy applies once a message's delivery attempts exceed the limit). It returns the
// last delivery.
func nackUntilPoisoned(t *testing.T, c *danube.Consumer, maxRedeliveries int) *danube.Message {
	t.Helper()
	var m *danube.Message
	for range maxRedeliveries + 1 {
		m = next(t, c)
		if err := c.Nack(ctxFor(t), m, 0, "bad record"); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// The copy on a dead-letter topic that already has a subscription.
func TestDeadLetterCopy(t *testing.T) {
	b := start(t)
	c := client(t, b)
	name := unique(t)
	topic, dlq := "/default/"+name, "/default/"+name+"-dlq"
	p := producer(t, c, topic)
	producer(t, c, dlq)
	dead := subscribe(t, c, dlq, "audit", "a", danube.Exclusive)
	policy := danube.FailurePolicy{MaxRedeliveries: 1, AckTimeout: 30 * time.Second, BaseDelay: 10 * time.Millisecond,
		MaxDelay: 20 * time.Millisecond, FixedBackoff: true, Poison: danube.PoisonDeadLetter, DeadLetterTopic: dlq}
	if err := b.admin.SetSubscriptionFailurePolicy(ctxFor(t), topic, "s", policy); err != nil {
		t.Fatal(err)
	}
	cons := subscribe(t, c, topic, "s", "c", danube.Shared)
	send(t, p, 1, "key-1")
	orig := nackUntilPoisoned(t, cons, policy.MaxRedeliveries)
	m := next(t, dead)
	if string(m.Payload) != string(orig.Payload) || m.Key != "" || m.Topic != dlq {
		t.Errorf("dead-letter copy: payload %q key %q topic %s; want payload %q, no key, topic %s", m.Payload, m.Key, m.Topic, orig.Payload, dlq)
	}
	want := map[string]string{"i": "a", "x-original-topic": topic, "x-original-subscription": "s",
		"x-poison-policy": "dead_letter", "x-delivery-attempt": "2", "x-failure-reason": "bad record"}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, m.Attributes[k], v, m.Attributes)
		}
	}
}

// Admin create and delete failures all come back as NOT_FOUND, with the cause in the text.
func TestAdminFailuresAreNotFound(t *testing.T) {
	b := start(t)
	ctx := ctxFor(t)
	ns := strings.ReplaceAll(unique(t), "-", "_")
	if _, err := b.ns.CreateNamespace(ctx, &adminpb.NamespaceRequest{Name: ns}); err != nil {
		t.Fatal(err)
	}
	_, err := b.ns.CreateNamespace(ctx, &adminpb.NamespaceRequest{Name: ns})
	wantCode(t, "namespace again", err, codes.NotFound, "already exists")
	topic := "/" + ns + "/t"
	if _, err := b.topics.CreateTopic(ctx, &adminpb.NewTopicRequest{Name: topic, DispatchStrategy: adminpb.DispatchStrategy_Reliable}); err != nil {
		t.Fatal(err)
	}
	_, err = b.topics.CreateTopic(ctx, &adminpb.NewTopicRequest{Name: topic, DispatchStrategy: adminpb.DispatchStrategy_Reliable})
	wantCode(t, "topic again", err, codes.NotFound, "Unable to create the topic "+topic)
	_, err = b.topics.CreateTopic(ctx, &adminpb.NewTopicRequest{Name: "/no_such_ns_" + ns + "/t"})
	wantCode(t, "topic in a missing namespace", err, codes.NotFound, "Unable to create the topic")
	// Deleting a topic that does not exist succeeds.
	if r, err := b.topics.DeleteTopic(ctx, &adminpb.TopicRequest{Name: "/" + ns + "/missing"}); err != nil || !r.GetSuccess() {
		t.Errorf("delete a missing topic: %v, %v; want success", r, err)
	}
	_, err = b.ns.DeleteNamespace(ctx, &adminpb.NamespaceRequest{Name: ns})
	wantCode(t, "delete a namespace with a topic", err, codes.NotFound, "Unable to delete the namespace "+ns)
}

// A producer may name a schema subject nobody registered when it creates a topic (the Go client
// itself refuses to, since it stamps the subject's schema id on every message).
func TestUnknownSchemaSubjectOnNewTopic(t *testing.T) {
	b := start(t)
	_, err := danubepb.NewProducerServiceClient(b.raw).CreateProducer(ctxFor(t), &danubepb.ProducerRequest{
		RequestId: 1, TopicName: "/default/" + unique(t), ProducerName: "p", DispatchStrategy: danubepb.DispatchStrategy_Reliable,
		SchemaRef: &danubepb.SchemaReference{Subject: "never-registered-" + unique(t)}})
	if err != nil {
		t.Fatalf("create producer: %v", err)
	}
}

// A KeyShared consumer evicted for inactivity and subscribing again under its old name is never
// put back in the hash ring: every key goes to the others.
func TestEvictedKeySharedNameGetsNoKeys(t *testing.T) {
	b := start(t)
	topic := "/default/" + unique(t)
	c := client(t, b)
	p := producer(t, c, topic)
	stays := subscribe(t, c, topic, "s", "stays", danube.KeyShared)
	leaving := client(t, b)
	gone := subscribe(t, leaving, topic, "s", "gone", danube.KeyShared)
	sendKeys := func() {
		for i := range 20 {
			send(t, p, 1, "key-"+string(rune('a'+i)))
		}
	}
	// Both streams attached and owning keys before one goes away.
	sendKeys()
	if n := ackAll(t, 20, stays, gone); n[1] == 0 {
		t.Fatalf("the second consumer owns none of 20 keys (%v)", n)
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(b.evictAfter)
	back := subscribe(t, leaving, topic, "s", "gone", danube.KeyShared)
	sendKeys()
	if n := ackAll(t, 20, stays, back); n[0] != 20 || n[1] != 0 {
		t.Fatalf("after the eviction the remaining consumer got %d of 20 messages, the evicted name %d", n[0], n[1])
	}
}

// ackAll acknowledges what the consumers receive until want messages arrived in all, or nothing more
// came for 2 s; it returns how many each got.
func ackAll(t *testing.T, want int, cs ...*danube.Consumer) []int {
	t.Helper()
	n := make([]int, len(cs))
	total, last := 0, time.Now()
	for total < want && time.Since(last) < 2*time.Second {
		for i, c := range cs {
			select {
			case m := <-c.Messages():
				if err := c.Ack(ctxFor(t), m); err != nil {
					t.Fatal(err)
				}
				n[i]++
				total++
				last = time.Now()
			default:
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// A consumer that subscribed and never opened its stream counts as attached: messages are
// dispatched to it, time out and spend their delivery attempts, so "no attempt accrues while nobody
// is attached" holds only for consumers whose stream ended. Here the policy drops them, and a
// consumer joining later gets none. (The Go client's Subscribe returns only once its stream is
// open, so it leaves no such consumer behind; the raw Subscribe call here does.)
func TestSubscribedWithoutStreamSpendsAttempts(t *testing.T) {
	b := start(t)
	c := client(t, b)
	topic := "/default/" + unique(t)
	p := producer(t, c, topic)
	policy := danube.FailurePolicy{MaxRedeliveries: 1, AckTimeout: time.Second, BaseDelay: 10 * time.Millisecond,
		MaxDelay: 20 * time.Millisecond, FixedBackoff: true, Poison: danube.PoisonDrop}
	if err := b.admin.SetSubscriptionFailurePolicy(ctxFor(t), topic, "s", policy); err != nil {
		t.Fatal(err)
	}
	if _, err := danubepb.NewConsumerServiceClient(b.raw).Subscribe(ctxFor(t), &danubepb.ConsumerRequest{RequestId: 1, TopicName: topic,
		ConsumerName: "ghost", Subscription: "s", SubscriptionType: danubepb.ConsumerRequest_Shared}); err != nil {
		t.Fatal(err)
	}
	send(t, p, 5, "")
	time.Sleep(5 * time.Second) // two ack timeouts and the drop
	live := subscribe(t, c, topic, "s", "live", danube.Shared)
	if got := received(live, 3*time.Second); len(got) != 0 {
		t.Fatalf("a consumer joining later got %d of the 5 messages, want 0 (dropped after the ghost's attempts)", len(got))
	}
}

// A reliable subscription must deliver every message however far its consumer falls behind. This
// is the one test here that pins no surprise but a defect: against v0.15.1 it fails. A
// subscription created in the running broker (no stored cursor yet) reads the topic through a
// 256-message in-memory channel; once the consumer is more than its window plus 256 messages
// behind (a slow or paused sink, a sink being restarted), that channel overflows and the messages
// it dropped are never delivered to the subscription: not after a resubscribe, not after the
// broker restarts. With producers still sending, the subscription then stopped delivering
// altogether in our runs. The broker's danube_subscription_lag_messages shows the backlog it
// keeps; docs/operations.md says how to alert on it.
func TestFallingBehindLosesNothing(t *testing.T) {
	b := start(t)
	c := client(t, b)
	topic := "/default/" + unique(t)
	p := producer(t, c, topic)
	cons := subscribe(t, c, topic, "slow", "slow-consumer", danube.Exclusive)

	// More than any window the tests run with (10 by default, 2,000 in the example stack) plus 256.
	const n = 3000
	ctx := ctxFor(t)
	for i := range n {
		if _, err := p.Send(ctx, danube.ProducerMessage{Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[int]bool, n)
	for len(seen) < n {
		select {
		case m := <-cons.Messages():
			i, _ := strconv.Atoi(string(m.Payload))
			seen[i] = true
			if err := cons.Ack(ctx, m); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			first := -1
			for i := range n {
				if !seen[i] {
					first = i
					break
				}
			}
			t.Fatalf("nothing more delivered for 10 s: %d of %d messages received, the first missing is #%d", len(seen), n, first)
		}
	}
}

// TestFallingBehindLosesAsV0151 pins the development broker's LagDrop mode to the v0.15.1 defect
// that TestFallingBehindLosesNothing shows: a consumer that acks nothing while 3,000 messages are
// published receives the first window and the last 256, and nothing else, even once it acks.
func TestFallingBehindLosesAsV0151(t *testing.T) {
	b := startWith(t, true)
	c := client(t, b)
	topic := "/default/" + unique(t)
	p := producer(t, c, topic)
	cons := subscribe(t, c, topic, "slow", "slow-consumer", danube.Exclusive)
	const n, channel = 3000, 256
	ctx := ctxFor(t)
	for i := range n {
		if _, err := p.Send(ctx, danube.ProducerMessage{Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	for quiet := false; !quiet; {
		select {
		case m := <-cons.Messages():
			i, _ := strconv.Atoi(string(m.Payload))
			got = append(got, i)
			if err := cons.Ack(ctxFor(t), m); err != nil {
				t.Fatal(err)
			}
		case <-time.After(3 * time.Second):
			quiet = true
		}
	}
	var want []int
	for i := range b.window {
		want = append(want, i)
	}
	for i := n - channel; i < n; i++ {
		want = append(want, i)
	}
	if len(got) != len(want) {
		t.Fatalf("received %d messages, want the first %d and the last %d (%d)", len(got), b.window, channel, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d is #%d, want #%d", i, got[i], want[i])
		}
	}
}
