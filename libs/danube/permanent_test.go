package danube

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
		{fmt.Errorf("wrapped: %w", ErrClosed), false},
		{context.DeadlineExceeded, false},
	} {
		if got := Permanent(c.err); got != c.want {
			t.Errorf("Permanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
