// Package mqttsource is the MQTT source connector, the IoT gateway: devices publish MQTT, the
// connector maps each message's MQTT topic to a Danube topic (MQTT_TOPIC_MAPPINGS, first match
// wins) and publishes it there, keyed by the MQTT topic so that each device topic stays in order.
//
// It runs in one of two modes. In client mode it subscribes to an MQTT broker with paho, in a
// persistent session by default (the broker queues messages while the connector is down). In server
// mode it is itself an MQTT server (mochi-mqtt) that devices connect to.
//
// No message is confirmed before Danube has it: the PUBACK of a QoS 1 message and the PUBREC of a
// QoS 2 message (after which the sender forgets it) go out only from the record's OnAck callback,
// i.e. after Danube acknowledged the publish. A message that was not acknowledged when the
// connector stopped or crashed is delivered again: by the broker after the client reconnects, or by
// the device after it reconnects to the server. QoS 0 is at most once, as MQTT defines it.
package mqttsource

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/topicmap"
)

// Seq numbers the messages of one run. MQTT has no position to resume from: each message is
// confirmed on its own (PUBACK/PUBREC from OnAck) and the broker or the device keeps what was not
// confirmed. Seq only satisfies the runtime's watermark; Commit has nothing to do with it.
type Seq uint64

// Attribute names set on every published message.
const (
	AttrTopic    = "mqtt.topic"     // the MQTT topic the message was published to
	AttrQoS      = "mqtt.qos"       // 0, 1 or 2: the QoS it was delivered with
	AttrRetain   = "mqtt.retain"    // "true" for a retained message
	AttrDup      = "mqtt.dup"       // "true" when MQTT flagged it as a redelivery
	AttrClientID = "mqtt.client_id" // server mode: the publishing device's client id
	// AttrUserPrefix prefixes MQTT 5 user properties (server mode): mqtt.user.<key>.
	AttrUserPrefix = "mqtt.user."
)

// delivery is one MQTT message as either mode hands it over.
type delivery struct {
	topic    string
	payload  []byte
	qos      byte
	retain   bool
	dup      bool
	clientID string      // server mode
	user     [][2]string // MQTT 5 user properties (server mode)
	ack      func()      // confirms the message to its sender; nil for QoS 0
}

// ingress is the MQTT side of a mode: it delivers messages into Source.in.
type ingress interface {
	start(ctx context.Context) error
	health() error
	stop()
}

// Source is the connector.
type Source struct {
	cfg      *Config
	log      *slog.Logger
	table    *topicmap.Table
	ing      ingress
	in       chan delivery // bounded: a full buffer holds the MQTT side back
	acks     chan func()   // confirmations, sent in order by one goroutine (OnAck must not block)
	ackDone  chan struct{}
	stopping chan struct{} // closed at Shutdown: releases deliveries waiting for room in `in`
	seq      Seq

	dropped metric.Int64Counter
	warn    map[string]*rate.Sometimes
}

// New returns the connector for cfg (MainSource calls it).
func New(cfg *Config, res runtime.Resources) (runtime.SourceConnector[Seq], error) {
	return newSource(cfg, res)
}

