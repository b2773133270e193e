package mqttsource

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/topicmap"
)

// Config is the runtime's source settings (DANUBE_*, MAX_IN_FLIGHT, PUBLISH_ORDER, RETRY_*, ...) plus
// the MQTT side: the mode, the broker (client mode) or the listeners (server mode), and the topic
// mappings.
type Config struct {
	runtime.SourceConfig

	Mode       Mode     `env:"MQTT_MODE" envDefault:"client" desc:"client: subscribe to an MQTT broker; server: run an embedded MQTT server that devices publish to"`
	Mappings   string   `env:"MQTT_TOPIC_MAPPINGS,required" desc:"filter=/namespace/topic pairs separated by ';', first match wins; MQTT filters with + and #, $share/<group>/<filter> for replicas sharing the messages"`
	Retained   Retained `env:"MQTT_RETAINED" envDefault:"publish" desc:"client mode: retained messages the broker sends on (re)subscribe: publish (with mqtt.retain=true) or skip (acknowledge without publishing)"`
	MaxPayload int      `env:"MQTT_MAX_PAYLOAD_BYTES" envDefault:"1048576" desc:"larger payloads are rejected (acknowledged to MQTT, counted and logged, not published)"`

	BrokerURLs     []config.URL  `env:"MQTT_BROKER_URL" envSeparator:"," desc:"client mode: broker URL, or a comma list tried in order for failover: tcp://, ssl://, ws:// or wss://host:port; a password in it (tcp://user:password@host:1883) is redacted in logs"`
	ClientID       string        `env:"MQTT_CLIENT_ID" desc:"client mode: MQTT client id (the broker keeps the session under it); default CONNECTOR_NAME; unique per replica"`
	Username       string        `env:"MQTT_USERNAME" desc:"client mode: user name"`
	Password       config.Secret `env:"MQTT_PASSWORD" desc:"client mode: password"`
	QoS            int           `env:"MQTT_QOS" envDefault:"1" desc:"client mode: subscription QoS: 0 (at most once), 1 or 2 (at least once: acknowledged after Danube acked)"`
	CleanSession   bool          `env:"MQTT_CLEAN_SESSION" envDefault:"false" desc:"client mode: false keeps a persistent session, so the broker queues messages while the connector is down"`
	KeepAlive      config.Millis `env:"MQTT_KEEPALIVE_MS" envDefault:"30000" desc:"MQTT keepalive (rounded to seconds)"`
	ConnectTimeout config.Millis `env:"MQTT_CONNECT_TIMEOUT_MS" envDefault:"10000" desc:"client mode: timeout of one connection attempt"`
	CAFile         string        `env:"MQTT_CA_FILE" desc:"client mode: PEM CA bundle to verify the broker (ssl://, wss://), in addition to the system roots"`
	CertFile       string        `env:"MQTT_CERT_FILE" desc:"client mode: client certificate for mTLS (with MQTT_KEY_FILE)"`
	KeyFile        string        `env:"MQTT_KEY_FILE" desc:"client mode: client key for mTLS (with MQTT_CERT_FILE)"`

	ServerTCPAddr        string        `env:"MQTT_SERVER_TCP_ADDR" envDefault:":1883" desc:"server mode: plain TCP listen address; off disables it"`
	ServerTLSAddr        string        `env:"MQTT_SERVER_TLS_ADDR" desc:"server mode: TLS listen address, e.g. :8883 (needs MQTT_SERVER_CERT_FILE and MQTT_SERVER_KEY_FILE)"`
	ServerWSAddr         string        `env:"MQTT_SERVER_WS_ADDR" desc:"server mode: WebSocket listen address, e.g. :8083 (TLS too when the certificate is set)"`
	ServerCertFile       string        `env:"MQTT_SERVER_CERT_FILE" desc:"server mode: PEM certificate of the TLS and WebSocket listeners"`
	ServerKeyFile        string        `env:"MQTT_SERVER_KEY_FILE" desc:"server mode: PEM key of that certificate"`
	ServerClientCAFile   string        `env:"MQTT_SERVER_CLIENT_CA_FILE" desc:"server mode: require client certificates signed by this CA on the TLS listeners (mTLS)"`
	ServerUsers          config.Secret `env:"MQTT_SERVER_USERS" desc:"server mode: devices allowed to connect, comma-separated user:password pairs"`
	ServerAuthFile       string        `env:"MQTT_SERVER_AUTH_FILE" desc:"server mode: mochi-mqtt auth ledger (YAML or JSON: users, passwords, per-user ACLs)"`
	ServerAnonymous      bool          `env:"MQTT_SERVER_ALLOW_ANONYMOUS" envDefault:"false" desc:"server mode: accept devices without credentials (development only)"`
	ServerConnectTimeout config.Millis `env:"MQTT_SERVER_CONNECT_TIMEOUT_MS" envDefault:"10000" desc:"server mode: a connection that has not sent its MQTT CONNECT within this time is closed"`
	ServerMaxClients     int           `env:"MQTT_SERVER_MAX_CLIENTS" envDefault:"1000" desc:"server mode: most device connections at once, counted from the TCP accept (about 40 KiB each); more are closed at once"`
}

