package devbroker

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/schemareg"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/wal"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// consumerChanCap is the size of a consumer's internal channel in the real
// broker: with no ReceiveMessages stream attached, non-reliable messages
// beyond it are dropped. While a stream is attached the real broker moves
// messages on into the stream's 4-slot buffer and from there into HTTP/2
// buffers bounded by the client's flow-control window, so drops only start
// when the client really stops reading; streamPipeline approximates that
// pipeline (4 + 4 + about 64 KiB of 1 KiB messages) so that scheduler jitter
// on a busy machine does not drop messages a real broker would deliver.
const (
	consumerChanCap = 4
	streamPipeline  = 64
)

// maxMessageSize mirrors the real broker's max_message_size policy default.
const maxMessageSize = 10 << 20

// core is one incarnation of the broker's state: Restart throws it away and
// builds a new one from DataDir. A single mutex guards everything; the broker
// is a development tool and gRPC dominates its cost.
type core struct {
	cfg        Config
	log        *slog.Logger
	url        string // advertised broker_url
	connectURL string // advertised connect_url
	faults     *faults
	store      *store

	mu         sync.Mutex
	closed     bool
	namespaces map[string]struct{}
	topics     map[string]*topic
	producers  map[uint64]*producer
	consumers  map[uint64]*consumer
	schemas    *schemareg.Registry

	stop chan struct{}
	wg   sync.WaitGroup

	// ticksPaused holds redelivery and dead-letter retries: tests set it to
	// make a multi-call setup atomic with respect to the retry tick.
	ticksPaused atomic.Bool
}

type topic struct {
	name     string
	ns       string
	reliable bool

	producers map[string]*producer
	subs      map[string]*subscription

	// Admin settings per subscription name, kept even before the
	// subscription exists, as the real broker's metadata store does.
	policies    map[string]failurePolicy
	dispatchCfg map[string]int

	// Reliable topics only: messages [base, base+len(msgs)) kept in memory.
	base uint64
	msgs []*pb.StreamMessage
	log  *wal.Log

	schemaSubject     string
	validation        string // none | warn | enforce
	payloadValidation bool
}

func (t *topic) next() uint64 { return t.base + uint64(len(t.msgs)) }

func (t *topic) at(off uint64) *pb.StreamMessage {
	if off < t.base || off >= t.next() {
		return nil
	}
	return t.msgs[off-t.base]
}

// trim frees messages every reliable subscription has moved past; new
// subscriptions start at the tail, so nothing below the lowest cursor is read again.
func (t *topic) trim() {
	floor := t.next()
	for _, s := range t.subs {
		if s.ackFloor < floor {
			floor = s.ackFloor
		}
	}
	if floor <= t.base {
		return
	}
	drop := int(floor - t.base)
	for i := 0; i < drop; i++ {
		t.msgs[i] = nil
	}
	t.msgs = t.msgs[drop:]
	t.base = floor
	if cap(t.msgs) > 1024 && len(t.msgs) < cap(t.msgs)/4 {
		t.msgs = append([]*pb.StreamMessage(nil), t.msgs...)
	}
}

type producer struct {
	id     uint64
	name   string
	topic  *topic
	closed bool
}

type consumer struct {
	id      uint64
	name    string
	sub     *subscription
	filters []string
	active  bool
	forced  bool // ForceClose: health answers CLOSE until a re-subscribe

	inactiveTicks int // reliable KeyShared eviction counter

	queue  []*pb.StreamMessage
	notify chan struct{}
	sess   *session
}

// session is one ReceiveMessages stream of a consumer; ending it makes the
// stream handler return err.
type session struct {
	done chan struct{}
	err  error
}

