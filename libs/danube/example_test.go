package danube_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// A reliable producer and a consumer on an in-process development broker.
func Example() {
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-"})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	client, err := danube.NewClient(broker.URL()) // e.g. "http://127.0.0.1:6650"
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	producer, err := client.NewProducer(ctx, danube.ProducerOptions{
		Topic:    "/default/orders",
		Name:     "orders-producer",
		Dispatch: danube.Reliable,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()

	// Subscribe before producing: a new subscription starts at the topic's tail.
	consumer, err := client.Subscribe(ctx, danube.ConsumerOptions{
		Topic:        "/default/orders",
		Name:         "orders-sink",
		Subscription: "sink",
		Type:         danube.Shared,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close()

	for _, order := range []string{"order-1", "order-2"} {
		if _, err := producer.Send(ctx, danube.ProducerMessage{
			Payload:    []byte(order),
			Key:        "customer-42",
			Attributes: map[string]string{"source": "example"},
		}); err != nil {
			log.Fatal(err)
		}
	}

	for range 2 {
		msg := <-consumer.Messages()
		fmt.Printf("%s offset=%d key=%s source=%s payload=%s\n", msg.Topic, msg.Offset, msg.Key, msg.Attributes["source"], msg.Payload)
		if err := consumer.Ack(ctx, msg); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// /default/orders offset=0 key=customer-42 source=example payload=order-1
	// /default/orders offset=1 key=customer-42 source=example payload=order-2
}

// Partitioned producers route keyed messages with FNV-1a 64, as the official
// clients do, so a key always lands on the same partition.
func ExamplePartitionForKey() {
	fmt.Println(danube.PartitionForKey("customer-42", 4))
	// Output: 2
}