// Mode is MQTT_MODE.
type Mode int

const (
	// ClientMode subscribes to an external MQTT broker.
	ClientMode Mode = iota
	// ServerMode runs an embedded MQTT server.
	ServerMode
)

var modes = config.Enum[Mode]{{Value: ClientMode, Name: "client"}, {Value: ServerMode, Name: "server"}}

func (m Mode) String() string { return modes.Name(m) }

// UnmarshalText parses "client" or "server".
func (m *Mode) UnmarshalText(b []byte) error { return modes.Parse(m, b) }

// Retained is MQTT_RETAINED.
type Retained int

const (
	// PublishRetained publishes retained messages like any other, flagged mqtt.retain=true.
	PublishRetained Retained = iota
	// SkipRetained acknowledges retained messages without publishing them.
	SkipRetained
)

var retainedNames = config.Enum[Retained]{{Value: PublishRetained, Name: "publish"}, {Value: SkipRetained, Name: "skip"}}

func (r Retained) String() string { return retainedNames.Name(r) }

// UnmarshalText parses "publish" or "skip".
func (r *Retained) UnmarshalText(b []byte) error { return retainedNames.Parse(r, b) }

// Validate implements config.Validator: every problem at once, each naming its variable.
func (c *Config) Validate() error {
	var errs []error
	if _, err := topicmap.Parse(c.Mappings); err != nil {
		errs = append(errs, config.Invalid("MQTT_TOPIC_MAPPINGS", c.Mappings, strings.ReplaceAll(err.Error(), "\n", "; ")))
	}
	if c.MaxPayload < 1 {
		errs = append(errs, config.Invalid("MQTT_MAX_PAYLOAD_BYTES", c.MaxPayload, "must be at least 1"))
	}
	if c.KeepAlive.D().Seconds() < 1 {
		errs = append(errs, config.Invalid("MQTT_KEEPALIVE_MS", c.KeepAlive, "must be at least 1000"))
	}
	files := []struct{ name, path string }{}
	switch c.Mode {
	case ClientMode:
		if len(c.BrokerURLs) == 0 {
			errs = append(errs, &config.FieldError{Var: "MQTT_BROKER_URL", Reason: "required when MQTT_MODE=client"})
		}
		for _, u := range c.BrokerURLs {
			if err := checkBrokerURL(u.Reveal()); err != nil {
				errs = append(errs, config.Invalid("MQTT_BROKER_URL", u, err.Error()))
			}
		}
		if c.QoS < 0 || c.QoS > 2 {
			errs = append(errs, config.Invalid("MQTT_QOS", c.QoS, "want 0, 1 or 2"))
		}
		if (c.CertFile == "") != (c.KeyFile == "") {
			errs = append(errs, config.Invalid("MQTT_CERT_FILE", c.CertFile, "MQTT_CERT_FILE and MQTT_KEY_FILE go together"))
		}
		files = append(files, []struct{ name, path string }{{"MQTT_CA_FILE", c.CAFile}, {"MQTT_CERT_FILE", c.CertFile}, {"MQTT_KEY_FILE", c.KeyFile}}...)
	case ServerMode:
		if c.tcpAddr() == "" && c.ServerTLSAddr == "" && c.ServerWSAddr == "" {
			errs = append(errs, &config.FieldError{Var: "MQTT_SERVER_TCP_ADDR", Reason: "server mode needs a listener: set MQTT_SERVER_TCP_ADDR, MQTT_SERVER_TLS_ADDR or MQTT_SERVER_WS_ADDR"})
		}
		if c.ServerTLSAddr != "" && (c.ServerCertFile == "" || c.ServerKeyFile == "") {
			errs = append(errs, config.Invalid("MQTT_SERVER_TLS_ADDR", c.ServerTLSAddr, "needs MQTT_SERVER_CERT_FILE and MQTT_SERVER_KEY_FILE"))
		}
		if (c.ServerCertFile == "") != (c.ServerKeyFile == "") {
			errs = append(errs, config.Invalid("MQTT_SERVER_CERT_FILE", c.ServerCertFile, "MQTT_SERVER_CERT_FILE and MQTT_SERVER_KEY_FILE go together"))
		}
		if c.ServerConnectTimeout.D() <= 0 {
			errs = append(errs, config.Invalid("MQTT_SERVER_CONNECT_TIMEOUT_MS", c.ServerConnectTimeout, "must be at least 1"))
		}
		if c.ServerMaxClients < 1 {
			errs = append(errs, config.Invalid("MQTT_SERVER_MAX_CLIENTS", c.ServerMaxClients, "must be at least 1"))
		}
		if !c.ServerUsers.IsSet() && c.ServerAuthFile == "" && !c.ServerAnonymous {
			errs = append(errs, &config.FieldError{Var: "MQTT_SERVER_USERS", Reason: "server mode needs device credentials: set MQTT_SERVER_USERS or MQTT_SERVER_AUTH_FILE, or MQTT_SERVER_ALLOW_ANONYMOUS=true"})
		}
		if _, err := parseUsers(c.ServerUsers.Reveal()); err != nil {
			errs = append(errs, &config.FieldError{Var: "MQTT_SERVER_USERS", Reason: err.Error()}) // the value is a secret: not echoed
		}
		files = append(files, []struct{ name, path string }{{"MQTT_SERVER_CERT_FILE", c.ServerCertFile}, {"MQTT_SERVER_KEY_FILE", c.ServerKeyFile},
			{"MQTT_SERVER_CLIENT_CA_FILE", c.ServerClientCAFile}, {"MQTT_SERVER_AUTH_FILE", c.ServerAuthFile}}...)
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if fh, err := os.Open(f.path); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, config.Invalid(f.name, f.path, "cannot read: "+err.Error()))
		} else {
			_ = fh.Close() // a readability probe
		}
	}
	return errors.Join(errs...)
}

