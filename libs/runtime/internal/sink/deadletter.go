package sink

import (
	"context"
	"maps"
	"strconv"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/deadletter"
)

// deadLetters publishes a sink's unprocessable records to DLQ_TOPIC.
type deadLetters struct {
	prod         *danube.Producer
	topic        string
	subscription string
	connector    string
	nackDelay    time.Duration
	host         *Host
	settle       *settler
}

// send publishes the original message with its attributes plus the failure reason, then queues
// its ack. If the publish fails the record is nacked: never a silent drop.
func (dl *deadLetters) send(ctx context.Context, d delivery, cause error) {
	attrs := maps.Clone(d.msg.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 5)
	}
	attrs[deadletter.AttrOriginalTopic] = d.msg.Topic
	attrs[deadletter.AttrOriginalSubscription] = dl.subscription
	attrs[deadletter.AttrOriginalOffset] = strconv.FormatUint(d.msg.Offset, 10)
	attrs[deadletter.AttrFailureReason] = deadletter.Cut(cause.Error(), deadletter.MaxReason)
	attrs[deadletter.AttrConnector] = dl.connector
	msg := danube.ProducerMessage{Payload: d.msg.Payload, Key: d.msg.Key, Attributes: attrs}
	if size := danube.MessageSize(msg); size > danube.MaxMessageSize {
		// The broker would refuse it however often it is sent: say so, and leave it to Danube.
		dl.host.Log.Error("cannot dead-letter: the message with its attributes is over the broker's size limit; nacking",
			"message", d.msg.ID(), "bytes", size, "reason", cause)
		dl.settle.nack(d, dl.nackDelay, cause.Error())
		return
	}
	if _, err := dl.prod.Send(ctx, msg); err != nil {
		dl.host.Log.Error("dead-letter publish failed; nacking", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
		dl.settle.nack(d, dl.nackDelay, cause.Error())
		return
	}
	dl.host.Metrics.Published(1)
	dl.host.Log.Warn("record dead-lettered", "topic", d.msg.Topic, "offset", d.msg.Offset, "dlq", dl.topic, "reason", cause)
	dl.settle.deadLettered(d)
}