func (c *consumer) enqueue(m *pb.StreamMessage) {
	c.queue = append(c.queue, m)
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// endSession ends the consumer's current stream, if any, with err.
func (c *consumer) endSession(err error) {
	if c.sess != nil {
		c.sess.err = err
		close(c.sess.done)
		c.sess = nil
	}
}

func newCore(cfg Config, url, connectURL string, f *faults) (*core, error) {
	c := &core{
		cfg:        cfg,
		log:        cfg.Logger,
		url:        url,
		connectURL: connectURL,
		faults:     f,
		namespaces: map[string]struct{}{"default": {}},
		topics:     map[string]*topic{},
		producers:  map[uint64]*producer{},
		consumers:  map[uint64]*consumer{},
		schemas:    schemareg.New(),
		stop:       make(chan struct{}),
	}
	if cfg.DataDir != "" {
		var sync func(*os.File) error
		if cfg.hooks != nil {
			sync = cfg.hooks.fsync
		}
		st, err := openStore(cfg.DataDir, sync)
		if err != nil {
			return nil, err
		}
		c.store = st
		if err := c.load(); err != nil {
			c.closeLogs()
			return nil, err
		}
	}
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// loop drives every timer: redelivery and ack timeouts, cursor flushes and
// the non-reliable idle-subscription reaper.
func (c *core) loop() {
	defer c.wg.Done()
	retry := time.NewTicker(c.cfg.RetryTick)
	defer retry.Stop()
	flush := time.NewTicker(c.cfg.CursorFlushInterval)
	defer flush.Stop()
	reapEvery := c.cfg.SubscriptionIdleGrace / 2
	if reapEvery > 30*time.Second {
		reapEvery = 30 * time.Second
	}
	reap := time.NewTicker(reapEvery)
	defer reap.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-retry.C:
			if c.ticksPaused.Load() {
				continue
			}
			c.mu.Lock()
			for _, t := range c.topics {
				if !t.reliable {
					continue
				}
				for _, s := range t.subs {
					s.tick(now)
				}
			}
			c.mu.Unlock()
		case <-flush.C:
			c.mu.Lock()
			c.saveCursors()
			c.mu.Unlock()
		case now := <-reap.C:
			c.mu.Lock()
			c.reap(now)
			c.mu.Unlock()
		}
	}
}

// reap removes non-reliable subscriptions that found no healthy consumer for
// longer than the idle grace, as the real broker's removal loop does.
func (c *core) reap(now time.Time) {
	for _, t := range c.topics {
		if t.reliable {
			continue
		}
		for name, s := range t.subs {
			if s.idleSince.IsZero() || now.Sub(s.idleSince) < c.cfg.SubscriptionIdleGrace {
				continue
			}
			s.closeConsumers()
			delete(t.subs, name)
			c.log.Debug("reaped idle subscription", "topic", t.name, "subscription", name)
		}
	}
}

func (c *core) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	for _, cons := range c.consumers {
		cons.endSession(status.Error(codes.Unavailable, "broker is shutting down"))
	}
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	c.mu.Lock()
	if c.store != nil {
		if err := c.compact(); err != nil {
			c.log.Error("compacting broker metadata", "dir", c.store.dir, "err", err)
			c.saveCursors()
		}
	}
	c.closeLogs()
	c.mu.Unlock()
}

func (c *core) closeLogs() {
	for _, t := range c.topics {
		if t.log != nil {
			if err := t.log.Close(); err != nil {
				c.log.Warn("closing topic log", "topic", t.name, "err", err)
			}
			t.log = nil
		}
	}
	if c.store != nil && c.store.journal != nil {
		if err := c.store.journal.Close(); err != nil {
			c.log.Warn("closing metadata journal", "err", err)
		}
		c.store.journal = nil
	}
}

func (c *core) newID() uint64 {
	for {
		id := rand.Uint64()
		if id == 0 {
			continue
		}
		if _, ok := c.producers[id]; ok {
			continue
		}
		if _, ok := c.consumers[id]; ok {
			continue
		}
		return id
	}
}

