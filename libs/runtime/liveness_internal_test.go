package runtime

import (
	"context"
	"testing"
	"time"
)

func TestLivenessFailsOnlyWhileACallIsStuck(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLiveness(time.Minute)
	l.now = func() time.Time { return now }
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("idle: %v", err)
	}
	leave := l.Enter()
	now = now.Add(time.Minute)
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	now = now.Add(time.Second)
	want := "a connector call has been running for 1m1s (LIVENESS_TIMEOUT_MS=60000)"
	if err := l.Check(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("stuck: got %v, want %s", err, want)
	}
	leave()
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("after the call: %v", err)
	}
}

func TestLivenessCountsTheOldestOfOverlappingCalls(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLiveness(time.Minute)
	l.now = func() time.Time { return now }
	leaveOld := l.Enter()
	now = now.Add(30 * time.Second)
	leaveNew := l.Enter()
	now = now.Add(31 * time.Second)
	want := "a connector call has been running for 1m1s (LIVENESS_TIMEOUT_MS=60000)"
	if err := l.Check(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("oldest stuck: got %v, want %s", err, want)
	}
	leaveOld() // the newer call (31 s) is within the bound
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("after the oldest left: %v", err)
	}
	leaveNew()
}
