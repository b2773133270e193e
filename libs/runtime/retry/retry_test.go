package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

func TestNext(t *testing.T) {
	ms := time.Millisecond
	exp := retry.Policy{Kind: retry.Exponential, Base: 100 * ms, Max: 1000 * ms, Jitter: -1}
	lin := retry.Policy{Kind: retry.Linear, Base: 100 * ms, Max: 250 * ms, Jitter: -1}
	for i, want := range []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms} {
		if got := exp.Next(i + 1); got != want {
			t.Errorf("exponential attempt %d: %v, want %v", i+1, got, want)
		}
	}
	for i, want := range []time.Duration{100 * ms, 200 * ms, 250 * ms} {
		if got := lin.Next(i + 1); got != want {
			t.Errorf("linear attempt %d: %v, want %v", i+1, got, want)
		}
	}
	if got := (retry.Policy{Base: time.Hour}).Next(1000); got <= 0 {
		t.Errorf("uncapped exponential overflowed: %v", got)
	}
}

// TestJitterSpreadsReplicas: two replicas failing at the same moment with the same settings wait
// different times, each within [d/2, d] of the unjittered wait d.
func TestJitterSpreadsReplicas(t *testing.T) {
	for _, kind := range []retry.Kind{retry.Exponential, retry.Linear} {
		p := retry.Policy{Kind: kind, Base: 100 * time.Millisecond, Max: time.Minute}
		d := p
		d.Jitter = -1
		want := d.Next(3)
		differ := 0
		for range 100 {
			a, b := p.Next(3), p.Next(3)
			for _, w := range []time.Duration{a, b} {
				if w < want/2 || w > want {
					t.Fatalf("%v attempt 3: wait %v outside [%v, %v]", kind, w, want/2, want)
				}
			}
			if a != b {
				differ++
			}
		}
		if differ < 90 {
			t.Fatalf("%v: only %d of 100 pairs of replica waits differ", kind, differ)
		}
	}
}

type hinted struct{ d time.Duration }

func (h hinted) Error() string             { return "429" }
func (h hinted) RetryAfter() time.Duration { return h.d }

func TestDelayHonoursHint(t *testing.T) {
	p := retry.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond, Jitter: -1}
	if got := p.Delay(1, hinted{time.Minute}); got != time.Minute {
		t.Fatalf("got %v", got)
	}
	if got := p.Delay(1, hinted{time.Microsecond}); got != time.Millisecond {
		t.Fatalf("got %v", got)
	}
}

func TestKindText(t *testing.T) {
	var k retry.Kind
	if err := k.UnmarshalText([]byte("Linear")); err != nil || k != retry.Linear || k.String() != "linear" {
		t.Fatalf("%v %v", k, err)
	}
	if err := k.UnmarshalText([]byte("fib")); err == nil || err.Error() != `want "linear" or "exponential"` {
		t.Fatalf("%v", err)
	}
	if s := retry.Exponential.String() + " " + retry.Kind(7).String(); s != "exponential Kind(7)" {
		t.Fatalf("String() = %q", s)
	}
}

func TestDo(t *testing.T) {
	p := retry.Policy{Kind: retry.Linear, Base: time.Microsecond, MaxRetries: 2}
	boom := errors.New("boom")
	var calls, retries int
	err := p.Do(context.Background(), func(context.Context) error { calls++; return boom }, nil,
		func(int, time.Duration, error) { retries++ })
	if !errors.Is(err, boom) || calls != 3 || retries != 2 {
		t.Fatalf("err=%v calls=%d retries=%d", err, calls, retries)
	}
	calls = 0
	err = p.Do(context.Background(), func(context.Context) error { calls++; return boom },
		func(error) bool { return false }, nil)
	if calls != 1 || !errors.Is(err, boom) {
		t.Fatalf("non-retryable retried: %d", calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = retry.Policy{Base: time.Hour, MaxRetries: -1}.Do(ctx, func(context.Context) error { return boom }, nil, nil)
	if !errors.Is(err, boom) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
