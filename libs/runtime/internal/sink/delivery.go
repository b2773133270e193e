package sink

import (
	"context"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// acker is what a sink needs from the consumer that delivered a message (*danube.Consumer).
type acker interface {
	Ack(ctx context.Context, m *danube.Message) error
	Nack(ctx context.Context, m *danube.Message, delay time.Duration, reason string) error
	Closed() bool
}

// delivery is a message and the consumer that must ack it: what flows through a sink's stages.
type delivery struct {
	cons acker
	msg  *danube.Message
}