func newSource(cfg *Config, res runtime.Resources) (*Source, error) {
	table, err := topicmap.Parse(cfg.Mappings)
	if err != nil {
		return nil, fmt.Errorf("MQTT_TOPIC_MAPPINGS: %w", err)
	}
	dropped, err := res.Meter.Int64Counter("mqtt.messages.dropped",
		metric.WithDescription("MQTT messages acknowledged without publishing, by reason (unmapped, oversized, retained)"))
	if err != nil {
		return nil, err
	}
	log := res.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inFlight := max(cfg.MaxInFlight, 1)
	s := &Source{
		cfg: cfg, log: log, table: table, dropped: dropped,
		in:       make(chan delivery, inFlight),
		acks:     make(chan func(), inFlight+max(cfg.BatchSize, 1)),
		ackDone:  make(chan struct{}),
		stopping: make(chan struct{}),
		warn:     map[string]*rate.Sometimes{},
	}
	for _, reason := range []string{"unmapped", "oversized", "retained"} {
		s.warn[reason] = &rate.Sometimes{First: 1, Interval: 10 * time.Second}
	}
	if cfg.Mode == ServerMode {
		s.ing, err = newServer(s)
	} else {
		s.ing, err = newClient(s)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Initialize starts the MQTT side: connecting and subscribing (client) or listening (server).
func (s *Source) Initialize(ctx context.Context) error {
	go func() {
		defer close(s.ackDone)
		for ack := range s.acks {
			ack()
		}
	}()
	if err := s.ing.start(ctx); err != nil {
		close(s.acks)
		<-s.ackDone
		return err
	}
	return nil
}

// deliver hands d to Poll, waiting while the buffer is full (that wait is the backpressure that
// reaches the broker or the device). At shutdown d is left unconfirmed and will be sent again.
func (s *Source) deliver(d delivery) {
	select {
	case s.in <- d:
	case <-s.stopping:
	}
}

// Poll returns the next messages, at least one and at most BATCH_SIZE, blocking until there is one.
func (s *Source) Poll(ctx context.Context) ([]runtime.SourceRecord[Seq], error) {
	var recs []runtime.SourceRecord[Seq]
	for len(recs) == 0 {
		select {
		case d := <-s.in:
			recs = s.add(recs, d)
		case <-ctx.Done():
			return nil, nil
		}
		for len(recs) < s.cfg.BatchSize {
			select {
			case d := <-s.in:
				recs = s.add(recs, d)
				continue
			default:
			}
			break
		}
	}
	return recs, nil
}

// add appends d's record to recs, or confirms and counts d when it must not be published.
func (s *Source) add(recs []runtime.SourceRecord[Seq], d delivery) []runtime.SourceRecord[Seq] {
	topic, ok := s.table.Lookup(d.topic)
	switch {
	case !ok:
		s.drop(d, "unmapped", "MQTT message on a topic that matches no MQTT_TOPIC_MAPPINGS filter; acknowledged, not published")
		return recs
	case len(d.payload) > s.cfg.MaxPayload:
		s.drop(d, "oversized", fmt.Sprintf("MQTT payload of %d bytes is above MQTT_MAX_PAYLOAD_BYTES=%d; acknowledged, not published", len(d.payload), s.cfg.MaxPayload))
		return recs
	case d.retain && s.cfg.Retained == SkipRetained && s.cfg.Mode == ClientMode:
		s.drop(d, "retained", "retained MQTT message skipped (MQTT_RETAINED=skip)")
		return recs
	}
	attrs := make(map[string]string, 4+len(d.user)+1)
	attrs[AttrTopic] = d.topic
	attrs[AttrQoS] = strconv.Itoa(int(d.qos))
	attrs[AttrRetain] = strconv.FormatBool(d.retain)
	attrs[AttrDup] = strconv.FormatBool(d.dup)
	if d.clientID != "" {
		attrs[AttrClientID] = d.clientID
	}
	for _, kv := range d.user {
		attrs[AttrUserPrefix+kv[0]] = kv[1]
	}
	s.seq++
	r := runtime.NewSourceRecord(topic, d.payload, s.seq).WithKey(d.topic)
	r.Attributes = attrs
	if ack := d.ack; ack != nil {
		r.OnAck = func(err error) {
			if err == nil { // Danube has it: confirm it to MQTT. Otherwise MQTT sends it again.
				s.acks <- ack
			}
		}
	}
	return append(recs, r)
}

// drop confirms d without publishing it, counts it and logs at a bounded rate (10 s per reason).
func (s *Source) drop(d delivery, reason, msg string) {
	if d.ack != nil {
		s.acks <- d.ack
	}
	s.dropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	s.warn[reason].Do(func() {
		s.log.Warn(msg, "mqtt_topic", d.topic, "qos", d.qos, "bytes", len(d.payload), "reason", reason, "note", "logged at most every 10s; see mqtt_messages_dropped_total")
	})
}

// Commit does nothing: each message is confirmed to MQTT by its own OnAck once Danube acked it,
// which is the per-message commit MQTT has. The positions only feed the runtime's watermark.
func (s *Source) Commit(context.Context, []Seq) error { return nil }

// HealthCheck is not ready while the client is disconnected or not yet subscribed.
func (s *Source) HealthCheck(context.Context) error { return s.ing.health() }

// Shutdown sends the confirmations of everything Danube acked, then leaves MQTT. Messages still
// buffered were not published and stay unconfirmed: they are delivered again after a restart.
func (s *Source) Shutdown(context.Context) error {
	close(s.stopping)
	close(s.acks)
	<-s.ackDone
	s.ing.stop()
	return nil
}
