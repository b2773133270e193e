package danube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

const (
	defaultMaxRetries     = 5
	defaultHealthInterval = 5 * time.Second
	proxyHeader           = "x-danube-broker-url"
)

// ErrClosed is returned by operations on a closed Client, Producer or Consumer.
var ErrClosed = errors.New("danube: closed")

// Client is the entry point to a Danube cluster. It is safe for concurrent
// use and should be shared: it keeps one connection per broker.
type Client struct {
	service broker
	cfg     config
	creds   credentials.TransportCredentials
	log     *slog.Logger

	mu     sync.Mutex
	conns  map[string][]*grpc.ClientConn // by connect URL: connsPerBroker each, used in turn
	next   atomic.Uint64
	closed bool

	healthLoops atomic.Int64 // running health loops, for leak tests
}

// broker is where an rpc goes: connectURL is dialled, brokerURL is the
// broker's identity, sent as x-danube-broker-url when the two differ (proxy).
type broker struct {
	brokerURL  string
	connectURL string
}

func (b broker) proxy() bool { return b.brokerURL != b.connectURL }

// NewClient returns a client for the broker at serviceURL ("http://host:6650"
// or "https://host:6650"). It does no network I/O; connections open on first
// use. Certificate and key files are read here so mistakes surface early.
func NewClient(serviceURL string, opts ...Option) (*Client, error) {
	if _, err := hostPort(serviceURL); err != nil {
		return nil, err
	}
	var cfg config
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.backoff == nil {
		cfg.backoff = DefaultBackoff
	}
	if cfg.maxRetries <= 0 {
		cfg.maxRetries = defaultMaxRetries
	}
	if cfg.healthInterval <= 0 {
		cfg.healthInterval = defaultHealthInterval
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds, err := transportCredentials(serviceURL, &cfg)
	if err != nil {
		return nil, err
	}
	return &Client{
		service: broker{brokerURL: serviceURL, connectURL: serviceURL},
		cfg:     cfg,
		creds:   creds,
		log:     log,
		conns:   make(map[string][]*grpc.ClientConn),
	}, nil
}

// hostPort validates a broker URL and returns its dial address.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("danube: service URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("danube: service URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.Port() == "" {
		return "", fmt.Errorf("danube: service URL %q: want scheme://host:port", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("danube: service URL %q: unexpected path %q", raw, u.Path)
	}
	return net.JoinHostPort(u.Hostname(), u.Port()), nil
}

func transportCredentials(serviceURL string, cfg *config) (credentials.TransportCredentials, error) {
	useTLS := cfg.tlsConfig != nil || cfg.caFile != "" || cfg.certFile != "" || cfg.token != nil
	if u, _ := url.Parse(serviceURL); u.Scheme == "https" {
		useTLS = true
	}
	if !useTLS {
		return insecure.NewCredentials(), nil
	}
	tc := cfg.tlsConfig
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.caFile != "" {
		pem, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, fmt.Errorf("danube: CA file %q: %w", cfg.caFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("danube: CA file %q: no PEM certificates found", cfg.caFile)
		}
		tc.RootCAs = pool
	}
	if cfg.certFile != "" || cfg.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("danube: client certificate %q / key %q: %w", cfg.certFile, cfg.keyFile, err)
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	return credentials.NewTLS(tc), nil
}

