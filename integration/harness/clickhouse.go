package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// ClickHouseImage is the image of the ClickHouse container: a current
// release, unlike the 18.16 server that Debian ships.
const ClickHouseImage = "clickhouse/clickhouse-server:25.8"

// ClickHouseEndpoint is a ClickHouse server with a database of the test's own.
type ClickHouseEndpoint struct {
	// NativeAddr is host:port of the native protocol, clickhouse-go's
	// default and the only one it speaks to an 18.16 server.
	NativeAddr string
	// HTTPAddr is host:port of the HTTP interface.
	HTTPAddr string
	// Username and Password authenticate on both interfaces.
	Username, Password string
	// Database was created for the test; it is dropped when the test ends.
	Database string
	// Source says where the server came from, for test logs.
	Source string
}

var clickHouseServer shared[ClickHouseEndpoint]

// clickHouseHTTP keeps no idle connections, so that none outlives a test
// and trips goleak.
var clickHouseHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// ClickHouse returns a ClickHouse server and a fresh database for t (see the
// package doc for the order of choice). The database is dropped when t ends.
func ClickHouse(t testing.TB) ClickHouseEndpoint {
	t.Helper()
	server := resolve(t, "ClickHouse", EnvClickHouseNativeAddr, clickHouseFromEnv, &clickHouseServer, startClickHouse)
	ep := server
	ep.Database = Name(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ep.Exec(ctx, "CREATE DATABASE "+ep.Database); err != nil {
		t.Fatalf("harness: create database %s on %s: %v", ep.Database, ep.Source, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ep.Exec(ctx, "DROP DATABASE IF EXISTS "+ep.Database); err != nil {
			t.Errorf("harness: drop database %s: %v", ep.Database, err)
		}
	})
	return ep
}

// Exec runs one statement over the HTTP interface. It exists for setup
// and clean-up with no driver involved: plain HTTP works on every server
// version, while clickhouse-go's HTTP mode fails on 18.16.
func (e ClickHouseEndpoint) Exec(ctx context.Context, query string) error {
	u := url.URL{Scheme: "http", Host: e.HTTPAddr, Path: "/"}
	q := url.Values{}
	if e.Username != "" {
		q.Set("user", e.Username)
		q.Set("password", e.Password)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(query))
	if err != nil {
		return err
	}
	resp, err := clickHouseHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("clickhouse HTTP %s: %s: %s", e.HTTPAddr, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func clickHouseFromEnv() (ClickHouseEndpoint, error) {
	ep := ClickHouseEndpoint{
		NativeAddr: os.Getenv(EnvClickHouseNativeAddr),
		HTTPAddr:   os.Getenv(EnvClickHouseHTTPAddr),
		Username:   os.Getenv(EnvClickHouseUser),
		Password:   os.Getenv(EnvClickHousePassword),
	}
	if ep.HTTPAddr == "" {
		return ClickHouseEndpoint{}, fmt.Errorf("%s is set but %s is not; set both", EnvClickHouseNativeAddr, EnvClickHouseHTTPAddr)
	}
	if ep.Username == "" {
		ep.Username = "default"
	}
	if err := checkReachable(EnvClickHouseNativeAddr, ep.NativeAddr); err != nil {
		return ClickHouseEndpoint{}, err
	}
	if err := checkReachable(EnvClickHouseHTTPAddr, ep.HTTPAddr); err != nil {
		return ClickHouseEndpoint{}, err
	}
	ep.Source = fmt.Sprintf("%s=%s, %s=%s", EnvClickHouseNativeAddr, ep.NativeAddr, EnvClickHouseHTTPAddr, ep.HTTPAddr)
	return ep, nil
}

func startClickHouse(ctx context.Context) (ClickHouseEndpoint, error) {
	const user, password = "it", "it"
	c, err := run(ctx, ClickHouseImage,
		// With a password set, the image lets the user in over the
		// network; without one, current images allow localhost only.
		testcontainers.WithEnv(map[string]string{
			"CLICKHOUSE_USER":     user,
			"CLICKHOUSE_PASSWORD": password,
		}),
		testcontainers.WithExposedPorts("9000/tcp", "8123/tcp"),
		testcontainers.WithWaitStrategy(wait.ForAll(
			wait.ForHTTP("/ping").WithPort("8123/tcp"),
			wait.ForListeningPort("9000/tcp"),
		)),
	)
	if err != nil {
		return ClickHouseEndpoint{}, err
	}
	native, err := c.PortEndpoint(ctx, "9000/tcp", "")
	if err != nil {
		return ClickHouseEndpoint{}, fmt.Errorf("clickhouse native port: %w", err)
	}
	httpAddr, err := c.PortEndpoint(ctx, "8123/tcp", "")
	if err != nil {
		return ClickHouseEndpoint{}, fmt.Errorf("clickhouse HTTP port: %w", err)
	}
	return ClickHouseEndpoint{
		NativeAddr: native,
		HTTPAddr:   httpAddr,
		Username:   user,
		Password:   password,
		Source:     "container " + ClickHouseImage,
	}, nil
}
