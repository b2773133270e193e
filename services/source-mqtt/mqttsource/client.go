package mqttsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// client is client mode: a paho client with manual acknowledgements. The first connection is made
// in start (Initialize), so that the runtime waits for a broker that is not up yet and a refused
// login stops the connector; after it paho reconnects by itself (trying the MQTT_BROKER_URL list in
// order, waits doubling from 1 s to RETRY_MAX_BACKOFF_MS). Every (re)connection subscribes to the
// mapping filters again, so a broker that lost the session (restart without persistence, clean
// session) gets the subscriptions back. Messages the broker resends after a reconnect carry
// mqtt.dup=true.
type client struct {
	s    *Source
	c    mqtt.Client
	done chan struct{} // closed by stop: ends a subscribe retry loop

	mu         sync.Mutex
	up         bool // the first connection succeeded: paho reconnects from now on
	connected  bool
	subscribed bool
	lastErr    error
}

func newClient(s *Source) (*client, error) {
	cfg := s.cfg
	tlsCfg, err := cfg.clientTLS()
	if err != nil {
		return nil, err
	}
	cl := &client{s: s, done: make(chan struct{}), lastErr: errors.New("connecting")}
	opts := mqtt.NewClientOptions().
		SetClientID(cfg.clientID()).
		SetProtocolVersion(4). // MQTT 3.1.1; no fallback to 3.1, whose answer would hide why 3.1.1 was refused
		SetUsername(cfg.Username).
		SetPassword(cfg.Password.Reveal()).
		SetCleanSession(cfg.CleanSession).
		SetKeepAlive(cfg.KeepAlive.D().Truncate(time.Second)).
		SetConnectTimeout(cfg.ConnectTimeout.D()).
		SetTLSConfig(tlsCfg).
		SetAutoAckDisabled(true). // PUBACK/PUBREC only from OnAck
		SetOrderMatters(true).    // the handler runs in arrival order; a full buffer holds reading back
		SetAutoReconnect(true).
		SetMaxReconnectInterval(cfg.RetryMaxBackoff.D()).
		// The only handler: subscriptions get none, because paho calls every subscription's
		// handler whose filter matches a message (factory/+/temp and factory/# would publish it
		// twice); this one runs once per message, and the mapping picks its first match. It also
		// takes the messages of the persisted session, which arrive before SUBSCRIBE is answered.
		SetDefaultPublishHandler(cl.handle).
		SetOnConnectHandler(cl.onConnect).
		SetConnectionLostHandler(cl.onLost).
		SetConnectionNotificationHandler(cl.onNotification)
	for _, u := range cfg.BrokerURLs {
		opts.AddBroker(strings.TrimSpace(u.Reveal()))
	}
	cl.c = mqtt.NewClient(opts)
	return cl, nil
}

// start makes the first connection (one attempt per broker URL). A broker that cannot be reached
// is runtime.Disconnected: the runtime waits and calls start again. A broker that refuses the
// login or the client id is an error that waiting cannot fix: the connector stops, saying so.
func (cl *client) start(ctx context.Context) error {
	tok := cl.c.Connect().(*mqtt.ConnectToken)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		cl.c.Disconnect(0)
		return ctx.Err()
	}
	err := tok.Error()
	if err == nil {
		cl.set(func() { cl.up = true })
		return nil
	}
	cfg := cl.s.cfg
	switch tok.ReturnCode() {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		return fmt.Errorf("MQTT broker %s refused the login of client %q as user %q: %w; check MQTT_USERNAME and MQTT_PASSWORD (or the user in MQTT_BROKER_URL) and the broker's access rules",
			urlList(cfg.BrokerURLs), cfg.clientID(), cfg.Username, err)
	case packets.ErrRefusedIDRejected:
		return fmt.Errorf("MQTT broker %s rejected the client id %q: %w; set MQTT_CLIENT_ID to an id it accepts", urlList(cfg.BrokerURLs), cfg.clientID(), err)
	case packets.ErrRefusedBadProtocolVersion:
		return fmt.Errorf("MQTT broker %s does not speak MQTT 3.1.1: %w", urlList(cfg.BrokerURLs), err)
	}
	return runtime.Disconnected(fmt.Errorf("MQTT broker %s not reachable: %w", urlList(cfg.BrokerURLs), err))
}

