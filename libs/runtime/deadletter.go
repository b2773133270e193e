package runtime

import "github.com/danube-messaging/danube-connect-go/libs/runtime/internal/deadletter"

// Dead-letter attributes added to the original ones (the broker's own DLQ uses the same names).
const (
	AttrOriginalTopic        = deadletter.AttrOriginalTopic
	AttrOriginalSubscription = deadletter.AttrOriginalSubscription
	AttrOriginalOffset       = deadletter.AttrOriginalOffset
	AttrFailureReason        = deadletter.AttrFailureReason
	AttrConnector            = deadletter.AttrConnector
)