// Close closes every broker connection. Close producers and consumers first;
// their in-flight calls fail once the connections are gone.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for k, ccs := range c.conns {
		for _, cc := range ccs {
			if err := cc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("danube: close connection to %s: %w", k, err))
			}
		}
		delete(c.conns, k)
	}
	return errors.Join(errs...)
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// conn returns the shared connection for b, dialling lazily.
func (c *Client) conn(b broker) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if ccs, ok := c.conns[b.connectURL]; ok {
		return ccs[c.next.Add(1)%uint64(len(ccs))], nil
	}
	target, err := hostPort(b.connectURL)
	if err != nil {
		return nil, err
	}
	// The client retries by its own rules (lookup, recreate, backoff); gRPC's transparent retries
	// would only buffer every request for nothing. Fixed flow-control windows turn off gRPC's
	// bandwidth-delay probing, which pings the broker after nearly every small message and costs
	// each message extra writes and reads (about a quarter of a sequential Send's time on loopback).
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(c.creds), grpc.WithDisableRetry(),
		grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow),
	}
	if c.cfg.token != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerCreds{supply: c.cfg.token}))
	}
	ccs := make([]*grpc.ClientConn, connsPerBroker)
	for i := range ccs {
		cc, err := grpc.NewClient("passthrough:///"+target, dialOpts...)
		if err != nil {
			for _, cc := range ccs[:i] {
				_ = cc.Close()
			}
			return nil, fmt.Errorf("danube: connect %s: %w", b.connectURL, err)
		}
		ccs[i] = cc
	}
	c.conns[b.connectURL] = ccs
	return ccs[0], nil
}

// The HTTP/2 flow-control windows: a stream may have 1 MiB unread, a connection 4 MiB (gRPC's
// probing would grow them up to 16 MiB; a window of max_unacked_messages bounds what a consumer's
// stream carries anyway).
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// connsPerBroker is how many HTTP/2 connections the client keeps to each broker. One connection
// reads and writes its frames in one goroutine each way, which caps pipelined sends and acks well
// below what the broker takes; calls go to the connections in turn.
const connsPerBroker = 2

// rpcCtx adds the proxy routing header when b is reached through a proxy.
func rpcCtx(ctx context.Context, b broker) context.Context {
	if b.proxy() {
		return metadata.AppendToOutgoingContext(ctx, proxyHeader, b.brokerURL)
	}
	return ctx
}

// retryable reports whether code means "try again, possibly elsewhere", as
// both official clients decide.
func retryable(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.ResourceExhausted
}

// retry runs fn until it succeeds, fails with a non-retryable code, or has
// been retried maxRetries times, waiting the backoff between attempts.
func (c *Client) retry(ctx context.Context, op, topic string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !retryable(status.Code(err)) || attempt > c.cfg.maxRetries {
			return err
		}
		if err := c.backoffWait(ctx, op, topic, attempt, err); err != nil {
			return err
		}
	}
}

// backoffWait reports a retry to the hooks and waits its backoff.
func (c *Client) backoffWait(ctx context.Context, op, topic string, attempt int, cause error) error {
	d := c.cfg.backoff.Next(attempt)
	c.cfg.hooks.retry(RetryEvent{Op: op, Topic: topic, Attempt: attempt, Delay: d, Err: cause})
	c.log.Debug("danube: retrying", "op", op, "topic", topic, "attempt", attempt, "delay", d, "err", cause)
	if err := backoff.Sleep(ctx, d); err != nil {
		return err
	}
	if status.Code(cause) == codes.Unavailable {
		c.resetConnectBackoff()
	}
	return nil
}

// resetConnectBackoff makes connections in transient failure redial now, so
// that the client's own Backoff, not gRPC's internal one (1 s and up),
// paces reconnection to a restarted broker.
func (c *Client) resetConnectBackoff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ccs := range c.conns {
		for _, cc := range ccs {
			cc.ResetConnectBackoff()
		}
	}
}

// lookup asks the service broker which broker serves topic. An unknown topic
// (NOT_FOUND) resolves to the service broker, which auto-creates topics for
// producers; other errors are returned.
func (c *Client) lookup(ctx context.Context, topic string) (broker, error) {
	cc, err := c.conn(c.service)
	if err != nil {
		return broker{}, err
	}
	resp, err := danubepb.NewDiscoveryClient(cc).TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: topic})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return c.service, nil
		}
		return broker{}, fmt.Errorf("danube: lookup topic %q: %w", topic, err)
	}
	switch resp.GetResponseType() {
	case danubepb.TopicLookupResponse_Connect, danubepb.TopicLookupResponse_Redirect:
	default:
		return broker{}, fmt.Errorf("danube: lookup topic %q: broker answered %v", topic, resp.GetResponseType())
	}
	b := broker{brokerURL: resp.GetBrokerUrl(), connectURL: resp.GetConnectUrl()}
	if b.connectURL == "" {
		b.connectURL = b.brokerURL
	}
	if b.brokerURL == "" {
		b.brokerURL = b.connectURL
	}
	if _, err := hostPort(b.connectURL); err != nil {
		return broker{}, fmt.Errorf("danube: lookup topic %q: bad broker address: %w", topic, err)
	}
	return b, nil
}

