package devbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Config configures a Broker. The zero value is a usable broker on random
// loopback ports with the real broker's defaults.
type Config struct {
	BrokerAddr string // client API listen addr; "" = "127.0.0.1:0"
	AdminAddr  string // admin API listen addr; "" = "127.0.0.1:0"; "-" disables admin
	DataDir    string // "" = in-memory; else reliable topics + cursors persisted here

	// AdvertisedAddr replaces the listen address in the advertised
	// broker_url (the real broker's --advertised-addr); ConnectURL, when it
	// differs, is advertised as connect_url and makes lookups report
	// proxy=true (the real broker's --connect-url).
	AdvertisedAddr string
	ConnectURL     string

	// Auth mode: all three set => TLS on the client port + required
	// `authorization: Bearer <HS256 JWT>`.
	TLSCertFile, TLSKeyFile string
	JWTSecret               []byte

	// Timers and limits; zero = real broker default.
	AckTimeout            time.Duration // 30s
	RedeliveryBaseDelay   time.Duration // 1s
	RedeliveryMaxDelay    time.Duration // 60s
	MaxRedeliveryCount    int           // 5
	MaxUnackedMessages    int           // 10
	RetryTick             time.Duration // 500ms heartbeat that fires due redeliveries/timeouts
	CursorFlushInterval   time.Duration // 10s
	SubscriptionIdleGrace time.Duration // 60s (non-reliable reaper)

	// KeySharedEvictionTimeout is how long a reliable KeyShared consumer may
	// stay inactive (no ReceiveMessages stream attached; health checks do not
	// count) before it leaves the hash ring and its keys move to the other
	// consumers. The real broker evicts on the sixth consecutive inactive
	// 500 ms heartbeat, so zero means six RetryTicks: 3 s at the default tick.
	KeySharedEvictionTimeout time.Duration
	// KeySharedEvictionDropsUnacked makes an eviction behave as v0.15.1's:
	// the evicted consumer's unacknowledged messages are settled as if acked
	// (never redelivered, so lost), and the consumer stays registered under
	// its name, answering health checks, without ever rejoining the hash
	// ring: subscribing again under that name gets no keys. By default the
	// development broker redelivers them to the keys' new owners and forgets
	// the evicted consumer.
	KeySharedEvictionDropsUnacked bool
	// LagDrop reproduces a defect of v0.15.1: a reliable subscription reads
	// its topic's new messages through a 256-message channel that the broker
	// stops reading while the subscription's window is full or no consumer is
	// attached. A subscription more than window + 256 messages behind loses
	// what overflowed: those messages are skipped for it for good (its cursor
	// moves past them). By default every message is delivered.
	LagDrop bool

	Logger *slog.Logger // nil = discard

	hooks *hooks // tests only
}

