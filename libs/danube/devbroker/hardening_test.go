package devbroker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// TestTopicNameLimits checks that every entry point rejects names with an
// empty part or a WAL file name over 255 bytes with a short InvalidArgument.
func TestTopicNameLimits(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	e := startEnv(t, cfg)
	// "%2Fdefault%2F" + topic + ".log" is the file name: 238 ASCII bytes fit.
	longest := "/default/" + strings.Repeat("a", 238)
	names := []struct {
		name, topic, msg string
	}{
		{"empty topic", "/default/", "empty namespace or topic part"},
		{"empty namespace", "//t", "empty namespace or topic part"},
		{"ascii one byte too long", longest + "a", "its log file name would take 256 bytes, at most 255"},
		{"escaped unicode", "/default/" + strings.Repeat("é", 50), "its log file name would take 317 bytes"},
		{"huge", "/default/" + strings.Repeat("x", 2<<20), "is too long"},
	}
	calls := []struct {
		name string
		call func(topic string) error
	}{
		{"CreateProducer", func(topic string) error {
			_, err := e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: topic, ProducerName: "p", DispatchStrategy: reliable})
			return err
		}},
		{"Subscribe", func(topic string) error {
			_, err := e.cons.Subscribe(ctx(t), &pb.ConsumerRequest{TopicName: topic, ConsumerName: "c", Subscription: "s"})
			return err
		}},
		{"TopicLookup", func(topic string) error {
			_, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: topic})
			return err
		}},
		{"TopicPartitions", func(topic string) error {
			_, err := e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{Topic: topic})
			return err
		}},
		{"admin CreateTopic", func(topic string) error {
			_, err := e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: topic, DispatchStrategy: apb.DispatchStrategy_Reliable})
			return err
		}},
		{"admin CreatePartitionedTopic", func(topic string) error {
			_, err := e.tAdm.CreatePartitionedTopic(ctx(t), &apb.PartitionedTopicRequest{BaseName: topic, Partitions: 2})
			return err
		}},
	}
	for _, n := range names {
		for _, c := range calls {
			t.Run(n.name+"/"+c.name, func(t *testing.T) {
				st, _ := status.FromError(c.call(n.topic))
				want := codes.InvalidArgument
				if strings.HasPrefix(c.name, "admin") {
					want = codes.NotFound // every admin create failure, as on v0.15.1
				}
				if st.Code() != want || !strings.Contains(st.Message(), n.msg) || len(st.Message()) > 300 {
					t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), want, n.msg)
				}
			})
		}
	}
	// The longest name works end to end, log file included; its partitions
	// would not fit, so a partitioned topic of that name is refused whole.
	pid := e.producer(longest, "p", reliable)
	s := e.receive(e.subscribe(longest, "sub", "c", pb.ConsumerRequest_Exclusive))
	e.send(longest, pid, 1, "m", nil)
	e.ack(s.next(t), "sub")
	base := "/default/" + strings.Repeat("b", 232) // "-part-0" fits, "-part-10" does not
	_, err := e.tAdm.CreatePartitionedTopic(ctx(t), &apb.PartitionedTopicRequest{BaseName: base, Partitions: 11})
	wantCode(t, err, codes.NotFound, "")
	if r, err := e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{Topic: base}); err != nil || len(r.GetPartitions()) != 0 {
		t.Fatalf("partitions after a refused create: %v %v", r.GetPartitions(), err)
	}
}

// copyDir copies a data dir as a crash would leave it: every file as the
// running broker last wrote it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func listSubs(t *testing.T, e *env, topic string) []string {
	t.Helper()
	r, err := e.tAdm.ListSubscriptions(ctx(t), &apb.TopicRequest{Name: topic})
	if err != nil {
		t.Fatalf("ListSubscriptions(%s): %v", topic, err)
	}
	return r.GetSubscriptions()
}

