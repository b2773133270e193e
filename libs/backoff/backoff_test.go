package backoff_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
)

const ms = time.Millisecond

func TestNext(t *testing.T) {
	huge := time.Duration(math.MaxInt64 / 2)
	for _, tc := range []struct {
		name string
		b    backoff.Backoff
		want []time.Duration // attempts 1, 2, …
	}{
		{"exponential", backoff.Backoff{Initial: 10 * ms, Max: 100 * ms}, []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 100 * ms, 100 * ms}},
		{"multiplier", backoff.Backoff{Initial: 10 * ms, Max: time.Second, Multiplier: 3}, []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms}},
		{"linear", backoff.Backoff{Initial: 100 * ms, Max: 250 * ms, Linear: true}, []time.Duration{100 * ms, 200 * ms, 250 * ms, 250 * ms}},
		{"defaults", backoff.Backoff{}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5 * time.Second}},
		{"cap below initial", backoff.Backoff{Initial: 100 * ms, Max: 50 * ms}, []time.Duration{100 * ms, 100 * ms}},
		{"linear cap below initial", backoff.Backoff{Initial: 100 * ms, Max: 50 * ms, Linear: true}, []time.Duration{100 * ms, 100 * ms}},
		{"uncapped", backoff.Backoff{Initial: time.Hour, Max: huge}, []time.Duration{time.Hour, 2 * time.Hour}},
	} {
		tc.b.Jitter = -1
		for i, want := range tc.want {
			if got := tc.b.Next(i + 1); got != want {
				t.Errorf("%s: Next(%d) = %v, want %v", tc.name, i+1, got, want)
			}
		}
	}
}

// Attempts below 1 count as the first, and huge ones neither overflow nor pass the cap.
func TestNextBounds(t *testing.T) {
	huge := time.Duration(math.MaxInt64 / 2)
	for _, b := range []backoff.Backoff{
		{Initial: time.Hour, Max: huge, Jitter: -1},
		{Initial: time.Hour, Max: huge, Linear: true, Jitter: -1},
		{Initial: ms, Max: 100 * ms, Jitter: -1},
	} {
		if got := b.Next(0); got != b.Initial {
			t.Errorf("%+v: Next(0) = %v, want %v", b, got, b.Initial)
		}
		if got := b.Next(math.MaxInt); got <= 0 || got > b.Max {
			t.Errorf("%+v: Next(MaxInt) = %v, want in (0, %v]", b, got, b.Max)
		}
	}
}

// Two replicas failing at the same moment with the same settings wait different times, each within
// [d/2, d] of the unjittered wait d (the default jitter), or [d/4·3, d] with Jitter 0.25.
func TestJitterSpreadsReplicas(t *testing.T) {
	for _, tc := range []struct {
		b   backoff.Backoff
		low float64
	}{
		{backoff.Backoff{Initial: 100 * ms, Max: time.Minute}, 0.5},
		{backoff.Backoff{Initial: 100 * ms, Max: time.Minute, Linear: true}, 0.5},
		{backoff.Backoff{Initial: 100 * ms, Max: time.Minute, Jitter: 0.25}, 0.75},
		{backoff.Backoff{Initial: 100 * ms, Max: time.Minute, Jitter: 7}, 0}, // clamped to 1
	} {
		exact := tc.b
		exact.Jitter = -1
		full := exact.Next(3)
		differ := 0
		for range 100 {
			a, b := tc.b.Next(3), tc.b.Next(3)
			for _, w := range []time.Duration{a, b} {
				if w < time.Duration(float64(full)*tc.low) || w > full {
					t.Fatalf("%+v: wait %v outside [%v·%v, %v]", tc.b, w, full, tc.low, full)
				}
			}
			if a != b {
				differ++
			}
		}
		if differ < 90 {
			t.Fatalf("%+v: only %d of 100 pairs of replica waits differ", tc.b, differ)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := backoff.Sleep(context.Background(), ms); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	if err := backoff.Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, d := range []time.Duration{-1, 0, time.Hour} {
		if err := backoff.Sleep(ctx, d); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep(%v) on an ended context = %v, want context.Canceled", d, err)
		}
	}
}

// A stop during a long wait ends it.
func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- backoff.Sleep(ctx, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}
