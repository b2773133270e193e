package mqttsource

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// server is server mode: an embedded mochi-mqtt server. Its ingest hook takes every PUBLISH from a
// device before mochi acknowledges it and returns packets.ErrRejectPacket, which makes mochi skip
// its own PUBACK/PUBREC (and its delivery to MQTT subscribers and its retained store); the hook's
// ack, run from OnAck once Danube acked the record, writes the PUBACK (QoS 1) or registers and
// writes the PUBREC (QoS 2, so that mochi answers the device's PUBREL with PUBCOMP). Publishes of
// one connection are pipelined: the device may have up to its receive maximum (MAX_IN_FLIGHT,
// advertised to MQTT 5 devices) unacknowledged messages. When the buffer is full the hook waits,
// which stops reading that device's connection: backpressure reaches the device through TCP.
type server struct {
	s         *Source
	srv       *mqtt.Server
	listeners []listeners.Listener
	guard     *guard
}

func newServer(s *Source) (*server, error) {
	cfg := s.cfg
	caps := mqtt.NewDefaultServerCapabilities()
	caps.ReceiveMaximum = uint16(min(max(cfg.MaxInFlight, 1), 65535))
	// No limit on what mochi reads once a device logged in (the guard bounds the CONNECT): a
	// payload above MQTT_MAX_PAYLOAD_BYTES is read whole, acknowledged and counted, since refusing
	// it means closing the connection, and the device would send it again forever.
	caps.MaximumPacketSize = 0
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: s.log.With("component", "mqtt-server")})

	if err := addAuth(srv, cfg); err != nil {
		return nil, err
	}
	if err := srv.AddHook(&ingest{s: s}, nil); err != nil {
		return nil, err
	}
	if err := srv.AddHook(&refusedLogin{log: s.log}, nil); err != nil { // last: see refusedLogin
		return nil, err
	}
	tlsCfg, err := cfg.serverTLS()
	if err != nil {
		return nil, err
	}
	g := &guard{log: s.log, max: int64(cfg.ServerMaxClients), connectTimeout: cfg.ServerConnectTimeout.D(), maxConnect: cfg.MaxPayload + 64<<10,
		full: rate.Sometimes{First: 1, Interval: 10 * time.Second}, slow: rate.Sometimes{First: 1, Interval: 10 * time.Second}}
	var ls []listeners.Listener
	if addr := cfg.tcpAddr(); addr != "" {
		ls = append(ls, guarded{listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr}), g})
	}
	if cfg.ServerTLSAddr != "" {
		ls = append(ls, guarded{listeners.NewTCP(listeners.Config{ID: "tls", Address: cfg.ServerTLSAddr, TLSConfig: tlsCfg}), g})
	}
	if cfg.ServerWSAddr != "" {
		ls = append(ls, guarded{listeners.NewWebsocket(listeners.Config{ID: "ws", Address: cfg.ServerWSAddr, TLSConfig: tlsCfg}), g})
	}
	return &server{s: s, srv: srv, listeners: ls, guard: g}, nil
}

// guard bounds what a connection costs before it logged in, on every listener: at most
// MQTT_SERVER_MAX_CLIENTS connections at once, counted from the accept (sockets that never send
// CONNECT count too), MQTT_SERVER_CONNECT_TIMEOUT_MS to send the CONNECT, and a CONNECT of at
// most MQTT_MAX_PAYLOAD_BYTES + 64 KiB (it may carry a will message). It also logs how each
// connection ended: mochi's listeners log that as a WARN with an empty message.
type guard struct {
	log            *slog.Logger
	max            int64
	connectTimeout time.Duration
	maxConnect     int
	active         atomic.Int64
	full, slow     rate.Sometimes // log refusals at most every 10 s: a flood must not flood the log

	// attaching is read-held from the accept until mochi reads the connection's first byte, and
	// write-held by stop: mochi counts a connection (WaitGroup.Add) inside the goroutine that serves
	// it, and its Close waits on that count, so a connection still attaching when Close starts is a
	// WaitGroup misuse (and a data race under -race). By its first read mochi has counted it.
	attaching sync.RWMutex
	closing   bool // under attaching
}

// guarded is a mochi listener whose connections go through its guard.
type guarded struct {
	listeners.Listener
	g *guard
}

func (l guarded) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.g.serve(id, c, establish)
		return nil // logged by serve
	})
}