// partitions lists the exact partitions of base: [base] when it is not
// partitioned, else base-part-0..N-1. The broker's raw prefix matches
// (/ns/ord matching /ns/orders-part-0) are dropped.
func (c *Client) partitions(ctx context.Context, base string) ([]string, error) {
	var names []string
	err := c.retry(ctx, "TopicPartitions", base, func() error {
		cc, err := c.conn(c.service)
		if err != nil {
			return err
		}
		resp, err := danubepb.NewDiscoveryClient(cc).TopicPartitions(ctx, &danubepb.TopicLookupRequest{Topic: base})
		if err != nil {
			return fmt.Errorf("danube: partitions of topic %q: %w", base, err)
		}
		names = resp.GetPartitions()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if parts := exactPartitions(base, names); len(parts) > 0 {
		return parts, nil
	}
	// The answering broker's metadata may not list a topic another broker
	// owns; a successful lookup still proves the (non-partitioned) topic
	// exists.
	cc, err := c.conn(c.service)
	if err != nil {
		return nil, err
	}
	if _, err := danubepb.NewDiscoveryClient(cc).TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: base}); err == nil {
		return []string{base}, nil
	}
	return nil, nil
}

// exactPartitions keeps base itself, or else only base-part-<digits>, sorted
// by partition number.
func exactPartitions(base string, names []string) []string {
	type part struct {
		name string
		n    int
	}
	var parts []part
	for _, n := range names {
		if n == base {
			return []string{base}
		}
		if idx, ok := partitionIndex(base, n); ok {
			parts = append(parts, part{n, idx})
		}
	}
	// insertion sort: partition counts are small
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && parts[j].n < parts[j-1].n; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		if i > 0 && p.n == parts[i-1].n {
			continue
		}
		out = append(out, p.name)
	}
	return out
}

// partitionIndex parses N from base-part-N (N decimal, no sign, no leading zeros).
func partitionIndex(base, name string) (int, bool) {
	prefix := base + "-part-"
	if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
		return 0, false
	}
	digits := name[len(prefix):]
	if len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(digits); i++ {
		ch := digits[i]
		if ch < '0' || ch > '9' || n > 1<<20 {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, true
}

// partitionName returns the name of partition i of base.
func partitionName(base string, i int) string { return fmt.Sprintf("%s-part-%d", base, i) }

// healthLoop pings the broker every interval for (kind, id) on topic until ctx
// ends or the broker answers CLOSE, then calls onClose once. Errors are
// transient (the broker may be restarting) and do not stop the loop; each
// outcome goes to the OnHealth hook.
func (c *Client) healthLoop(ctx context.Context, b broker, kind danubepb.HealthCheckRequest_ClientType, id uint64, topic string, onClose func()) {
	hookKind := "consumer"
	if kind == danubepb.HealthCheckRequest_Producer {
		hookKind = "producer"
	}
	c.healthLoops.Add(1)
	defer c.healthLoops.Add(-1)
	t := time.NewTicker(c.cfg.healthInterval)
	defer t.Stop()
	var reqID uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cc, err := c.conn(b)
		if err != nil {
			return
		}
		reqID++
		resp, err := danubepb.NewHealthCheckClient(cc).HealthCheck(rpcCtx(ctx, b), &danubepb.HealthCheckRequest{
			RequestId: reqID, Client: kind, Id: id,
		})
		if ctx.Err() != nil {
			return
		}
		c.cfg.hooks.health(HealthEvent{Topic: topic, Kind: hookKind, Err: err})
		if err != nil {
			c.log.Debug("danube: health check failed", "id", id, "err", err)
			continue
		}
		if resp.GetStatus() == danubepb.HealthCheckResponse_CLOSE {
			onClose()
			return
		}
	}
}
