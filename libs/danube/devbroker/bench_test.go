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
				benchProduceDeliver(b, ds, producers)
			})
		}
	}
}

func benchProduceDeliver(b *testing.B, ds pb.DispatchStrategy, producers int) {
	br, err := Start(Config{AdminAddr: "-"})
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
	pids := make([]uint64, producers)
	for i := range pids {
		r, err := prod.CreateProducer(ctx, &pb.ProducerRequest{TopicName: topic, ProducerName: fmt.Sprint("p", i), DispatchStrategy: ds})
		if err != nil {
			b.Fatal(err)
		}
		pids[i] = r.GetProducerId()
	}
	sr, err := cons.Subscribe(ctx, &pb.ConsumerRequest{TopicName: topic, ConsumerName: "c", Subscription: "s", SubscriptionType: pb.ConsumerRequest_Exclusive})
	if err != nil {
		b.Fatal(err)
	}
	st, err := cons.ReceiveMessages(ctx, &pb.ReceiveRequest{ConsumerId: sr.GetConsumerId()})
	if err != nil {
		b.Fatal(err)
	}
	total := b.N
	lat := make([]time.Duration, 0, total)
	acks := make(chan *pb.StreamMessage, 1024)
	var ackWG sync.WaitGroup
	for i := 0; i < 4; i++ {
		ackWG.Add(1)
		go func() {
			defer ackWG.Done()
			for m := range acks {
				cons.Ack(ctx, &pb.AckRequest{RequestId: m.GetRequestId(), MsgId: m.GetMsgId(), SubscriptionName: "s"})
			}
		}()
	}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		defer close(acks)
		for len(lat) < total {
			m, err := st.Recv()
			if err != nil {
				return
			}
			sent := int64(binary.LittleEndian.Uint64(m.GetPayload()))
			lat = append(lat, time.Duration(time.Now().UnixNano()-sent))
			if ds == pb.DispatchStrategy_Reliable {
				acks <- m
			}
		}
	}()
	payload := make([]byte, 1024)
	b.SetBytes(1024)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		n := total / producers
		if p < total%producers {
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
		}(pids[p], n)
	}
	wg.Wait()
	if ds == pb.DispatchStrategy_NonReliable {
		// At-most-once: messages dropped on a full consumer channel never arrive.
		select {
		case <-recvDone:
		case <-time.After(500 * time.Millisecond):
			cancel()
			<-recvDone
		}
	} else {
		<-recvDone
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-recvDone
	ackWG.Wait()
	if len(lat) == 0 {
		b.Fatal("nothing delivered")
	}
	slices.Sort(lat)
	p99 := lat[(len(lat)*99)/100]
	if len(lat) > 0 && (len(lat)*99)/100 >= len(lat) {
		p99 = lat[len(lat)-1]
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(100*float64(len(lat))/float64(total), "%delivered")
}
