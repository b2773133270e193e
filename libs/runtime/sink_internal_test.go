package runtime

import (
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/sink"
)

// The sink's stages take the runtime's classes and RETRY_EXHAUSTED policies by number.
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
}
