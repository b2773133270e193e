package runtime

import (
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/sink"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/source"
)

// The engines take the runtime's classes, RETRY_EXHAUSTED policies and PUBLISH_ORDER values by
// number.
func TestEngineEnumsMatch(t *testing.T) {
	classes := map[Class]class.Class{
		ClassRetryable: class.Retryable, ClassInvalidData: class.InvalidData, ClassFatal: class.Fatal, ClassDisconnected: class.Disconnected,
	}
	for c, want := range classes {
		if got := class.Class(c); got != want {
			t.Errorf("class %s is the engine's %s, want %s", c, got, want)
		}
	}
	policies := map[RetryExhausted]sink.Exhausted{
		AutoOnExhausted: sink.ExhaustedAuto, NackOnExhausted: sink.ExhaustedNack, StopOnExhausted: sink.ExhaustedStop,
		DeadLetterOnExhausted: sink.ExhaustedDeadLetter, HoldOnExhausted: sink.ExhaustedHold,
	}
	for p, want := range policies {
		if got := sink.Exhausted(p); got != want {
			t.Errorf("RETRY_EXHAUSTED=%s is the engine's %d, want %d", p, got, want)
		}
	}
	orders := map[PublishOrder]source.Order{OrderByKey: source.OrderKey, OrderStrict: source.OrderStrict, OrderNone: source.OrderNone}
	for o, want := range orders {
		if got := source.Order(o); got != want {
			t.Errorf("PUBLISH_ORDER=%s is the engine's %d, want %d", o, got, want)
		}
	}
}
