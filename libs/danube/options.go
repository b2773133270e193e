package danube

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"
)

// Option configures a [Client].
type Option func(*config)

type config struct {
	tlsConfig      *tls.Config
	caFile         string
	certFile       string
	keyFile        string
	token          tokenSupplier
	backoff        Backoff
	maxRetries     int
	hooks          Hooks
	logger         *slog.Logger
	healthInterval time.Duration
}

// WithTLSConfig sets the TLS configuration (cloned) used for every broker
// connection and turns TLS on. WithCAFile and WithClientCert add to it.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
	}
}

// WithCAFile trusts the PEM certificates in path instead of the system roots,
// for brokers with a private CA. It turns TLS on.
func WithCAFile(path string) Option { return func(c *config) { c.caFile = path } }

// WithClientCert presents a client certificate (mTLS). It turns TLS on.
func WithClientCert(certFile, keyFile string) Option {
	return func(c *config) { c.certFile, c.keyFile = certFile, keyFile }
}

// WithToken sends a static JWT as `authorization: Bearer` on every call. It
// turns TLS on (system roots unless a CA is given), as the broker's auth mode
// requires it.
func WithToken(token string) Option {
	return func(c *config) {
		c.token = func(context.Context) (string, error) { return token, nil }
	}
}

// WithTokenFile reads the JWT from path and re-reads it whenever the file's
// modification time or size changes, so tokens can rotate under a running
// client. It turns TLS on.
func WithTokenFile(path string) Option {
	return func(c *config) { c.token = newTokenFile(path).Token }
}

// WithTokenSupplier calls f for the JWT before every rpc (f should cache). It
// turns TLS on.
func WithTokenSupplier(f func(ctx context.Context) (string, error)) Option {
	return func(c *config) {
		if f != nil {
			c.token = f
		}
	}
}

// WithBackoff sets the wait between retries; nil restores [DefaultBackoff].
func WithBackoff(b Backoff) Option { return func(c *config) { c.backoff = b } }

// WithMaxRetries bounds the retries of one operation (create, send, ack…);
// n <= 0 means the default, 5. Consumers resubscribing after a broker loss
// retry until closed regardless.
func WithMaxRetries(n int) Option { return func(c *config) { c.maxRetries = n } }

// WithHooks installs observers for metrics and tracing.
func WithHooks(h Hooks) Option { return func(c *config) { c.hooks = h } }

// WithLogger sets the logger; nil (the default) discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithHealthCheckInterval sets how often producers and consumers ask the
// broker whether they are still registered; d <= 0 means the protocol's 5 s.
// Tests shorten it to react quickly.
func WithHealthCheckInterval(d time.Duration) Option {
	return func(c *config) { c.healthInterval = d }
}
