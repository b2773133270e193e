package harness

import (
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// DanubeEndpoint is a Danube broker. Tests isolate themselves by topics
// under a [Name]; Broker is set only for an in-process development broker,
// so that a test can inject faults or restart it.
type DanubeEndpoint struct {
	// URL is the service URL a client dials: http://host:port or https://host:port.
	URL string
	// Broker is the in-process development broker, or nil when the broker
	// came from IT_DANUBE_URL.
	Broker *devbroker.Broker
	// Source says where the broker came from, for test logs.
	Source string
}

// Danube returns a Danube broker: the one at IT_DANUBE_URL if set (a real
// cluster or `go run ./tools/devbroker`), else a fresh in-process development
// broker with cfg (at most one; the zero Config by default) that is closed
// when the test ends. Unlike the other systems it is never skipped: the
// development broker runs everywhere.
func Danube(t testing.TB, cfg ...devbroker.Config) DanubeEndpoint {
	t.Helper()
	if raw := os.Getenv(EnvDanubeURL); raw != "" {
		e, err := danubeFromEnv(raw)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		t.Logf("harness: Danube broker from %s", e.Source)
		return e
	}
	if len(cfg) > 1 {
		t.Fatalf("harness: Danube takes at most one devbroker.Config, got %d", len(cfg))
	}
	var c devbroker.Config
	if len(cfg) == 1 {
		c = cfg[0]
	}
	b, err := devbroker.Start(c)
	if err != nil {
		t.Fatalf("harness: start the development broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("harness: close the development broker: %v", err)
		}
	})
	e := DanubeEndpoint{URL: b.URL(), Broker: b, Source: "in-process development broker at " + b.URL()}
	t.Logf("harness: %s", e.Source)
	return e
}

func danubeFromEnv(raw string) (DanubeEndpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return DanubeEndpoint{}, fmt.Errorf("%s: %q is not an http(s)://host:port service URL", EnvDanubeURL, raw)
	}
	if err := checkReachable(EnvDanubeURL, u.Host); err != nil {
		return DanubeEndpoint{}, err
	}
	return DanubeEndpoint{URL: raw, Source: EnvDanubeURL + "=" + raw}, nil
}