// hooks let tests reach what a Config cannot express, such as failing disks.
type hooks struct {
	fsync func(*os.File) error // replaces (*os.File).Sync in the data dir
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AckTimeout, 30*time.Second)
	def(&c.RedeliveryBaseDelay, time.Second)
	def(&c.RedeliveryMaxDelay, 60*time.Second)
	def(&c.RetryTick, 500*time.Millisecond)
	def(&c.CursorFlushInterval, 10*time.Second)
	def(&c.SubscriptionIdleGrace, 60*time.Second)
	def(&c.KeySharedEvictionTimeout, keySharedEvictionTicks*c.RetryTick)
	if c.MaxRedeliveryCount <= 0 {
		c.MaxRedeliveryCount = 5
	}
	if c.MaxUnackedMessages <= 0 {
		c.MaxUnackedMessages = 10
	}
	if c.MaxUnackedMessages > 10000 {
		c.MaxUnackedMessages = 10000
	}
	if c.BrokerAddr == "" {
		c.BrokerAddr = "127.0.0.1:0"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func (c Config) authEnabled() bool {
	return c.TLSCertFile != "" && c.TLSKeyFile != "" && len(c.JWTSecret) > 0
}

// Broker is a running development broker.
type Broker struct {
	cfg    Config
	faults *faults
	tls    *tls.Config

	mu        sync.Mutex
	closed    bool
	addr      string // resolved client addr, reused by Restart
	adminAddr string
	core      *core
	srv       *grpc.Server
	adminSrv  *grpc.Server
	wg        sync.WaitGroup
	held      []net.Listener // the ports kept while stopped (hold)
}

// Start listens on the configured addresses and serves until Close; it
// returns once both ports accept connections.
func Start(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	b := &Broker{cfg: cfg, faults: newFaults()}
	if cfg.authEnabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("devbroker: load TLS key pair (cert %q, key %q): %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
		}
		b.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" || len(cfg.JWTSecret) > 0 {
		return nil, errors.New("devbroker: auth mode needs TLSCertFile, TLSKeyFile and JWTSecret together")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.startLocked(cfg.BrokerAddr, cfg.AdminAddr); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Broker) startLocked(addr, adminAddr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devbroker: listen on broker addr %q: %w", addr, err)
	}
	var adminLn net.Listener
	if adminAddr != "-" {
		adminLn, err = net.Listen("tcp", adminAddr)
		if err != nil {
			_ = ln.Close() // the listen error is the one to report
			return fmt.Errorf("devbroker: listen on admin addr %q: %w", adminAddr, err)
		}
		b.adminAddr = adminLn.Addr().String()
	} else {
		b.adminAddr = "-"
	}
	b.addr = ln.Addr().String()
	url := b.urlFor(b.addr)
	connectURL := url
	if b.cfg.ConnectURL != "" {
		connectURL = b.cfg.ConnectURL
	}
	c, err := newCore(b.cfg, url, connectURL, b.faults)
	if err != nil {
		_ = ln.Close() // the newCore error is the one to report
		if adminLn != nil {
			_ = adminLn.Close()
		}
		return err
	}
	b.core = c
	b.srv = b.newServer()
	registerClientAPI(b.srv, c)
	b.serve(b.srv, ln)
	if adminLn != nil {
		b.adminSrv = b.newServer()
		registerAdminAPI(b.adminSrv, c)
		b.serve(b.adminSrv, adminLn)
	}
	return nil
}

func (b *Broker) newServer() *grpc.Server {
	a := &authenticator{secret: b.cfg.JWTSecret, enabled: b.cfg.authEnabled()}
	opts := []grpc.ServerOption{
		grpc.WaitForHandlers(true),
		// Fixed windows, as the client's: no bandwidth-delay pings after every small message.
		grpc.InitialWindowSize(1 << 20), grpc.InitialConnWindowSize(4 << 20),
		grpc.ChainUnaryInterceptor(a.unary, b.faults.unary),
		grpc.ChainStreamInterceptor(a.stream, b.faults.stream),
	}
	if b.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(b.tls)))
	}
	return grpc.NewServer(opts...)
}

func (b *Broker) serve(s *grpc.Server, ln net.Listener) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := s.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			b.cfg.Logger.Error("serve failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

func (b *Broker) urlFor(addr string) string {
	if b.cfg.AdvertisedAddr != "" {
		addr = b.cfg.AdvertisedAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	if b.tls != nil {
		return "https://" + addr
	}
	return "http://" + addr
}

// URL is what lookups advertise as broker_url (and connect_url unless
// Config.ConnectURL says otherwise).
func (b *Broker) URL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urlFor(b.addr)
}

// Addr is the client API's host:port.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// AdminAddr is the admin API's host:port, or "-" when admin is disabled.
func (b *Broker) AdminAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adminAddr
}

func (b *Broker) stopLocked() {
	c := b.core
	if c != nil {
		// End streams first so handlers return before the servers wait for them.
		c.mu.Lock()
		for _, cons := range c.consumers {
			cons.endSession(status.Error(codes.Unavailable, "broker is shutting down"))
		}
		c.mu.Unlock()
	}
	if b.srv != nil {
		b.srv.Stop()
	}
	if b.adminSrv != nil {
		b.adminSrv.Stop()
	}
	b.wg.Wait()
	if c != nil {
		c.close()
	}
	b.srv, b.adminSrv, b.core = nil, nil, nil
}

// Close stops serving, ends every stream and flushes cursors and logs when
// DataDir is set. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.stopLocked()
	b.release()
	return nil
}

// Restart emulates a broker restart on the same ports: producers, consumers
// and in-memory topics are gone; with DataDir, reliable topics, their messages
// and subscription cursors come back.
func (b *Broker) Restart() error {
	if err := b.Stop(); err != nil {
		return err
	}
	return b.Start()
}

