package mqttsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// client is client mode: a paho client with manual acknowledgements. paho reconnects by itself
// (trying the MQTT_BROKER_URL list in order); every (re)connection subscribes to the mapping
// filters again, so a broker that lost the session (restart without persistence, clean session)
// gets the subscriptions back. Messages the broker resends after a reconnect carry mqtt.dup=true.
type client struct {
	s    *Source
	c    mqtt.Client
	done chan struct{} // closed by stop: ends a subscribe retry loop

	mu         sync.Mutex
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
		SetUsername(cfg.Username).
		SetPassword(cfg.Password.Reveal()).
		SetCleanSession(cfg.CleanSession).
		SetKeepAlive(cfg.KeepAlive.D().Truncate(time.Second)).
		SetConnectTimeout(cfg.ConnectTimeout.D()).
		SetTLSConfig(tlsCfg).
		SetAutoAckDisabled(true). // PUBACK/PUBREC only from OnAck
		SetOrderMatters(true).    // the handler runs in arrival order; a full buffer holds reading back
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(cfg.RetryBackoff.D()).
		SetMaxReconnectInterval(cfg.RetryMaxBackoff.D()).
		SetDefaultPublishHandler(cl.handle). // messages of the persisted session arrive before SUBSCRIBE is answered
		SetOnConnectHandler(cl.onConnect).
		SetConnectionLostHandler(cl.onLost).
		SetConnectionNotificationHandler(cl.onNotification)
	for _, u := range cfg.BrokerURLs {
		opts.AddBroker(strings.TrimSpace(u))
	}
	cl.c = mqtt.NewClient(opts)
	return cl, nil
}

// start connects in the background (paho retries until it works); /readyz says how it goes.
func (cl *client) start(context.Context) error {
	cl.c.Connect()
	return nil
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
	tok := c.SubscribeMultiple(filters, cl.handle)
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
		cl.set(func() { cl.lastErr = fmt.Errorf("connect failed: %w", n.Reason) })
		cl.s.log.Warn("MQTT connect failed; retrying", "err", n.Reason)
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
