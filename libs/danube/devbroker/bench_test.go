package devbroker

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// BenchmarkProduceDeliver measures produce→deliver through loopback gRPC with
// 1 KiB messages: msgs/s delivered and p99 latency from SendMessage start to
// the consumer's receipt. Reliable runs ack every message (window 10).
func BenchmarkProduceDeliver(b *testing.B) {
	for _, ds := range []pb.DispatchStrategy{pb.DispatchStrategy_NonReliable, pb.DispatchStrategy_Reliable} {
		for _, producers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/producers=%d", ds, producers), func(b *testing.B) {
				benchProduceDeliver(b, benchParams{ds: ds, producers: producers, consumers: 1})
			})
		}
	}
}

// BenchmarkProduceDeliverWindow measures the reliable path with 4 producers at
// growing dispatch windows, with one Exclusive consumer and with four
// consumers on a Shared subscription. Consumers ack each message only after
// receiving window/(2·consumers) more, as a batching client does, so the
// window holds about half its capacity unsettled and the broker's window
// bookkeeping is exercised at its size.
func BenchmarkProduceDeliverWindow(b *testing.B) {
	for _, window := range []int{10, 100, 1000} {
		for _, consumers := range []int{1, 4} {
			b.Run(fmt.Sprintf("window=%d/consumers=%d", window, consumers), func(b *testing.B) {
				benchProduceDeliver(b, benchParams{ds: pb.DispatchStrategy_Reliable, producers: 4, consumers: consumers,
					window: window, ackLag: window / (2 * consumers)})
			})
		}
		// KeyShared keeps one message in flight per routing key (here the 4
		// producer names), so consumers ack at once and the rest of the
		// window queues behind the keys.
		b.Run(fmt.Sprintf("window=%d/consumers=4-keyshared", window), func(b *testing.B) {
			benchProduceDeliver(b, benchParams{ds: pb.DispatchStrategy_Reliable, producers: 4, consumers: 4,
				window: window, keyShared: true})
		})
	}
}

// BenchmarkProduceDeliverDataDir is the reliable path with a data dir, where
// SendMessage answers only after its record is fsynced: concurrent producers
// share fsyncs.
func BenchmarkProduceDeliverDataDir(b *testing.B) {
	for _, producers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			benchProduceDeliver(b, benchParams{ds: pb.DispatchStrategy_Reliable, producers: producers, consumers: 1, dataDir: true})
		})
	}
}

type benchParams struct {
	dataDir   bool // persist to a temporary data dir
	ds        pb.DispatchStrategy
	producers int
	consumers int  // 1: Exclusive; more: Shared
	keyShared bool // KeyShared instead of Shared
	window    int  // MaxUnackedMessages; 0 = default (10)
	ackLag    int  // a consumer acks a message once it has received ackLag later ones
}

func benchProduceDeliver(b *testing.B, p benchParams) {
	b.ReportAllocs()
	cfg := Config{AdminAddr: "-", MaxUnackedMessages: p.window}
	if p.dataDir {
		cfg.DataDir = b.TempDir()
	}
	br, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	conn, err := grpc.NewClient(br.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prod, cons := pb.NewProducerServiceClient(conn), pb.NewConsumerServiceClient(conn)
	const topic = "/default/bench"
	pids := make([]uint64, p.producers)
	for i := range pids {
		r, err := prod.CreateProducer(ctx, &pb.ProducerRequest{TopicName: topic, ProducerName: fmt.Sprint("p", i), DispatchStrategy: p.ds})
		if err != nil {
			b.Fatal(err)
		}
		pids[i] = r.GetProducerId()
	}
	subType := pb.ConsumerRequest_Exclusive
	switch {
	case p.keyShared:
		subType = pb.ConsumerRequest_KeyShared
	case p.consumers > 1:
		subType = pb.ConsumerRequest_Shared
	}
	streams := make([]grpc.ServerStreamingClient[pb.StreamMessage], p.consumers)
	for i := range streams {
		sr, err := cons.Subscribe(ctx, &pb.ConsumerRequest{TopicName: topic, ConsumerName: fmt.Sprint("c", i), Subscription: "s", SubscriptionType: subType})
		if err != nil {
			b.Fatal(err)
		}
		if streams[i], err = cons.ReceiveMessages(ctx, &pb.ReceiveRequest{ConsumerId: sr.GetConsumerId()}); err != nil {
			b.Fatal(err)
		}
	}
	total := b.N
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, total)
		recvDone = make(chan struct{})
		doneOnce sync.Once
	)
	acks := make(chan *pb.StreamMessage, 1024)
	var ackWG sync.WaitGroup
	for i := 0; i < 4; i++ {
		ackWG.Add(1)
		go func() {
			defer ackWG.Done()
			for m := range acks {
				_, _ = cons.Ack(ctx, // best effort: the benchmark measures delivery, unacked messages only get redelivered
					&pb.AckRequest{RequestId: m.GetRequestId(), MsgId: m.GetMsgId(), SubscriptionName: "s"})
			}
		}()
	}
	var recvWG sync.WaitGroup
	for _, st := range streams {
		recvWG.Add(1)
		go func() {
			defer recvWG.Done()
			var pending []*pb.StreamMessage
			for {
				m, err := st.Recv()
				if err != nil {
					return
				}
				sent := int64(binary.LittleEndian.Uint64(m.GetPayload()))
				d := time.Duration(time.Now().UnixNano() - sent)
				mu.Lock()
				lat = append(lat, d)
				n := len(lat)
				mu.Unlock()
				if n >= total {
					doneOnce.Do(func() { close(recvDone) })
				}
				if p.ds != pb.DispatchStrategy_Reliable {
					continue
				}
				pending = append(pending, m)
				if len(pending) <= p.ackLag {
					continue
				}
				select {
				case acks <- pending[0]:
					pending = pending[1:]
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	payload := make([]byte, 1024)
	b.SetBytes(1024)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < p.producers; i++ {
		n := total / p.producers
		if i < total%p.producers {
			n++
		}
		wg.Add(1)
		go func(pid uint64, n int) {
			defer wg.Done()
			buf := append([]byte(nil), payload...)
			for i := 0; i < n; i++ {
				binary.LittleEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
				if _, err := prod.SendMessage(ctx, &pb.StreamMessage{RequestId: uint64(i), Payload: buf,
					MsgId: &pb.MsgID{ProducerId: pid, TopicName: topic}}); err != nil {
					b.Error(err)
					return
				}
			}
		}(pids[i], n)
	}
	wg.Wait()
	if p.ds == pb.DispatchStrategy_NonReliable {
		// At-most-once: messages dropped on a full consumer channel never arrive.
		select {
		case <-recvDone:
		case <-time.After(500 * time.Millisecond):
		}
	} else {
		<-recvDone
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	recvWG.Wait()
	close(acks)
	ackWG.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("nothing delivered")
	}
	slices.Sort(lat)
	p99 := lat[min((len(lat)*99)/100, len(lat)-1)]
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(100*float64(min(len(lat), total))/float64(total), "%delivered")
}
