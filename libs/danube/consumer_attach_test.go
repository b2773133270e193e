package danube

import (
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// Subscribe returns only once the message stream is open, so a Close right after it detaches the
// consumer: nothing is dispatched to it afterwards, and messages wait, with no delivery attempt
// spent, for the next consumer. (A consumer the broker never saw streaming would hold them until
// they time out and are blocked.)
func TestSubscribeThenCloseLeavesNothingAttached(t *testing.T) {
	b := fastBroker(t, devbroker.Config{AckTimeout: 100 * time.Millisecond, MaxRedeliveryCount: 1})
	c := newTestClient(t, b.URL(), fastOpts()...)
	const topic = "/default/attach"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "p", Dispatch: Reliable})
	first := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "first", Subscription: "s", Type: Shared})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustSend(t, p, ProducerMessage{Payload: []byte("m")})
	}
	time.Sleep(500 * time.Millisecond) // five ack timeouts: a message held by "first" would be blocked by now
	second := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "second", Subscription: "s", Type: Shared})
	for range 3 {
		if err := second.Ack(testCtx(t), receive(t, second)); err != nil {
			t.Fatal(err)
		}
	}
}
