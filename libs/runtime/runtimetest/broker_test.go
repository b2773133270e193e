package runtimetest

import (
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func TestSuiteBrokerInProcessByDefault(t *testing.T) {
	t.Setenv(EnvDanubeURL, "")
	if _, ok := SuiteBroker(t).(*devbroker.Broker); !ok {
		t.Fatal("SuiteBroker without IT_DANUBE_URL is not an in-process development broker")
	}
}

func TestSuiteBrokerExternal(t *testing.T) {
	b := StartBroker(t)
	t.Setenv(EnvDanubeURL, b.URL())
	t.Setenv(EnvDanubeAdminURL, "http://"+b.AdminAddr())
	e, ok := SuiteBroker(t).(*ExternalBroker)
	if !ok || e.URL() != b.URL() || e.AdminURL() != "http://"+b.AdminAddr() {
		t.Fatalf("SuiteBroker = %v, want the external broker at %s", e, b.URL())
	}
	cfg := SinkConfig(e, "x", "/default/x")
	if cfg.DanubeServiceURL != b.URL() || cfg.DanubeAdminURL != e.AdminURL() {
		t.Fatalf("SinkConfig URLs %q, %q", cfg.DanubeServiceURL, cfg.DanubeAdminURL)
	}
	if cfg := SinkConfig(b, "x", "/default/x"); cfg.DanubeAdminURL != "" {
		t.Fatalf("SinkConfig of the development broker has DANUBE_ADMIN_URL %q", cfg.DanubeAdminURL)
	}
}

func TestExternalBrokerErrorsNameTheVariable(t *testing.T) {
	b := StartBroker(t)
	for _, c := range []struct{ service, admin, want string }{
		{"127.0.0.1:6650", "", EnvDanubeURL + `: "127.0.0.1:6650" is not`},
		{"http://127.0.0.1:1", "", EnvDanubeURL + ": 127.0.0.1:1 is unreachable"},
		{b.URL(), "http://127.0.0.1:1", EnvDanubeAdminURL + ": 127.0.0.1:1 is unreachable"},
		{b.URL(), "grpc://x:1", EnvDanubeAdminURL + `: "grpc://x:1" is not`},
	} {
		_, err := externalBroker(c.service, c.admin)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("externalBroker(%q, %q) = %v, want %q", c.service, c.admin, err, c.want)
		}
	}
}

func TestUniqueSuffix(t *testing.T) {
	a, b := uniqueSuffix(), uniqueSuffix()
	if a == b || len(a) != 8 {
		t.Fatalf("uniqueSuffix() = %q, %q", a, b)
	}
}

func TestWrittenOnce(t *testing.T) {
	once, atLeast := []string{"a", "b"}, []string{"c"}
	for _, c := range []struct {
		got  []string
		want bool
	}{
		{[]string{"b", "a", "c"}, true},
		{[]string{"a", "b", "c", "c"}, true},
		{[]string{"a", "b"}, false},
		{[]string{"a", "a", "b", "c"}, false},
		{[]string{"a", "b", "c", "d"}, false},
	} {
		if got := writtenOnce(c.got, once, atLeast); got != c.want {
			t.Errorf("writtenOnce(%q) = %v, want %v", c.got, got, c.want)
		}
	}
}
