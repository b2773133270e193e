package sink

import (
	"fmt"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

// TestDispose covers outcome × attempt × elapsed × policy without a broker.
func TestDispose(t *testing.T) {
	three := retry.Policy{Base: time.Millisecond, MaxRetries: 3}
	forever := three.Forever()
	const ackTimeout = 30 * time.Second
	policy := func(r retry.Policy, ex Exhausted, dlq bool) disposal {
		return disposal{retry: r, exhausted: ex, dlq: dlq, ackTimeout: ackTimeout}
	}
	tests := []struct {
		name string
		p    disposal
		f    failure
		want action
	}{
		{"fatal stops", policy(three, ExhaustedAuto, true), failure{class: class.Fatal}, actStop},
		{"disconnected reconnects", policy(three, ExhaustedStop, false), failure{class: class.Disconnected, attempt: 9}, actReconnect},
		{"invalid with a DLQ is dead-lettered", policy(three, ExhaustedNack, true), failure{class: class.InvalidData}, actDeadLetter},
		{"invalid without a DLQ is nacked loudly", policy(three, ExhaustedAuto, false), failure{class: class.InvalidData}, actNackInvalid},
		{"invalid without a DLQ under stop stops", policy(three, ExhaustedStop, false), failure{class: class.InvalidData}, actStop},
		{"retryable within its retries retries", policy(three, ExhaustedNack, false), failure{attempt: 3}, actRetry},
		{"nack once retries ran out", policy(three, ExhaustedNack, true), failure{attempt: 4}, actNack},
		{"stop once retries ran out", policy(three, ExhaustedStop, true), failure{attempt: 4}, actStop},
		{"nack never probes, even retrying forever", policy(forever, ExhaustedNack, false), failure{attempt: 50}, actRetry},
		{"auto asks for evidence once retries ran out", policy(three, ExhaustedAuto, false), failure{attempt: 4}, actProbe},
		{"auto pauses on an outage", policy(three, ExhaustedAuto, true), failure{attempt: 4, evidence: evidenceOutage}, actPause},
		{"auto holds poison without a DLQ", policy(three, ExhaustedAuto, false), failure{attempt: 4, evidence: evidencePoison}, actHold},
		{"auto dead-letters poison with a DLQ", policy(three, ExhaustedAuto, true), failure{attempt: 4, evidence: evidencePoison}, actDeadLetter},
		{"dlq pauses on an outage too", policy(three, ExhaustedDeadLetter, true), failure{attempt: 4, evidence: evidenceOutage}, actPause},
		{"dlq without a topic nacks poison", policy(three, ExhaustedDeadLetter, false), failure{attempt: 4, evidence: evidencePoison}, actNack},
		{"hold holds poison", policy(three, ExhaustedHold, true), failure{attempt: 4, evidence: evidencePoison}, actHold},
		{"retrying forever, auto decides after three attempts", policy(forever, ExhaustedAuto, false), failure{attempt: 3}, actProbe},
		{"retrying forever, auto waits before the third", policy(forever, ExhaustedAuto, false), failure{attempt: 2}, actRetry},
		{"auto decides at half the ack timeout", policy(three, ExhaustedAuto, false), failure{attempt: 1, elapsed: ackTimeout / 2}, actProbe},
		{"auto waits before half the ack timeout", policy(three, ExhaustedAuto, false), failure{attempt: 1, elapsed: ackTimeout/2 - 1}, actRetry},
		{"held records are retried without limit", policy(three, ExhaustedAuto, false), failure{attempt: 99, elapsed: time.Hour, held: true}, actRetry},
		{"held records still stop on fatal", policy(three, ExhaustedAuto, false), failure{class: class.Fatal, held: true}, actStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.f.class == 0 && tt.f.attempt == 0 {
				tt.f.attempt = 1
			}
			if got := tt.p.dispose(tt.f); got != tt.want {
				t.Errorf("dispose(%+v) under %d = %s, want %s", tt.f, tt.p.exhausted, got, tt.want)
			}
		})
	}
}

func (a action) String() string {
	names := [...]string{"retry", "reconnect", "probe", "pause", "hold", "dead-letter", "nack", "nack-invalid", "stop"}
	if int(a) < len(names) {
		return names[a]
	}
	return fmt.Sprintf("action(%d)", a)
}
