package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"go.uber.org/goleak"
)

// startTimeout bounds starting one container, image pull included.
const startTimeout = 5 * time.Minute

// docker remembers, for the life of the test binary, whether a Docker engine
// answered, so that a machine without one pays for the check once.
var docker struct {
	once sync.Once
	err  error
}

// dockerHealthy reports why containers cannot be used, or nil.
func dockerHealthy() error {
	docker.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				docker.err = fmt.Errorf("docker provider: %v", r)
			}
		}()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			docker.err = fmt.Errorf("docker provider: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Health(ctx); err != nil { // Health closes p.
			docker.err = fmt.Errorf("docker engine: %w", err)
		}
	})
	return docker.err
}

// containers are the containers this test binary started; [Main]
// terminates them.
var containers struct {
	mu   sync.Mutex
	list []testcontainers.Container
}

func track(c testcontainers.Container) {
	containers.mu.Lock()
	defer containers.mu.Unlock()
	containers.list = append(containers.list, c)
}

// terminateAll terminates every tracked container and reports whether any
// was started.
func terminateAll() (started bool, err error) {
	containers.mu.Lock()
	defer containers.mu.Unlock()
	var errs []error
	for _, c := range containers.list {
		errs = append(errs, testcontainers.TerminateContainer(c))
	}
	started = len(containers.list) > 0
	containers.list = nil
	return started, errors.Join(errs...)
}

// shared starts one container for all tests of the binary on first use.
type shared[E any] struct {
	once sync.Once
	ep   E
	err  error
}

func (s *shared[E]) get(start func(ctx context.Context) (E, error)) (E, error) {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		s.ep, s.err = start(ctx)
	})
	return s.ep, s.err
}

// run starts a container and tracks it even when starting failed half-way,
// so that it is still terminated.
func run(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (*testcontainers.DockerContainer, error) {
	c, err := testcontainers.Run(ctx, image, opts...)
	if c != nil {
		track(c)
	}
	if err != nil {
		return nil, fmt.Errorf("run container %s: %w", image, err)
	}
	return c, nil
}

// resolve implements the order of choice shared by every system: the
// environment variable, else the shared container, else skip or fail.
func resolve[E any](t testing.TB, system, envVar string, fromEnv func() (E, error), s *shared[E], start func(ctx context.Context) (E, error)) E {
	t.Helper()
	var zero E
	if os.Getenv(envVar) != "" {
		ep, err := fromEnv()
		if err != nil {
			t.Fatalf("harness: %s from %s: %v", system, envVar, err)
			return zero
		}
		return ep
	}
	if err := dockerHealthy(); err != nil {
		unavailable(t, system, envVar, err)
		return zero
	}
	ep, err := s.get(start)
	if err != nil {
		t.Fatalf("harness: %s container (Docker is healthy, so this is a failure): %v", system, err)
		return zero
	}
	return ep
}

// Main runs the tests of a package that uses the harness, terminates the
// containers they shared, checks for leaked goroutines (with goleak, given
// opts) and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	started, err := terminateAll()
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: terminate containers: %v\n", err)
		code = 1
	}
	if started {
		// testcontainers keeps its reaper connection and the Docker
		// client's idle connections for the life of the process.
		opts = append(opts,
			goleak.IgnoreAnyFunction("github.com/testcontainers/testcontainers-go.(*Reaper).connect.func1"),
			goleak.IgnoreAnyFunction("github.com/testcontainers/testcontainers-go.(*DockerContainer).parseMultiplexedLogs.func1"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		)
	}
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
