package runtime

import (
	"context"
	"maps"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// Dead-letter attributes added to the original ones (the broker's own DLQ uses the same names).
const (
	AttrOriginalTopic        = "x-original-topic"
	AttrOriginalSubscription = "x-original-subscription"
	AttrOriginalOffset       = "x-original-topic-offset"
	AttrFailureReason        = "x-failure-reason"
	AttrConnector            = "x-connector"
)

// deadLetters publishes a sink's unprocessable records to DLQ_TOPIC.
type deadLetters struct {
	prod         *danube.Producer
	topic        string
	subscription string
	connector    string
	nackDelay    time.Duration
	env          *env
	settle       *settler
}

// send publishes the original message with its attributes plus the failure reason, then queues
// its ack. If the publish fails the record is nacked: never a silent drop.
func (dl *deadLetters) send(ctx context.Context, d delivery, cause error) {
	attrs := maps.Clone(d.msg.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 5)
	}
	attrs[AttrOriginalTopic] = d.msg.Topic
	attrs[AttrOriginalSubscription] = dl.subscription
	attrs[AttrOriginalOffset] = strconv.FormatUint(d.msg.Offset, 10)
	attrs[AttrFailureReason] = truncate(cause.Error(), maxReason)
	attrs[AttrConnector] = dl.connector
	msg := danube.ProducerMessage{Payload: d.msg.Payload, Key: d.msg.Key, Attributes: attrs}
	if size := danube.MessageSize(msg); size > danube.MaxMessageSize {
		// The broker would refuse it however often it is sent: say so, and leave it to Danube.
		dl.env.log.Error("cannot dead-letter: the message with its attributes is over the broker's size limit; nacking",
			"message", messageID(d.msg), "bytes", size, "reason", cause)
		dl.settle.nack(d, dl.nackDelay, cause.Error())
		return
	}
	if _, err := dl.prod.Send(ctx, msg); err != nil {
		dl.env.log.Error("dead-letter publish failed; nacking", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
		dl.settle.nack(d, dl.nackDelay, cause.Error())
		return
	}
	dl.env.metrics.Published(1)
	dl.env.log.Warn("record dead-lettered", "topic", d.msg.Topic, "offset", d.msg.Offset, "dlq", dl.topic, "reason", cause)
	dl.settle.deadLettered(d)
}

// maxReason bounds the failure reason a dead letter carries: an error that quotes a whole response
// must not push the message over the broker's size limit.
const maxReason = 4 << 10

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