func (g *guard) serve(listener string, c net.Conn, establish listeners.EstablishFn) {
	log := g.log.With("listener", listener, "remote", c.RemoteAddr().String())
	g.attaching.RLock()
	attached := sync.OnceFunc(g.attaching.RUnlock)
	defer attached()
	if g.closing {
		_ = c.Close()
		return
	}
	if g.active.Add(1) > g.max {
		g.active.Add(-1)
		_ = c.Close()
		g.full.Do(func() {
			log.Warn("MQTT connection refused: MQTT_SERVER_MAX_CLIENTS connections are open", "max", g.max, "note", "logged at most every 10s")
		})
		return
	}
	defer g.active.Add(-1)
	_ = c.SetDeadline(time.Now().Add(g.connectTimeout)) // mochi sets the keepalive's once CONNECT is read
	err := establish(listener, &connectCap{Conn: c, r: bufio.NewReaderSize(c, 16), max: g.maxConnect, reading: attached})
	var code packets.Code
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &code) && code.Code < packets.ErrUnspecifiedError.Code:
		log.Debug("MQTT connection closed", "err", err)
	case errors.Is(err, packets.ErrBadUsernameOrPassword): // refusedLogin logged it, naming the device
	case errors.Is(err, os.ErrDeadlineExceeded) && strings.HasPrefix(err.Error(), "read connection"):
		g.slow.Do(func() {
			log.Warn("MQTT connection closed: no CONNECT within MQTT_SERVER_CONNECT_TIMEOUT_MS", "timeout", g.connectTimeout, "note", "logged at most every 10s")
		})
	default:
		log.Info("MQTT connection closed", "err", err)
	}
}

// connectCap refuses a first packet (the CONNECT) above max bytes before mochi allocates it: mochi
// reads packets of any size (see newServer), and a connection that has not logged in must not cost
// that much.
type connectCap struct {
	net.Conn
	r       *bufio.Reader
	max     int
	checked bool
	reading func() // called at the first read
}

func (c *connectCap) Read(p []byte) (int, error) {
	if !c.checked {
		c.reading()
		if err := c.check(); err != nil {
			return 0, err
		}
		c.checked = true
	}
	return c.r.Read(p)
}

// check reads the first packet's fixed header ahead: a byte of type and flags, then the remaining
// length in one to four bytes of seven bits each.
func (c *connectCap) check() error {
	n := 0
	for i := 1; i <= 4; i++ {
		b, err := c.r.Peek(i + 1)
		if err != nil {
			return err
		}
		n |= int(b[i]&0x7f) << (7 * (i - 1))
		if b[i]&0x80 == 0 {
			break
		}
	}
	if n > c.max {
		return fmt.Errorf("first packet of %d bytes: more than the %d bytes a CONNECT may have (MQTT_MAX_PAYLOAD_BYTES + 64 KiB)", n, c.max)
	}
	return nil
}

// start binds the listeners (a busy port fails here, naming the address) and serves.
func (sv *server) start(context.Context) error {
	var errs []error
	for _, l := range sv.listeners {
		if err := sv.srv.AddListener(l); err != nil {
			errs = append(errs, fmt.Errorf("MQTT server listener %s on %s: %w", l.ID(), l.Address(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		_ = sv.srv.Close()
		return err
	}
	if err := sv.srv.Serve(); err != nil {
		_ = sv.srv.Close()
		return fmt.Errorf("MQTT server: %w", err)
	}
	sv.s.log.Info("MQTT server listening", "tcp", sv.s.cfg.tcpAddr(), "tls", sv.s.cfg.ServerTLSAddr, "ws", sv.s.cfg.ServerWSAddr)
	return nil
}

func (sv *server) health() error { return nil }

// stop closes the listeners and disconnects every device; unacknowledged publishes are resent by
// the devices when they reconnect (MQTT 3.1.1 devices need a persistent session for that).
func (sv *server) stop() {
	sv.guard.attaching.Lock()
	sv.guard.closing = true
	sv.guard.attaching.Unlock()
	_ = sv.srv.Close()
}

// addAuth installs who may connect: MQTT_SERVER_USERS, the MQTT_SERVER_AUTH_FILE ledger (with its
// ACLs), or anyone with MQTT_SERVER_ALLOW_ANONYMOUS.
func addAuth(srv *mqtt.Server, cfg *Config) error {
	if cfg.ServerAnonymous {
		return srv.AddHook(new(auth.AllowHook), nil)
	}
	if cfg.ServerAuthFile != "" {
		b, err := os.ReadFile(cfg.ServerAuthFile)
		if err != nil {
			return fmt.Errorf("MQTT_SERVER_AUTH_FILE=%q: %w", cfg.ServerAuthFile, err)
		}
		if err := srv.AddHook(new(auth.Hook), &auth.Options{Data: b}); err != nil {
			return fmt.Errorf("MQTT_SERVER_AUTH_FILE=%q: %w", cfg.ServerAuthFile, err)
		}
	}
	if cfg.ServerUsers.IsSet() {
		users, err := parseUsers(cfg.ServerUsers.Reveal())
		if err != nil {
			return fmt.Errorf("MQTT_SERVER_USERS: %w", err)
		}
		return srv.AddHook(&userAuth{users: users, acl: cfg.ServerAuthFile == ""}, nil)
	}
	return nil
}

// userAuth checks MQTT_SERVER_USERS; without an auth ledger it also allows every topic.
type userAuth struct {
	mqtt.HookBase
	users map[string]string
	acl   bool
}

func (h *userAuth) ID() string { return "danube-users" }

func (h *userAuth) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || (h.acl && b == mqtt.OnACLCheck)
}

func (h *userAuth) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	want, ok := h.users[string(pk.Connect.Username)]
	return ok && subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
}

func (h *userAuth) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// refusedLogin is the last OnConnectAuthenticate hook: mochi asks it only when every auth hook
// before it refused the device, so it logs the refusal, naming the device (mochi's own log names
// nobody), and refuses too.
type refusedLogin struct {
	mqtt.HookBase
	log *slog.Logger
}

func (h *refusedLogin) ID() string { return "danube-refused-login" }

func (h *refusedLogin) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate }

func (h *refusedLogin) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	h.log.Warn("MQTT device login refused: unknown user or wrong password", "client_id", cl.ID, "user", string(pk.Connect.Username),
		"remote", cl.Net.Remote, "listener", cl.Net.Listener)
	return false
}

