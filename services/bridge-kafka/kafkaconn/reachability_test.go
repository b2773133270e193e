package kafkaconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
// up again; Check reports the outage, naming the configured brokers (not librdkafka's count, which
// a producer gets wrong: "0/1 brokers are down"), until a metadata request answers.
func TestReachability(t *testing.T) {
	r := &kafkaconn.Reachability{Brokers: "kafka:9092"}
	lost := r.Lost()
	if closed(lost) || r.Err() != nil || r.Health() != nil {
		t.Fatal("the zero value must be up")
	}
	r.Event(kafka.NewError(kafka.ErrAllBrokersDown, "0/1 brokers are down", false))
	if !closed(lost) || !closed(r.Lost()) {
		t.Fatal("Lost must be closed once Kafka is down")
	}
	failing := func(*string, bool, int) (*kafka.Metadata, error) { return nil, errors.New("connection refused") }
	err := r.Check(context.Background(), failing, "t")
	if err == nil || err.Error() != "kafka unreachable: no answer from the brokers kafka:9092" || r.Health() == nil || r.Health().Error() != err.Error() {
		t.Fatalf("Check while down: %v; Health: %v", err, r.Health())
	}
	answering := func(*string, bool, int) (*kafka.Metadata, error) { return &kafka.Metadata{}, nil }
	if err := r.Check(context.Background(), answering, "t"); err != nil {
		t.Fatalf("Check once Kafka answers: %v", err)
	}
	if r.Err() != nil || closed(r.Lost()) {
		t.Fatal("an answer must mark Kafka up with a new Lost channel")
	}
	r.Event(kafka.NewError(kafka.ErrAllBrokersDown, "down again", false))
	r.Up()
	if r.Err() != nil || closed(r.Lost()) {
		t.Fatal("Up must mark Kafka up")
	}
}

// TestReachabilityAuthentication: librdkafka's error code for refused SASL credentials reads as
// such, not as the "all brokers down" librdkafka reports after it, until Kafka answers.
func TestReachabilityAuthentication(t *testing.T) {
	r := &kafkaconn.Reachability{Brokers: "kafka:9092"}
	r.Event(kafka.NewError(kafka.ErrAuthentication, "SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN", false))
	r.Event(kafka.NewError(kafka.ErrAllBrokersDown, "1/1 brokers are down", false))
	err := r.Health()
	if err == nil || !strings.HasPrefix(err.Error(), "kafka authentication failed: check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD: SASL authentication error") ||
		!kafkaconn.Unauthenticated(err) || !closed(r.Lost()) {
		t.Fatalf("Health after a refused authentication: %v", err)
	}
	r.Up()
	if r.Health() != nil {
		t.Fatalf("Health once Kafka answers: %v", r.Health())
	}
	if kafkaconn.Unauthenticated(kafka.NewError(kafka.ErrTransport, "connection refused", false)) {
		t.Fatal("a refused connection is not a refused authentication")
	}
}

// TestHealthNeverWaits: Health answers while a probe waits for Kafka, and reports a topic the
// last probe did not find until one finds it.
func TestHealthNeverWaits(t *testing.T) {
	r := &kafkaconn.Reachability{Brokers: "kafka:9092"}
	release := make(chan struct{})
	exists := false
	calls := make(chan struct{}, 100)
	metadata := func(topic *string, _ bool, _ int) (*kafka.Metadata, error) {
		calls <- struct{}{}
		<-release
		md := &kafka.Metadata{Topics: map[string]kafka.TopicMetadata{*topic: {Topic: *topic}}}
		if !exists {
			md.Topics[*topic] = kafka.TopicMetadata{Topic: *topic, Error: kafka.NewError(kafka.ErrUnknownTopicOrPart, "Broker: Unknown topic or partition", false)}
		}
		return md, nil
	}
	r.Watch(metadata, "orders")
	<-calls // a probe is in progress and does not return until released
	if err := r.Health(); err != nil {
		t.Fatalf("Health before any answer: %v", err)
	}
	release <- struct{}{}
	<-calls // the next probe started: the first one's answer is recorded
	if err := r.Health(); err == nil || err.Error() != `kafka topic "orders" does not exist` {
		t.Fatalf("Health with the topic missing: %v", err)
	}
	exists = true // read by the probe only after release: ordered by the channel
	close(release)
	for deadline := time.Now().Add(time.Minute); r.Health() != nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Health once the topic exists: %v", r.Health())
		}
	}
	r.Close()
}
