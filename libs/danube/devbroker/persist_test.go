package devbroker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
	spb "github.com/danube-messaging/danube-connect-go/proto/schemapb"
)

func TestDataDirSurvivesRestart(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/durable"
	pid := e.producer(topic, "p", reliable)
	s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	for i := 0; i < 5; i++ {
		e.send(topic, pid, uint64(i), string(rune('a'+i)), nil)
	}
	for i := 0; i < 2; i++ {
		e.ack(s.next(t), "sub")
	}
	e = restart(t, e)
	// Lookup finds the persisted topic; the subscription resumes after the cursor.
	if _, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: topic}); err != nil {
		t.Fatalf("lookup after restart: %v", err)
	}
	s2 := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	for i := 2; i < 5; i++ {
		m := s2.next(t)
		if m.GetMsgId().GetTopicOffset() != uint64(i) || string(m.GetPayload()) != string(rune('a'+i)) {
			t.Fatalf("after restart got offset %d %q, want %d", m.GetMsgId().GetTopicOffset(), m.GetPayload(), i)
		}
		e.ack(m, "sub")
	}
	// Offsets continue after the restart.
	pid = e.producer(topic, "p", reliable)
	e.send(topic, pid, 9, "f", nil)
	if m := s2.next(t); m.GetMsgId().GetTopicOffset() != 5 {
		t.Fatalf("new message offset %d, want 5", m.GetMsgId().GetTopicOffset())
	}
}

func TestTornLogTailIsTruncated(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	cfg.AckTimeout = time.Minute
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := dialEnv(t, b)
	const topic = "/default/torn"
	pid := e.producer(topic, "p", reliable)
	e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	for i := 0; i < 3; i++ {
		e.send(topic, pid, uint64(i), "m", nil)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "wal", "*.log"))
	if len(logs) != 1 {
		t.Fatalf("logs %v", logs)
	}
	f, err := os.OpenFile(logs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{3, 0, 0, 0, 0, 0, 0, 0, 200, 0}); err != nil { // half a header
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	b2, err := Start(cfg)
	if err != nil {
		t.Fatalf("start over torn log: %v", err)
	}
	defer b2.Close()
	e2 := dialEnv(t, b2)
	s := e2.receive(e2.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	for i := 0; i < 3; i++ {
		if m := s.next(t); m.GetMsgId().GetTopicOffset() != uint64(i) {
			t.Fatalf("offset %d, want %d", m.GetMsgId().GetTopicOffset(), i)
		}
	}
	pid = e2.producer(topic, "p", reliable)
	e2.send(topic, pid, 1, "after", nil)
	if m := s.next(t); m.GetMsgId().GetTopicOffset() != 3 || string(m.GetPayload()) != "after" {
		t.Fatalf("got offset %d %q", m.GetMsgId().GetTopicOffset(), m.GetPayload())
	}
}

func TestDataDirKeepsMetadata(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	e := startEnv(t, cfg)
	if _, err := e.nsAdm.CreateNamespace(ctx(t), &apb.NamespaceRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	r, err := e.reg.RegisterSchema(ctx(t), &spb.RegisterSchemaRequest{Subject: "s", SchemaType: "string"})
	if err != nil {
		t.Fatal(err)
	}
	e.producer("/orders/plain", "p", nonReliable)
	e.producer("/orders/rel", "p", reliable)
	e.subscribe("/orders/rel", "sub", "c", pb.ConsumerRequest_Shared)
	setPolicy(t, e, "/orders/rel", "sub", apb.SubscriptionPoisonPolicy_Drop, nil)
	e = restart(t, e)
	for _, topic := range []string{"/orders/plain", "/orders/rel"} {
		if _, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: topic}); err != nil {
			t.Fatalf("lookup %s after restart: %v", topic, err)
		}
	}
	e.producer("/orders/new", "p", nonReliable) // the namespace survived
	got, err := e.reg.GetLatestSchema(ctx(t), &spb.GetLatestSchemaRequest{Subject: "s"})
	if err != nil || got.GetSchemaId() != r.GetSchemaId() {
		t.Fatalf("schema after restart: %v %v", got, err)
	}
	fp, err := e.tAdm.GetSubscriptionFailurePolicy(ctx(t), &apb.GetSubscriptionFailurePolicyRequest{Topic: "/orders/rel", Subscription: "sub"})
	if err != nil || fp.GetFailurePolicy().GetPoisonPolicy() != apb.SubscriptionPoisonPolicy_Drop || fp.GetSubscriptionType() != int32(pb.ConsumerRequest_Shared) {
		t.Fatalf("policy after restart: %v %v", fp, err)
	}
}
