package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strconv"
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

// The iot scenario: every reading the devices published over MQTT is in Danube and reached the
// receiver, keyed by its MQTT topic.
func TestQuickstartIoTDeliversEveryReading(t *testing.T) {
	const n = 30
	var out runtimetest.SyncBuffer
	if err := run(context.Background(), []string{"iot", "-events", strconv.Itoa(n), "-rate", "300", "-devices", "3"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	if want := fmt.Sprintf("Stopped: published %d, in Danube %d, delivered %d.", n, n, n); !strings.Contains(s, want) {
		t.Fatalf("no %q in the output:\n%s", want, s)
	}
	for seq := 1; seq <= n; seq++ {
		re := regexp.MustCompile(`200 ✓ \{"device":"(sensor-\d)","humidity":\d+,"seq":` + strconv.Itoa(seq) + `,"temperature":[\d.]+\}  key=devices/(sensor-\d)/readings `)
		m := re.FindStringSubmatch(s)
		if m == nil || m[1] != m[2] {
			t.Errorf("reading %d not delivered keyed by its device's MQTT topic:\n%s", seq, s)
		}
	}
}

// The webhook-in scenario: every event a sender got 2xx for is in Danube and reached the
// receiver, keyed by the route's json:customer key, each once (the senders' retries carry the same
// webhook-id).
func TestQuickstartWebhookInDeliversEveryPostedEvent(t *testing.T) {
	const n = 30
	var out runtimetest.SyncBuffer
	if err := run(context.Background(), []string{"webhook-in", "-events", strconv.Itoa(n), "-rate", "300", "-senders", "4"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	if want := fmt.Sprintf("Stopped: posted %d, in Danube %d, delivered %d.", n, n, n); !strings.Contains(s, want) {
		t.Fatalf("no %q in the output:\n%s", want, s)
	}
	for id := 1; id <= n; id++ {
		customer, body := orderEvent(id)
		if want := fmt.Sprintf("200 ✓ %s  key=%s offset=", body, customer); strings.Count(s, want) != 1 {
			t.Errorf("event %d not delivered once keyed by its customer: want %q once in:\n%s", id, want, s)
		}
	}
}

// The kafka scenario: every record produced to Kafka went through the import, Danube and the
// export into the other Kafka topic.
func TestQuickstartKafkaExportsEveryRecord(t *testing.T) {
	const n = 20
	var out runtimetest.SyncBuffer
	if err := run(context.Background(), []string{"kafka", "-events", strconv.Itoa(n), "-rate", "200"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	if want := fmt.Sprintf("Stopped: produced %d, in Danube %d, exported %d.", n, n, n); !strings.Contains(s, want) {
		t.Fatalf("no %q in the output:\n%s", want, s)
	}
	for id := 1; id <= n; id++ {
		customer := fmt.Sprintf("customer-%d", id%5)
		want := fmt.Sprintf(`{"amount":%d,"customer":"%s","id":%d}  key=%s`, 10+id%90, customer, id, customer)
		if !strings.Contains(s, "✓ "+kafkaOut+"/") || !strings.Contains(s, want) {
			t.Errorf("order %d not read back from %s with its key: want %s in:\n%s", id, kafkaOut, want, s)
		}
	}
}

// totals reads the last line, "Stopped: label n, label n.", as label → n.
func totals(t *testing.T, out string) map[string]int {
	t.Helper()
	_, line, ok := strings.Cut(out, "\nStopped: ")
	line, _, _ = strings.Cut(line, ".\n")
	if !ok {
		t.Fatalf("no summary:\n%s", out)
	}
	m := map[string]int{}
	for _, f := range strings.Split(line, ", ") {
		i := strings.LastIndexByte(f, ' ')
		n, err := strconv.Atoi(f[i+1:])
		if i < 0 || err != nil {
			t.Fatalf("summary %q: %q is not \"label n\"", line, f)
		}
		m[f[:i]] = n
	}
	return m
}

// Ctrl-C in the middle of a run: every scenario stops without an error, after the messages
// produced so far were delivered.
func TestQuickstartStopsCleanlyOnInterrupt(t *testing.T) {
	for _, sc := range []struct{ name, shown, produced, delivered string }{
		{"webhook", "200 ✓", "produced", "delivered"},
		{"iot", "200 ✓", "published", "delivered"},
		{"webhook-in", "200 ✓", "posted", "delivered"},
		{"kafka", "✓ " + kafkaOut, "produced", "exported"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			var out runtimetest.SyncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{sc.name, "-rate", "100"}, &out) }()
			deadline := time.After(60 * time.Second)
			for !strings.Contains(out.String(), sc.shown) {
				select {
				case err := <-done:
					t.Fatalf("run stopped before Ctrl-C: %v\n%s", err, out.String())
				case <-deadline:
					cancel()
					t.Fatalf("nothing delivered (run ended with %v):\n%s", <-done, out.String())
				case <-time.After(10 * time.Millisecond): // polling the output of a running program
				}
			}
			cancel() // Ctrl-C
			if err := <-done; err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			n := totals(t, out.String())
			produced, delivered := n[sc.produced], n[sc.delivered]
			// A message being sent at Ctrl-C may arrive without being counted as produced.
			if produced == 0 || delivered < produced {
				t.Errorf("produced %d, delivered %d: want everything produced delivered\n%s", produced, delivered, out.String())
			}
		})
	}
}

// -h prints the flags and is not an error for main (flag.ErrHelp); without a scenario it also
// lists the scenarios.
func TestQuickstartHelp(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"-h"}, []string{"webhook", "webhook-in", "iot", "kafka", "-events", "-rate", "-flaky", "-v"}},
		{[]string{"webhook-in", "-h"}, []string{"-events", "-rate", "-senders", "-v"}},
		{[]string{"iot", "-h"}, []string{"-events", "-rate", "-devices", "-v"}},
		{[]string{"kafka", "-h"}, []string{"-events", "-rate", "-v"}},
	} {
		var out strings.Builder
		err := run(context.Background(), tc.args, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("run %q = %v, want flag.ErrHelp", tc.args, err)
		}
		for _, f := range tc.flags {
			if !strings.Contains(out.String(), f) {
				t.Errorf("run %q: usage lacks %s:\n%s", tc.args, f, out.String())
			}
		}
	}
}

func TestQuickstartUnknownScenario(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"mqtt"}, &out)
	if err == nil || err.Error() != `unknown scenario "mqtt"` || !strings.Contains(out.String(), "iot") {
		t.Errorf("run mqtt = %v, output:\n%s", err, out.String())
	}
}
