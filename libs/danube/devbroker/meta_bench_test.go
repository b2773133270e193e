package devbroker

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// BenchmarkCreateSubscriptions measures persisted metadata cost: one
// iteration creates 300 subscriptions with 1 KiB names on a reliable topic of
// a broker with a data dir, through gRPC Subscribe.
func BenchmarkCreateSubscriptions(b *testing.B) {
	const subs = 300
	long := strings.Repeat("s", 1024)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		br, err := Start(Config{AdminAddr: "-", DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		conn, err := grpc.NewClient(br.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		const topic = "/default/many-subs"
		if _, err := pb.NewProducerServiceClient(conn).CreateProducer(ctx, &pb.ProducerRequest{TopicName: topic, ProducerName: "p",
			DispatchStrategy: pb.DispatchStrategy_Reliable}); err != nil {
			b.Fatal(err)
		}
		cons := pb.NewConsumerServiceClient(conn)
		b.StartTimer()
		for s := 0; s < subs; s++ {
			name := fmt.Sprintf("%s-%d", long, s)
			if _, err := cons.Subscribe(ctx, &pb.ConsumerRequest{TopicName: topic, ConsumerName: "c", Subscription: name,
				SubscriptionType: pb.ConsumerRequest_Shared}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		conn.Close()
		br.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*subs), "µs/subscription")
}
