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
)

// Attribute names of MQTT 5 publish properties, set in server mode when the device sent them
// (paho, the client mode's library, speaks MQTT 3.1.1, which has no properties).
const (
	// AttrUserPrefix prefixes MQTT 5 user properties: mqtt.user.<key>. A key sent more than once
	// keeps its last value.
	AttrUserPrefix      = "mqtt.user."
	AttrContentType     = "mqtt.content_type"     // the Content Type property (a MIME type)
	AttrResponseTopic   = "mqtt.response_topic"   // the Response Topic property
	AttrCorrelationData = "mqtt.correlation_data" // the Correlation Data property, base64 (standard, padded)
	AttrPayloadFormat   = "mqtt.payload_format"   // "utf-8" when the Payload Format Indicator is 1
)

// acker confirms a message to its sender: paho's message (PUBACK/PUBREC to the broker) or the
// embedded server's acknowledgement of a device's publish.
type acker interface{ Ack() }

// delivery is one MQTT message as either mode hands it over.
type delivery struct {
	topic    string
	payload  []byte
	qos      byte
	retain   bool
	dup      bool
	clientID string            // server mode
	props    map[string]string // server mode: MQTT 5 properties as attributes, nil when none
	ack      acker             // nil for QoS 0
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
	acks     chan acker    // confirmations, sent in order by one goroutine (OnAck must not block)
	ackDone  chan struct{}
	stopping chan struct{} // closed at Shutdown: releases deliveries waiting for room in `in`
	started  bool          // Initialize succeeded: the acknowledgement goroutine runs
	seq      Seq
	routes   map[routeKey]route // Poll's cache of mapping results and attribute sets

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
		metric.WithDescription("MQTT messages acknowledged without publishing, by reason (unmapped, oversized, retained, sys)"))
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
		acks:     make(chan acker, inFlight+max(cfg.BatchSize, 1)),
		routes:   make(map[routeKey]route),
		ackDone:  make(chan struct{}),
		stopping: make(chan struct{}),
		warn:     map[string]*rate.Sometimes{},
	}
	for _, reason := range []string{"unmapped", "oversized", "retained", "sys"} {
		s.warn[reason] = &rate.Sometimes{First: 1, Interval: 10 * time.Second}
	}
	if cfg.Mode == ServerMode {
		var sv *server
		if sv, err = newServer(s); err == nil {
			s.ing = sv
			name := metric.WithAttributes(attribute.String("connector", res.Name)) // observable instruments set their own
			_, err = res.Meter.Int64ObservableGauge("mqtt.server.connections",
				metric.WithDescription("Connections open to the embedded MQTT server, counted from the accept (those that have not sent CONNECT yet too); MQTT_SERVER_MAX_CLIENTS bounds them."),
				metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
					o.Observe(sv.guard.active.Load(), name)
					return nil
				}))
		}
	} else {
		s.ing, err = newClient(s)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Initialize starts the MQTT side: connecting (client) or listening (server). The runtime calls it
// again after a runtime.Disconnected error (the MQTT broker is not up yet), so nothing runs until
// it succeeded.
func (s *Source) Initialize(ctx context.Context) error {
	if err := s.ing.start(ctx); err != nil {
		return err
	}
	s.started = true
	go func() {
		defer close(s.ackDone)
		for a := range s.acks {
			a.Ack()
		}
	}()
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
	for {
		var d delivery
		select {
		case d = <-s.in:
		case <-ctx.Done():
			return nil, nil
		}
		recs := make([]runtime.SourceRecord[Seq], 0, min(len(s.in)+1, max(s.cfg.BatchSize, 1)))
		recs = s.add(recs, d)
	fill:
		for len(recs) < s.cfg.BatchSize {
			select {
			case d = <-s.in:
				recs = s.add(recs, d)
			default:
				break fill
			}
		}
		if len(recs) > 0 { // else every message was dropped: wait for the next
			return recs, nil
		}
	}
}

// routeKey is what a message's destination and common attributes depend on.
type routeKey struct {
	topic, clientID string
	qos             byte
	retain, dup     bool
}

// route is a cached mapping result: the Danube topic, and the attribute set shared by every record
// of that key. The runtime only reads a record's attributes (it copies them into the message), so
// sharing one map per key saves building a map per message.
type route struct {
	topic  string
	ok     bool
	attrs  map[string]string
	origin func() string // where the message came from, for a record Danube refuses for good
}

// maxRoutes bounds the cache (device topics are usually few; a flood of distinct topics only
// clears it now and then).
const maxRoutes = 4096

// lookup returns d's destination and attributes, from the cache when d has no MQTT 5 properties.
func (s *Source) lookup(d *delivery) route {
	k := routeKey{topic: d.topic, clientID: d.clientID, qos: d.qos, retain: d.retain, dup: d.dup}
	if d.props == nil {
		if r, ok := s.routes[k]; ok {
			return r
		}
	}
	var r route
	r.topic, r.ok = s.table.Lookup(d.topic)
	if !r.ok {
		return r
	}
	r.attrs = d.props // this message's own map: the common attributes join its MQTT 5 properties
	if r.attrs == nil {
		r.attrs = make(map[string]string, 5)
	}
	r.attrs[AttrTopic] = d.topic
	r.attrs[AttrQoS] = strconv.Itoa(int(d.qos))
	r.attrs[AttrRetain] = strconv.FormatBool(d.retain)
	r.attrs[AttrDup] = strconv.FormatBool(d.dup)
	origin := fmt.Sprintf("MQTT topic %s from client %s", d.topic, d.clientID)
	if d.clientID != "" {
		r.attrs[AttrClientID] = d.clientID
	} else { // client mode: MQTT does not say who published
		origin = fmt.Sprintf("MQTT topic %s (received by client %s)", d.topic, s.cfg.clientID())
	}
	r.origin = func() string { return origin }
	if d.props == nil {
		if len(s.routes) >= maxRoutes {
			clear(s.routes)
		}
		s.routes[k] = r
	}
	return r
}

// add appends d's record to recs, or confirms and counts d when it must not be published.
func (s *Source) add(recs []runtime.SourceRecord[Seq], d delivery) []runtime.SourceRecord[Seq] {
	rt := s.lookup(&d)
	switch {
	case !rt.ok:
		s.drop(d, "unmapped", len(d.payload))
		return recs
	case len(d.payload) > s.cfg.MaxPayload: // client mode; the server drops them as they arrive
		s.drop(d, "oversized", len(d.payload))
		return recs
	case d.retain && s.cfg.Retained == SkipRetained && s.cfg.Mode == ClientMode:
		s.drop(d, "retained", len(d.payload))
		return recs
	}
	s.seq++
	r := runtime.NewSourceRecord(rt.topic, d.payload, s.seq).WithKey(d.topic)
	r.Attributes, r.Origin = rt.attrs, rt.origin
	if a := d.ack; a != nil {
		r.OnAck = func(err error) {
			if err == nil { // Danube has it: confirm it to MQTT. Otherwise MQTT sends it again.
				s.acks <- a
			}
		}
	}
	return append(recs, r)
}

// drop confirms d without publishing it (through the acknowledgement goroutine, in order with the
// published messages' confirmations), counts it and logs it.
func (s *Source) drop(d delivery, reason string, size int) {
	if d.ack != nil {
		s.acks <- d.ack
	}
	s.count(d.topic, d.clientID, reason, size)
}

// dropMessages says why a message was acknowledged and not published, by reason.
var dropMessages = map[string]string{
	"unmapped":  "MQTT message on a topic that matches no MQTT_TOPIC_MAPPINGS filter; acknowledged, not published",
	"oversized": "MQTT payload above MQTT_MAX_PAYLOAD_BYTES; acknowledged, not published",
	"retained":  "retained MQTT message skipped (MQTT_RETAINED=skip)",
	"sys":       "MQTT publish to a $SYS topic, which devices may not publish to; acknowledged, not published",
}

// count counts a dropped message and logs it at a bounded rate (10 s per reason).
func (s *Source) count(topic, clientID, reason string, size int) {
	s.dropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	s.warn[reason].Do(func() {
		attrs := []any{"mqtt_topic", topic, "bytes", size, "reason", reason, "note", "logged at most every 10s; see mqtt_messages_dropped_total"}
		if clientID != "" {
			attrs = append(attrs, "client_id", clientID)
		}
		if reason == "oversized" {
			attrs = append(attrs, "max", s.cfg.MaxPayload)
		}
		s.log.Warn(dropMessages[reason], attrs...)
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
	if s.started {
		close(s.acks)
		<-s.ackDone
	}
	s.ing.stop()
	return nil
}