// urlList prints the broker URLs, passwords redacted.
func urlList(urls []config.URL) string {
	s := make([]string, len(urls))
	for i, u := range urls {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

func (cl *client) handle(_ mqtt.Client, m mqtt.Message) {
	d := delivery{topic: m.Topic(), payload: m.Payload(), qos: m.Qos(), retain: m.Retained(), dup: m.Duplicate()}
	if d.qos > 0 {
		d.ack = m // its Ack sends the PUBACK (QoS 1) or PUBREC (QoS 2)
	}
	cl.s.deliver(d)
}

func (cl *client) onConnect(c mqtt.Client) {
	cl.set(func() { cl.connected, cl.subscribed, cl.lastErr = true, false, errors.New("subscribing") })
	cl.s.log.Info("connected to the MQTT broker; subscribing", "client_id", cl.s.cfg.clientID(), "filters", cl.s.table.Subscriptions())
	filters := map[string]byte{}
	for _, f := range cl.s.table.Subscriptions() {
		filters[f] = byte(cl.s.cfg.QoS)
	}
	for attempt := 1; ; attempt++ {
		err := cl.subscribe(c, filters)
		if err == nil {
			cl.set(func() { cl.subscribed, cl.lastErr = true, nil })
			return
		}
		cl.set(func() { cl.lastErr = err })
		wait := cl.s.cfg.Retry().Next(attempt)
		cl.s.log.Warn("MQTT subscribe failed; retrying", "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-cl.done:
			return
		case <-time.After(wait):
		}
		if !c.IsConnectionOpen() {
			return // the next connection subscribes again
		}
	}
}

func (cl *client) subscribe(c mqtt.Client, filters map[string]byte) error {
	tok := c.SubscribeMultiple(filters, nil) // nil: messages go to the default handler, once each
	if !tok.WaitTimeout(cl.s.cfg.ConnectTimeout.D()) {
		return errors.New("MQTT subscribe: no SUBACK in time")
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("MQTT subscribe: %w", err)
	}
	var errs []error
	for f, granted := range tok.(*mqtt.SubscribeToken).Result() {
		if granted == 0x80 {
			errs = append(errs, fmt.Errorf("MQTT broker refused the subscription to %q (SUBACK 0x80: not authorized or invalid filter)", f))
		}
	}
	return errors.Join(errs...)
}

func (cl *client) onLost(_ mqtt.Client, err error) {
	cl.set(func() { cl.connected, cl.subscribed, cl.lastErr = false, false, fmt.Errorf("connection lost: %w", err) })
	cl.s.log.Warn("MQTT connection lost; paho reconnects, unacknowledged messages will be resent by the broker", "err", err)
}

func (cl *client) onNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	switch n := n.(type) {
	case mqtt.ConnectionNotificationFailed:
		var up bool
		cl.set(func() { cl.lastErr, up = fmt.Errorf("connect failed: %w", n.Reason), cl.up })
		if up { // the first connection's failures are start's to report
			cl.s.log.Warn("MQTT reconnect failed; retrying with a growing wait", "client_id", cl.s.cfg.clientID(), "err", n.Reason)
		}
	case mqtt.ConnectionNotificationBrokerFailed:
		cl.set(func() { cl.lastErr = fmt.Errorf("connect to %s failed: %w", n.Broker.Redacted(), n.Reason) })
	}
}

func (cl *client) set(f func()) {
	cl.mu.Lock()
	f()
	cl.mu.Unlock()
}

// health is nil once connected and subscribed.
func (cl *client) health() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.connected && cl.subscribed {
		return nil
	}
	return fmt.Errorf("MQTT client %q: %w", cl.s.cfg.clientID(), cl.lastErr)
}

// stop disconnects, giving paho a moment to write the last acknowledgements.
func (cl *client) stop() {
	close(cl.done)
	cl.c.Disconnect(500)
}
