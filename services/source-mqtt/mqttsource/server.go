package mqttsource

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

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
}

func newServer(s *Source) (*server, error) {
	cfg := s.cfg
	caps := mqtt.NewDefaultServerCapabilities()
	caps.ReceiveMaximum = uint16(min(max(cfg.MaxInFlight, 1), 65535))
	// A hard cap on what mochi reads at all; payloads between MQTT_MAX_PAYLOAD_BYTES and this are
	// read, acknowledged and counted as oversized (mochi disconnects a client above it).
	caps.MaximumPacketSize = uint32(min(cfg.MaxPayload+64<<10, 256<<20))
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: s.log.With("component", "mqtt-server")})

	if err := addAuth(srv, cfg); err != nil {
		return nil, err
	}
	if err := srv.AddHook(&ingest{s: s}, nil); err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.serverTLS()
	if err != nil {
		return nil, err
	}
	var ls []listeners.Listener
	if addr := cfg.tcpAddr(); addr != "" {
		ls = append(ls, listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr}))
	}
	if cfg.ServerTLSAddr != "" {
		ls = append(ls, listeners.NewTCP(listeners.Config{ID: "tls", Address: cfg.ServerTLSAddr, TLSConfig: tlsCfg}))
	}
	if cfg.ServerWSAddr != "" {
		ls = append(ls, listeners.NewWebsocket(listeners.Config{ID: "ws", Address: cfg.ServerWSAddr, TLSConfig: tlsCfg}))
	}
	return &server{s: s, srv: srv, listeners: ls}, nil
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
func (sv *server) stop() { _ = sv.srv.Close() }

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

// ingest hands device publishes to the connector and acknowledges them itself (see server).
type ingest struct {
	mqtt.HookBase
	s *Source
}

func (h *ingest) ID() string { return "danube-ingest" }

func (h *ingest) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *ingest) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
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
