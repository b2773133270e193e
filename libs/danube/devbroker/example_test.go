package devbroker_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// A test starts a broker on a random port with millisecond timers, points
// its client at URL(), and injects faults to exercise recovery paths.
func Example() {
	b, err := devbroker.Start(devbroker.Config{
		AckTimeout:          100 * time.Millisecond,
		RedeliveryBaseDelay: 10 * time.Millisecond,
		RetryTick:           5 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	conn, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The next CreateProducer fails once, as a busy cluster would.
	b.FailNext("/danube.ProducerService/CreateProducer", 1, codes.Unavailable)
	prod := pb.NewProducerServiceClient(conn)
	req := &pb.ProducerRequest{TopicName: "/default/orders", ProducerName: "p1", DispatchStrategy: pb.DispatchStrategy_Reliable}
	_, err = prod.CreateProducer(ctx, req)
	fmt.Println("first attempt:", status.Code(err))
	resp, err := prod.CreateProducer(ctx, req)
	fmt.Println("retry ok:", err == nil && resp.GetProducerId() != 0)

	// Output:
	// first attempt: Unavailable
	// retry ok: true
}
