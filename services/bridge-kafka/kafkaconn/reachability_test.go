package kafkaconn_test

import (
	"context"
	"errors"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestReachability: Lost is closed while Kafka is marked down and a new, open channel once it is
// up again; Check reports the outage until a metadata request answers, which marks it up.
func TestReachability(t *testing.T) {
	var r kafkaconn.Reachability
	lost := r.Lost()
	if closed(lost) || r.Err() != nil {
		t.Fatal("the zero value must be up")
	}
	r.Down(kafka.NewError(kafka.ErrAllBrokersDown, "1/1 brokers are down", false))
	if !closed(lost) || !closed(r.Lost()) {
		t.Fatal("Lost must be closed once Kafka is down")
	}
	failing := func(*string, bool, int) (*kafka.Metadata, error) { return nil, errors.New("connection refused") }
	err := r.Check(context.Background(), failing, "t")
	if err == nil || err.Error() != "kafka unreachable: 1/1 brokers are down" {
		t.Fatalf("Check while down: %v", err)
	}
	answering := func(*string, bool, int) (*kafka.Metadata, error) { return &kafka.Metadata{}, nil }
	if err := r.Check(context.Background(), answering, "t"); err != nil {
		t.Fatalf("Check once Kafka answers: %v", err)
	}
	if r.Err() != nil || closed(r.Lost()) {
		t.Fatal("an answer must mark Kafka up with a new Lost channel")
	}
	r.Down(kafka.NewError(kafka.ErrAllBrokersDown, "down again", false))
	r.Up()
	if r.Err() != nil || closed(r.Lost()) {
		t.Fatal("Up must mark Kafka up")
	}
}
