package runtimetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// The variables that point the conformance suites at an external broker (the same ones the
// integration harness reads).
const (
	// EnvDanubeURL is the service URL of an external Danube broker (http://host:6650 or https://...):
	// a real cluster, or `go run ./tools/devbroker`. Unset, the suites start an in-process
	// development broker per case.
	EnvDanubeURL = "IT_DANUBE_URL"
	// EnvDanubeAdminURL is the admin API URL of that broker (http://host:50051), optional: with it
	// the sinks under test get DANUBE_ADMIN_URL. Read only together with EnvDanubeURL.
	EnvDanubeAdminURL = "IT_DANUBE_ADMIN_URL"
)

// Broker is a Danube broker the helpers talk to: a *devbroker.Broker (StartBroker) or an
// external one (SuiteBroker with IT_DANUBE_URL set). Tests that inject faults or restart the
// broker keep using the *devbroker.Broker they started.
type Broker interface {
	// URL is the service URL a client dials: http://host:port or https://host:port.
	URL() string
}

// restartableBroker is the broker of a case that restarts it: a fresh development broker, or a
// skip against an external broker.
func restartableBroker(t *testing.T) *devbroker.Broker {
	t.Helper()
	if os.Getenv(EnvDanubeURL) != "" {
		t.Skipf("skipped with %s set: a test cannot restart an external broker (and Danube v0.15.1 "+
			"usually fails to restart on its own data directory); broker restarts are verified against the "+
			"development broker", EnvDanubeURL)
	}
	return StartBroker(t)
}

// adminURLer is a broker whose admin API the connectors under test are given (DANUBE_ADMIN_URL).
type adminURLer interface {
	AdminURL() string
}

// ExternalBroker is a broker the test did not start (IT_DANUBE_URL): it persists topics across
// runs and cannot be restarted or have faults injected from a test.
type ExternalBroker struct {
	url, adminURL string
}

// URL is IT_DANUBE_URL.
func (e *ExternalBroker) URL() string { return e.url }

// AdminURL is IT_DANUBE_ADMIN_URL, "" when unset.
func (e *ExternalBroker) AdminURL() string { return e.adminURL }

// String says where the broker came from, for test logs.
func (e *ExternalBroker) String() string {
	s := EnvDanubeURL + "=" + e.url
	if e.adminURL != "" {
		s += ", " + EnvDanubeAdminURL + "=" + e.adminURL
	}
	return s
}

// SuiteBroker is the broker a conformance case runs against: the external broker at IT_DANUBE_URL
// (and IT_DANUBE_ADMIN_URL) when set, which must be reachable, else a fresh development broker
// from StartBroker. Against an external broker the cases that restart the broker are skipped and
// every topic and subscription name is unique per run.
func SuiteBroker(t testing.TB) Broker {
	t.Helper()
	raw := os.Getenv(EnvDanubeURL)
	if raw == "" {
		return StartBroker(t)
	}
	e, err := externalBroker(raw, os.Getenv(EnvDanubeAdminURL))
	if err != nil {
		t.Fatalf("runtimetest: %v", err)
	}
	t.Logf("runtimetest: Danube broker from %s", e)
	return e
}

func externalBroker(service, admin string) (*ExternalBroker, error) {
	if err := checkURL(EnvDanubeURL, service); err != nil {
		return nil, err
	}
	if admin != "" {
		if err := checkURL(EnvDanubeAdminURL, admin); err != nil {
			return nil, err
		}
	}
	return &ExternalBroker{url: service, adminURL: admin}, nil
}

// checkURL checks that raw is an http(s)://host:port URL and dials it, so that a stale variable
// fails at once with its name instead of as a time-out later.
func checkURL(envVar, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return fmt.Errorf("%s: %q is not an http(s)://host:port URL", envVar, raw)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %s is unreachable: %w", envVar, u.Host, err)
	}
	_ = c.Close() // a reachability probe: the dial succeeding is the answer
	return nil
}

// uniqueSuffix is a short id that makes the topic and subscription names of one suite case unique,
// since an external broker keeps them across runs.
func uniqueSuffix() string {
	return fmt.Sprintf("%08x", rand.Uint32())
}