// validTopicName is the real broker's validate_topic_format: exactly three
// '/'-separated parts of Unicode letters, digits, '_' or '-'.
func validTopicName(name string) bool {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		for _, r := range p {
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// maxFileName is the longest file name common file systems (ext4, XFS, APFS,
// NTFS) accept, in bytes.
const maxFileName = 255

// checkTopicName is validTopicName plus two rules of the development broker:
// the namespace and topic parts must not be empty (the real broker accepts
// "/default/" and then fails later in ways clients retry), and the name must
// fit in a WAL file name, so that a topic works the same with and without
// DataDir instead of failing with INTERNAL once it reaches the disk.
func checkTopicName(name string) error {
	if !validTopicName(name) {
		return errBadTopic(name)
	}
	if parts := strings.Split(name, "/"); parts[1] == "" || parts[2] == "" {
		return status.Errorf(codes.InvalidArgument,
			"The topic: %s has an empty namespace or topic part, should be: /namespace_name/topic_name", shortName(name))
	}
	if n := len(walFileName(name)); n > maxFileName {
		return status.Errorf(codes.InvalidArgument,
			"The topic name %s is too long: its log file name would take %d bytes, at most %d are allowed",
			shortName(name), n, maxFileName)
	}
	return nil
}

// shortName keeps error messages short whatever the length of a rejected name.
func shortName(name string) string {
	const keep = 64
	if len(name) <= keep {
		return name
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", name[:cut], len(name))
}

func errBadTopic(name string) error {
	return status.Errorf(codes.InvalidArgument,
		"The topic: %s has an invalid format, should be: /namespace_name/topic_name", shortName(name))
}

func namespaceOf(name string) string { return strings.Split(name, "/")[1] }

// partitionBase returns the base name of a partition topic ("/ns/t-part-3" -> "/ns/t").
func partitionBase(name string) (string, bool) {
	i := strings.LastIndex(name, "-part-")
	if i < 0 {
		return "", false
	}
	return name[:i], true
}

// createTopic adds a topic after the real broker's creation checks.
func (c *core) createTopic(name string, reliable bool) (*topic, error) {
	if _, ok := c.topics[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "The topic %s already exists", name)
	}
	ns := namespaceOf(name)
	if _, ok := c.namespaces[ns]; !ok {
		return nil, status.Errorf(codes.Unavailable, "Unable to find the namespace %s", ns)
	}
	if base, ok := partitionBase(name); ok {
		if _, exists := c.topics[base]; exists {
			return nil, status.Errorf(codes.AlreadyExists,
				"Cannot create partition %s: non-partitioned topic %s already exists", name, base)
		}
	} else {
		for other := range c.topics {
			if strings.HasPrefix(other, name+"-part-") {
				return nil, status.Errorf(codes.AlreadyExists,
					"Cannot create topic %s: partitioned topic %s already exists", name, other)
			}
		}
	}
	t := &topic{
		name:        name,
		ns:          ns,
		reliable:    reliable,
		producers:   map[string]*producer{},
		subs:        map[string]*subscription{},
		policies:    map[string]failurePolicy{},
		dispatchCfg: map[string]int{},
		validation:  "warn",
	}
	if reliable && c.store != nil {
		l, err := c.store.openLog(name, nil)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "failed to load topic locally: %v", err)
		}
		t.base = l.Next()
		t.log = l
	}
	if err := c.persist(metaRec{Op: opTopicPut, Name: name, Topic: t.meta()}); err != nil {
		if t.log != nil {
			_ = t.log.Close()
		}
		return nil, errPersist(err)
	}
	c.topics[name] = t
	c.maybeCompact()
	return t, nil
}

// publish stores and fans out one message. For reliable topics it assigns the
// next contiguous offset and stamps it into msg_id.topic_offset.
func (c *core) publish(t *topic, m *pb.StreamMessage) error {
	now := time.Now()
	if !t.reliable {
		for _, s := range t.subs {
			s.dispatchNonReliable(m, now)
		}
		return nil
	}
	// m is the broker's own: gRPC unmarshals every request into a fresh
	// message (payload copied) and dead letters are clones, so it is stamped
	// and kept without another copy.
	off := t.next()
	m.MsgId.TopicOffset = off
	if t.log != nil {
		b, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode message: %w", err)
		}
		if err := t.log.Append(off, b); err != nil {
			return err
		}
	}
	if len(t.subs) == 0 {
		// Nobody can ever read it: new subscriptions start at the tail.
		t.msgs = nil
		t.base = off + 1
		return nil
	}
	t.msgs = append(t.msgs, m)
	for _, s := range t.subs {
		s.dispatch(now)
	}
	return nil
}

// partitions answers TopicPartitions: the topic itself, or every topic of
// its namespace whose name starts with it, lexicographically (a raw prefix scan
// in the real broker's metadata store).
func (c *core) partitions(name string) []string {
	if _, ok := c.topics[name]; ok {
		return []string{name}
	}
	out := []string{}
	for other := range c.topics {
		if strings.HasPrefix(other, name) {
			out = append(out, other)
		}
	}
	sort.Strings(out)
	return out
}