// ingest hands device publishes to the connector and acknowledges them itself (see server).
type ingest struct {
	mqtt.HookBase
	s *Source
}

func (h *ingest) ID() string { return "danube-ingest" }

func (h *ingest) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnPacketRead }

// OnPacketRead acknowledges and counts a device's publish to a $SYS topic, which mochi ignores
// without acknowledging it: a QoS 1 or 2 device would wait for the acknowledgement forever.
func (h *ingest) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t := pk.TopicName; pk.FixedHeader.Type == packets.Publish && len(t) >= len(mqtt.SysPrefix) && strings.EqualFold(t[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
		if pk.FixedHeader.Qos > 0 {
			(&serverAck{cl: cl, id: pk.PacketID, qos: pk.FixedHeader.Qos}).Ack()
		}
		h.s.count(t, cl.ID, "sys", len(pk.Payload))
	}
	return pk, nil
}

func (h *ingest) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if len(pk.Payload) > h.s.cfg.MaxPayload { // acknowledged now: no copy, no wait for room
		if pk.FixedHeader.Qos > 0 {
			(&serverAck{cl: cl, id: pk.PacketID, qos: pk.FixedHeader.Qos}).Ack()
		}
		h.s.count(pk.TopicName, cl.ID, "oversized", len(pk.Payload))
		return pk, packets.ErrRejectPacket
	}
	d := delivery{
		topic: pk.TopicName, payload: bytes.Clone(pk.Payload), qos: pk.FixedHeader.Qos,
		retain: pk.FixedHeader.Retain, dup: pk.FixedHeader.Dup, clientID: cl.ID,
		props: properties(&pk.Properties),
	}
	if d.qos > 0 {
		d.ack = &serverAck{cl: cl, id: pk.PacketID, qos: d.qos}
	}
	h.s.deliver(d)
	return pk, packets.ErrRejectPacket // mochi sends no ack of its own
}

// properties returns the MQTT 5 publish properties a device sent as attributes (nil when none):
// user properties, content type, response topic, correlation data and the payload format. An MQTT
// 3.1.1 device sends none. The topic alias is resolved by mochi before the hook; the message
// expiry interval and subscription identifiers concern delivery to MQTT subscribers, not Danube.
func properties(p *packets.Properties) map[string]string {
	if len(p.User) == 0 && p.ContentType == "" && p.ResponseTopic == "" && len(p.CorrelationData) == 0 && !(p.PayloadFormatFlag && p.PayloadFormat == 1) {
		return nil
	}
	attrs := make(map[string]string, len(p.User)+9) // room for the common attributes too
	for _, u := range p.User {
		attrs[AttrUserPrefix+u.Key] = u.Val
	}
	if p.ContentType != "" {
		attrs[AttrContentType] = p.ContentType
	}
	if p.ResponseTopic != "" {
		attrs[AttrResponseTopic] = p.ResponseTopic
	}
	if len(p.CorrelationData) > 0 {
		attrs[AttrCorrelationData] = base64.StdEncoding.EncodeToString(p.CorrelationData)
	}
	if p.PayloadFormatFlag && p.PayloadFormat == 1 {
		attrs[AttrPayloadFormat] = "utf-8"
	}
	return attrs
}

// serverAck confirms packet id to the device: PUBACK for QoS 1; for QoS 2 the PUBREC, stored in
// the client's inflight table first so that mochi completes the flow on PUBREL. A device that
// disconnected meanwhile gets nothing and resends the message.
type serverAck struct {
	cl  *mqtt.Client
	id  uint16
	qos byte
}

func (a *serverAck) Ack() {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: a.id, Created: time.Now().Unix()}
	if a.qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
		a.cl.State.Inflight.Set(ack)
	}
	_ = a.cl.WritePacket(ack)
}
