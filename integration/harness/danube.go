package harness

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// DanubeImage is the official Danube broker image the GitHub workflow names
// in IT_DANUBE_IMAGE: the release the development broker was verified
// against.
const DanubeImage = "ghcr.io/danube-messaging/danube-broker:v0.15.1"

const (
	// EnvDanubeAdminURL is the admin API URL (http://host:50051) of the
	// broker at IT_DANUBE_URL; optional.
	EnvDanubeAdminURL = "IT_DANUBE_ADMIN_URL"
	// EnvDanubeImage names a Danube broker image (DanubeImage in GitHub
	// CI) that Danube runs with testcontainers-go instead of the
	// in-process development broker.
	EnvDanubeImage = "IT_DANUBE_IMAGE"
)

// DanubeEndpoint is a Danube broker. Tests isolate themselves by topics
// under a [Name]; Broker is set only for an in-process development broker,
// so that a test can inject faults or restart it.
type DanubeEndpoint struct {
	// URL is the service URL a client dials: http://host:port or https://host:port.
	URL string
	// AdminURL is the admin API's URL (http://host:port), "" when unknown
	// (IT_DANUBE_URL without IT_DANUBE_ADMIN_URL) or disabled.
	AdminURL string
	// Broker is the in-process development broker, or nil when the broker
	// came from IT_DANUBE_URL.
	Broker *devbroker.Broker
	// Source says where the broker came from, for test logs.
	Source string
}

// Danube returns a Danube broker: the one at IT_DANUBE_URL if set (a real
// cluster or `go run ./tools/devbroker`); else, with IT_DANUBE_IMAGE set, a
// container of that image (the real broker, standalone, started once per
// test binary and shared by its tests, which isolate themselves by topic
// names); else a fresh in-process development broker with cfg (at most one;
// the zero Config by default) that is closed when the test ends. cfg applies
// to the development broker only. Unlike the other systems it is never
// skipped without IT_DANUBE_IMAGE: the development broker runs everywhere.
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
	if image := os.Getenv(EnvDanubeImage); image != "" {
		if err := dockerHealthy(); err != nil {
			imageUnavailable(t, EnvDanubeImage, image, "the Danube broker", err)
			return DanubeEndpoint{}
		}
		e, err := danubeServer.get(func(ctx context.Context) (DanubeEndpoint, error) { return startDanube(ctx, image) })
		if err != nil {
			t.Fatalf("harness: Danube broker container (Docker is healthy, so this is a failure): %v", err)
		}
		t.Logf("harness: Danube broker %s at %s (admin %s)", e.Source, e.URL, e.AdminURL)
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
	if a := b.AdminAddr(); a != "" && a != "-" {
		e.AdminURL = "http://" + a
	}
	t.Logf("harness: %s", e.Source)
	return e
}

func danubeFromEnv(raw string) (DanubeEndpoint, error) {
	admin := os.Getenv(EnvDanubeAdminURL)
	if err := checkServiceURL(EnvDanubeURL, raw); err != nil {
		return DanubeEndpoint{}, err
	}
	e := DanubeEndpoint{URL: raw, Source: EnvDanubeURL + "=" + raw}
	if admin != "" {
		if err := checkServiceURL(EnvDanubeAdminURL, admin); err != nil {
			return DanubeEndpoint{}, err
		}
		e.AdminURL = admin
		e.Source += ", " + EnvDanubeAdminURL + "=" + admin
	}
	return e, nil
}

// checkServiceURL checks that raw, the value of envVar, is an
// http(s)://host:port URL that is reachable.
func checkServiceURL(envVar, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return fmt.Errorf("%s: %q is not an http(s)://host:port service URL", envVar, raw)
	}
	return checkReachable(envVar, u.Host)
}

var danubeServer shared[DanubeEndpoint]

// startDanube runs the broker image standalone (embedded Raft metadata,
// local WAL in the container), with the host's network on free loopback
// ports: the broker advertises its bind address in lookups, so it must be
// one that clients on the host reach as it is.
func startDanube(ctx context.Context, image string) (DanubeEndpoint, error) {
	var addrs [3]string // client API, admin API, Raft transport
	for i := range addrs {
		a, err := freeLoopbackAddr()
		if err != nil {
			return DanubeEndpoint{}, err
		}
		addrs[i] = a
	}
	broker, admin, raft := addrs[0], addrs[1], addrs[2]
	_, brokerPort, _ := net.SplitHostPort(broker)
	_, adminPort, _ := net.SplitHostPort(admin)
	_, err := run(ctx, image,
		testcontainers.WithCmd("--mode", "standalone", "--data-dir", "/tmp/danube-data",
			"--broker-addr", broker, "--admin-addr", admin, "--raft-addr", raft),
		testcontainers.WithEnv(map[string]string{"RUST_LOG": "danube_broker=info,danube_core=info,openraft=warn"}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
		// With the host's network a port is "mapped" to itself, and a dial
		// from the host is the whole check (none inside the image).
		testcontainers.WithExposedPorts(brokerPort+"/tcp", adminPort+"/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute, wait.ForAll(
			wait.ForListeningPort(brokerPort+"/tcp").SkipInternalCheck(),
			wait.ForListeningPort(adminPort+"/tcp").SkipInternalCheck(),
		)),
	)
	if err != nil {
		return DanubeEndpoint{}, err
	}
	return DanubeEndpoint{URL: "http://" + broker, AdminURL: "http://" + admin, Source: "container " + image}, nil
}