// Stop emulates a broker that is down, as the first half of Restart: it
// stops serving until Start. Its ports stay taken — a connection is accepted
// and closed at once, which a client sees as the broker away — so that no
// other server of a busy test run takes them while it is down.
func (b *Broker) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("devbroker: stop of a closed broker")
	}
	b.stopLocked()
	b.hold(b.addr)
	if b.adminAddr != "-" {
		b.hold(b.adminAddr)
	}
	return nil
}

// hold keeps addr taken while the broker is stopped; a port another process
// took in the moment between is simply not held.
func (b *Broker) hold(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	b.held = append(b.held, ln)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
}

// release frees the ports hold kept.
func (b *Broker) release() {
	for _, ln := range b.held {
		_ = ln.Close()
	}
	b.held = nil
}

// Start serves again on the same ports after Stop.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("devbroker: start of a closed broker")
	}
	if b.srv != nil {
		return errors.New("devbroker: start of a broker that is serving")
	}
	b.release()
	var err error
	for i := 0; i < 50; i++ { // the old sockets may take a moment to release the ports
		if err = b.startLocked(b.addr, b.adminAddr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.closed = true
	return err
}

// ForceClose makes the health check answer CLOSE for a producer or consumer
// id; a consumer's stream is also ended, as when its topic is closed.
func (b *Broker) ForceClose(id uint64) {
	c := b.current()
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.producers[id]; p != nil {
		p.closed = true
	}
	if cons := c.consumers[id]; cons != nil {
		cons.forced = true
		if cons.sess != nil {
			cons.endSession(nil)
		}
		cons.active = false
		cons.sub.release(cons, time.Now())
	}
}

// DropStream ends a consumer's ReceiveMessages stream with UNAVAILABLE, as a
// network drop would; the consumer becomes inactive until it streams again.
func (b *Broker) DropStream(consumerID uint64) {
	c := b.current()
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cons := c.consumers[consumerID]
	if cons == nil || cons.sess == nil {
		return
	}
	cons.endSession(status.Error(codes.Unavailable, "stream dropped (fault injection)"))
	cons.active = false
	cons.sub.release(cons, time.Now())
}

// FailNext makes the next n calls of fullMethod (for example
// "/danube.ProducerService/CreateProducer") fail with code.
func (b *Broker) FailNext(fullMethod string, n int, code codes.Code) {
	b.faults.failNext(fullMethod, n, code)
}

// SetClusterMode emulates a cluster broker: the first CreateProducer on a new
// topic creates it but answers UNAVAILABLE, so clients must look up and retry.
func (b *Broker) SetClusterMode(on bool) { b.faults.setCluster(on) }

// RedirectTopic makes TopicLookup for topic answer Redirect to `to`, and
// CreateProducer/Subscribe here answer UNAVAILABLE ("served by another
// broker"). A nil `to` removes the redirect.
func (b *Broker) RedirectTopic(topic string, to *Broker) {
	if to == nil {
		b.faults.setRedirect(topic, "")
		return
	}
	b.faults.setRedirect(topic, to.URL())
}

func (b *Broker) current() *core {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.core
}

// faults holds the fault-injection state; it survives Restart.
type faults struct {
	mu        sync.Mutex
	fail      map[string]*failRule
	cluster   bool
	redirects map[string]string
}

type failRule struct {
	n    int
	code codes.Code
}

func newFaults() *faults {
	return &faults{fail: map[string]*failRule{}, redirects: map[string]string{}}
}

func (f *faults) failNext(method string, n int, code codes.Code) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= 0 {
		delete(f.fail, method)
		return
	}
	f.fail[method] = &failRule{n: n, code: code}
}

func (f *faults) take(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.fail[method]
	if r == nil {
		return nil
	}
	r.n--
	if r.n <= 0 {
		delete(f.fail, method)
	}
	return status.Errorf(r.code, "injected fault: %s fails with %s (%d more)", method, r.code, r.n)
}

func (f *faults) setCluster(on bool) {
	f.mu.Lock()
	f.cluster = on
	f.mu.Unlock()
}

func (f *faults) clusterMode() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cluster
}

func (f *faults) setRedirect(topic, url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if url == "" {
		delete(f.redirects, topic)
		return
	}
	f.redirects[topic] = url
}

func (f *faults) redirect(topic string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.redirects[topic]
	return u, ok
}