// checkBrokerURL accepts what paho dials: tcp/mqtt, ssl/tls/mqtts, ws and wss with a host and port.
func checkBrokerURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return errors.New("not a URL")
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps", "ws", "wss":
	default:
		return errors.New("want tcp://, ssl://, ws:// or wss://host:port")
	}
	if u.Hostname() == "" || u.Port() == "" {
		return errors.New("want a host and a port")
	}
	return nil
}

// parseUsers reads "user:password,user:password"; errors never contain a password.
func parseUsers(s string) (map[string]string, error) {
	users := map[string]string{}
	for i, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		user, pass, ok := strings.Cut(pair, ":")
		user = strings.TrimSpace(user)
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("entry %d: want user:password", i+1)
		}
		users[user] = pass
	}
	return users, nil
}

// tcpAddr is MQTT_SERVER_TCP_ADDR, "" when it is off.
func (c *Config) tcpAddr() string {
	if strings.EqualFold(c.ServerTCPAddr, "off") {
		return ""
	}
	return c.ServerTCPAddr
}

// clientID is MQTT_CLIENT_ID or CONNECTOR_NAME.
func (c *Config) clientID() string {
	if c.ClientID != "" {
		return c.ClientID
	}
	return c.ConnectorName
}

// clientTLS is the TLS configuration for ssl:// and wss:// brokers.
func (c *Config) clientTLS() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if err := appendPEM(pool, "MQTT_CA_FILE", c.CAFile); err != nil {
			return nil, err
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("MQTT_CERT_FILE=%q, MQTT_KEY_FILE=%q: %w", c.CertFile, c.KeyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// serverTLS is the TLS configuration of the embedded server's TLS listeners (nil without a cert).
func (c *Config) serverTLS() (*tls.Config, error) {
	if c.ServerCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.ServerCertFile, c.ServerKeyFile)
	if err != nil {
		return nil, fmt.Errorf("MQTT_SERVER_CERT_FILE=%q, MQTT_SERVER_KEY_FILE=%q: %w", c.ServerCertFile, c.ServerKeyFile, err)
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ServerClientCAFile != "" {
		pool := x509.NewCertPool()
		if err := appendPEM(pool, "MQTT_SERVER_CLIENT_CA_FILE", c.ServerClientCAFile); err != nil {
			return nil, err
		}
		t.ClientCAs, t.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return t, nil
}

func appendPEM(pool *x509.CertPool, name, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", name, path, err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s=%q: no PEM certificate in the file", name, path)
	}
	return nil
}
