package main

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuickstartDeliversEveryEventAndShowsRetries(t *testing.T) {
	var out runtimetest.SyncBuffer
	if err := run(context.Background(), []string{"-events", "12", "-rate", "500", "-flaky", "4"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "Stopped: produced 12, delivered 12, retried 3.") {
		t.Fatalf("output:\n%s", s)
	}
	if n := strings.Count(s, "503 ✗"); n != 3 {
		t.Errorf("%d simulated outages shown, want 3:\n%s", n, s)
	}
	if !strings.Contains(s, `200 ✓ {"amount":13,"customer":"customer-3","id":4,"type":"order.created"}  key=customer-3 offset=3`) {
		t.Errorf("retried event 4 not shown as delivered:\n%s", s)
	}
}

func TestQuickstartStopsCleanlyOnInterrupt(t *testing.T) {
	var out runtimetest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-rate", "200"}, &out) }()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), "200 ✓") {
		select {
		case <-deadline:
			t.Fatalf("nothing delivered:\n%s", out.String())
		case <-time.After(10 * time.Millisecond): // polling the output of a running program
		}
	}
	cancel() // Ctrl-C
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "\nStopped: produced ") {
		t.Fatalf("no summary:\n%s", out.String())
	}
}

// -h prints the flags and is not an error for main (flag.ErrHelp).
func TestQuickstartHelp(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-events", "-rate", "-flaky", "-v"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("usage lacks %s:\n%s", f, out.String())
		}
	}
}