// TestMetadataJournalSurvivesCrash copies the data dir of a running broker,
// so only journal records exist for the changes, tears the journal's tail,
// and starts a broker on the copy.
func TestMetadataJournalSurvivesCrash(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	e := startEnv(t, cfg)
	if _, err := e.nsAdm.CreateNamespace(ctx(t), &apb.NamespaceRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	pid := e.producer("/orders/rel", "p", reliable)
	for _, sub := range []string{"a", "b"} {
		e.subscribe("/orders/rel", sub, "c", pb.ConsumerRequest_Shared)
	}
	e.b.ForceClose(e.subscribe("/orders/rel", "gone", "c", pb.ConsumerRequest_Shared)) // unsubscribe needs it inactive
	setPolicy(t, e, "/orders/rel", "a", apb.SubscriptionPoisonPolicy_Drop, nil)
	if _, err := e.tAdm.Unsubscribe(ctx(t), &apb.SubscriptionRequest{Topic: "/orders/rel", Subscription: "gone"}); err != nil {
		t.Fatal(err)
	}
	e.send("/orders/rel", pid, 1, "kept", nil)
	crashed := copyDir(t, cfg.DataDir)
	// A record torn by the crash is cut, not fatal.
	f, err := os.OpenFile(filepath.Join(crashed, "meta.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{9, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 1, 2, 3, 4, '{'}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	cfg2 := fastConfig()
	cfg2.DataDir = crashed
	e2 := startEnv(t, cfg2)
	if got := listSubs(t, e2, "/orders/rel"); strings.Join(got, ",") != "a,b" {
		t.Fatalf("subscriptions after crash %v", got)
	}
	fp, err := e2.tAdm.GetSubscriptionFailurePolicy(ctx(t), &apb.GetSubscriptionFailurePolicyRequest{Topic: "/orders/rel", Subscription: "a"})
	if err != nil || fp.GetFailurePolicy().GetPoisonPolicy() != apb.SubscriptionPoisonPolicy_Drop {
		t.Fatalf("policy after crash: %v %v", fp, err)
	}
	// Opening compacted the journal into the snapshot.
	if fi, err := os.Stat(filepath.Join(crashed, "meta.log")); err != nil || fi.Size() != 0 {
		t.Fatalf("journal after open: %v %v", fi, err)
	}
	m := e2.receive(e2.subscribe("/orders/rel", "b", "c", pb.ConsumerRequest_Shared)).next(t)
	if string(m.GetPayload()) != "kept" {
		t.Fatalf("message after crash %q", m.GetPayload())
	}
}

// TestSnapshotSkipsJournaledRecords replays a crash between writing a
// snapshot and emptying the journal: the old records must not be applied
// again over the newer snapshot.
func TestSnapshotSkipsJournaledRecords(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := dialEnv(t, b)
	e.producer("/default/t", "p", reliable)
	cid := e.subscribe("/default/t", "x", "c", pb.ConsumerRequest_Shared)
	old, err := os.ReadFile(filepath.Join(cfg.DataDir, "meta.log")) // holds "x created"
	if err != nil || len(old) == 0 {
		t.Fatalf("journal %d bytes, %v", len(old), err)
	}
	b.ForceClose(cid)
	if _, err := e.tAdm.Unsubscribe(ctx(t), &apb.SubscriptionRequest{Topic: "/default/t", Subscription: "x"}); err != nil {
		t.Fatal(err)
	}
	b.Close() // snapshot without x, journal emptied
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "meta.log"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	e2 := startEnv(t, cfg)
	if got := listSubs(t, e2, "/default/t"); len(got) != 0 {
		t.Fatalf("subscriptions %v: an old journal record was applied twice", got)
	}
}

// TestMetadataCompactsWhileRunning grows the journal past the compaction
// threshold and checks the compacted state survives a crash.
func TestMetadataCompactsWhileRunning(t *testing.T) {
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	e := startEnv(t, cfg)
	e.producer("/default/t", "p", reliable)
	long := strings.Repeat("n", 16<<10)
	const subs = 80 // 80 × 16 KiB > minCompactBytes
	for i := 0; i < subs; i++ {
		e.subscribe("/default/t", long+string(rune('A'+i)), "c", pb.ConsumerRequest_Shared)
	}
	fi, err := os.Stat(filepath.Join(cfg.DataDir, "meta.log"))
	// Each new subscription journals its creation and its policy: 2 × 16 KiB each.
	if err != nil || fi.Size() >= 2*subs*int64(len(long)) {
		t.Fatalf("journal not compacted: %v %v", fi, err)
	}
	cfg2 := fastConfig()
	cfg2.DataDir = copyDir(t, cfg.DataDir)
	if got := listSubs(t, startEnv(t, cfg2), "/default/t"); len(got) != subs {
		t.Fatalf("%d subscriptions after crash, want %d", len(got), subs)
	}
}

// TestFsyncErrorsSurface makes every fsync of the data dir fail: changes
// that cannot be made durable are refused, and nothing half-made remains.
func TestFsyncErrorsSurface(t *testing.T) {
	var fail atomic.Bool
	cfg := fastConfig()
	cfg.DataDir = t.TempDir()
	cfg.hooks = &hooks{fsync: func(f *os.File) error {
		if fail.Load() {
			return errors.New("injected fsync failure")
		}
		return f.Sync()
	}}
	e := startEnv(t, cfg)
	pid := e.producer("/default/t", "p", reliable)
	fail.Store(true)
	_, err := e.prod.SendMessage(ctx(t), &pb.StreamMessage{RequestId: 1, Payload: []byte("m"),
		MsgId: &pb.MsgID{ProducerId: pid, TopicName: "/default/t"}})
	wantCode(t, err, codes.PermissionDenied, "Unable to publish the message: wal: sync: injected fsync failure")
	_, err = e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: "/default/plain"})
	wantCode(t, err, codes.NotFound, "Unable to create the topic /default/plain due to devbroker: persisting metadata: wal: sync: injected fsync failure")
	_, err = e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: "/default/rel", DispatchStrategy: apb.DispatchStrategy_Reliable})
	wantCode(t, err, codes.NotFound, "")
	_, err = e.cons.Subscribe(ctx(t), &pb.ConsumerRequest{TopicName: "/default/t", ConsumerName: "c", Subscription: "s"})
	wantCode(t, err, codes.Internal, "devbroker: persisting metadata: wal: sync: injected fsync failure")
	_, err = e.nsAdm.CreateNamespace(ctx(t), &apb.NamespaceRequest{Name: "ns"})
	wantCode(t, err, codes.NotFound, "Unable to create the namespace ns due to devbroker: persisting metadata: wal: sync: injected fsync failure")
	fail.Store(false)
	for _, topic := range []string{"/default/plain", "/default/rel"} {
		_, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: topic})
		wantCode(t, err, codes.NotFound, "")
	}
	if got := listSubs(t, e, "/default/t"); len(got) != 0 {
		t.Fatalf("subscriptions %v", got)
	}
	if _, err := e.nsAdm.CreateNamespace(ctx(t), &apb.NamespaceRequest{Name: "ns"}); err != nil {
		t.Fatalf("CreateNamespace once the disk recovered: %v", err)
	}
}
