package runtime

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
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

func TestPermanentPublishErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.InvalidArgument, "bad"), true},
		{fmt.Errorf("danube: send: %w", status.Error(codes.PermissionDenied, "schema")), true},
		{status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (5000000 vs. 4194304)"), true},
		{status.Error(codes.ResourceExhausted, "broker busy"), false},
		{status.Error(codes.Unavailable, "down"), false},
		{fmt.Errorf("wrapped: %w", danube.ErrClosed), false},
		{context.DeadlineExceeded, false},
	} {
		if got := permanent(c.err); got != c.want {
			t.Errorf("permanent(%v) = %v, want %v", c.err, got, c.want)
		}
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
