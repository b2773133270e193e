package devbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/schemareg"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/wal"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// store persists broker metadata (namespaces, topics, subscriptions with
// their cursors and failure policies, schemas) and each reliable topic's
// messages in a CRC'd append-only log.
//
// Metadata live in a snapshot, meta.json, replaced atomically, plus a journal,
// meta.log: one CRC'd record per change, so a change costs its own size and
// one fsync rather than a rewrite of everything. Opening replays the journal
// over the snapshot and compacts both into a new snapshot; the broker also
// compacts once the journal outgrows the snapshot. The snapshot records the
// first journal offset it does not contain, so a crash between writing it and
// emptying the journal replays nothing twice.
//
// Everything reported as done is on stable storage first: journal records,
// snapshots and log records are fsynced, and so are the directories after a
// file is created or renamed.
type store struct {
	dir  string
	sync func(*os.File) error

	journal      *wal.Log
	journalBytes int64 // appended since the last compaction
	snapBytes    int64 // size of the last snapshot
}

type metaDoc struct {
	// JournalNext is the first journal offset the snapshot does not contain.
	JournalNext uint64              `json:"journal_next,omitempty"`
	Namespaces  []string            `json:"namespaces"`
	Topics      []topicMeta         `json:"topics"`
	Schemas     *schemareg.Registry `json:"schemas"`
}

type topicMeta struct {
	Name              string    `json:"name"`
	Reliable          bool      `json:"reliable"`
	SchemaSubject     string    `json:"schema_subject,omitempty"`
	Validation        string    `json:"validation"`
	PayloadValidation bool      `json:"payload_validation,omitempty"`
	Subs              []subMeta `json:"subscriptions,omitempty"`

	Policies    map[string]failurePolicy `json:"failure_policies,omitempty"`
	DispatchCfg map[string]int           `json:"dispatch_config,omitempty"`
}

type subMeta struct {
	Name   string `json:"name"`
	Type   int32  `json:"type"`
	Cursor uint64 `json:"next_unacked"` // every offset below is settled
}

// metaOp names a journal record's change.
type metaOp string

const (
	opNamespacePut metaOp = "namespace_put"
	opNamespaceDel metaOp = "namespace_del"
	opTopicPut     metaOp = "topic_put" // the topic's own fields; keeps its subscriptions and settings
	opTopicDel     metaOp = "topic_del"
	opSubPut       metaOp = "subscription_put"
	opSubDel       metaOp = "subscription_del"
	opPolicy       metaOp = "failure_policy"
	opDispatch     metaOp = "dispatch_config"
	opCursors      metaOp = "cursors"
	opSchemas      metaOp = "schemas" // the whole registry: schema changes are rare
)

// metaRec is one journal record. Name is the namespace or the topic; Sub the
// subscription name for opSubDel, opPolicy and opDispatch.
type metaRec struct {
	Op         metaOp                       `json:"op"`
	Name       string                       `json:"name,omitempty"`
	Sub        string                       `json:"sub,omitempty"`
	Topic      *topicMeta                   `json:"topic,omitempty"`
	Subscr     *subMeta                     `json:"subscription,omitempty"`
	Policy     *failurePolicy               `json:"policy,omitempty"`
	MaxUnacked int                          `json:"max_unacked,omitempty"`
	Cursors    map[string]map[string]uint64 `json:"cursors,omitempty"` // topic -> subscription -> cursor
	Schemas    *schemareg.Registry          `json:"schemas,omitempty"`
}

// minCompactBytes keeps small data dirs from compacting on every few changes.
const minCompactBytes = 1 << 20

func openStore(dir string, sync func(*os.File) error) (*store, error) {
	if sync == nil {
		sync = (*os.File).Sync
	}
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		return nil, fmt.Errorf("devbroker: create data dir %q: %w", dir, err)
	}
	s := &store{dir: dir, sync: sync}
	if err := s.syncDir(dir); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) metaPath() string    { return filepath.Join(s.dir, "meta.json") }
func (s *store) journalPath() string { return filepath.Join(s.dir, "meta.log") }

func (s *store) logPath(topic string) string {
	return filepath.Join(s.dir, "wal", walFileName(topic))
}

// walFileName is the file name of a reliable topic's log; checkTopicName
// bounds its length.
func walFileName(topic string) string { return url.PathEscape(topic) + ".log" }

// syncDir makes the directory's entries (files just created or renamed) durable.
func (s *store) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("devbroker: sync dir %q: %w", dir, err)
	}
	defer d.Close()
	if err := s.sync(d); err != nil {
		return fmt.Errorf("devbroker: sync dir %q: %w", dir, err)
	}
	return nil
}

// openLog opens a topic's log; a log it creates is durable once it returns.
func (s *store) openLog(topic string, fn func(wal.Record) error) (*wal.Log, error) {
	if fn == nil {
		fn = func(wal.Record) error { return nil }
	}
	path := s.logPath(topic)
	_, statErr := os.Stat(path)
	l, err := wal.Open(path, wal.Options{Sync: s.sync}, fn)
	if err != nil {
		return nil, err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := s.syncDir(filepath.Dir(path)); err != nil {
			_ = l.Close() // the sync error is the one to report
			return nil, err
		}
	}
	return l, nil
}

// writeSnapshot replaces meta.json atomically and durably.
func (s *store) writeSnapshot(doc *metaDoc) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("devbroker: encode metadata: %w", err)
	}
	tmp := s.metaPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("devbroker: write metadata: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = s.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.metaPath())
	}
	if err != nil {
		return fmt.Errorf("devbroker: write metadata: %w", err)
	}
	if err := s.syncDir(s.dir); err != nil {
		return err
	}
	s.snapBytes = int64(len(b))
	return nil
}

// errPersist is what a request sees when its change could not be made durable.
func errPersist(err error) error {
	return status.Errorf(codes.Internal, "devbroker: persisting metadata: %v", err)
}

// persist appends one change to the journal and fsyncs it; callers hold c.mu
// and make the change in memory only once it returns nil.
func (c *core) persist(r metaRec) error {
	st := c.store
	if st == nil {
		return nil
	}
	if st.journal == nil {
		return errors.New("broker is shutting down")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", r.Op, err)
	}
	next := st.journal.Next()
	if err := st.journal.Append(next, b); err != nil {
		return err
	}
	if err := st.journal.SyncThrough(next + 1); err != nil {
		return err
	}
	st.journalBytes += int64(len(b)) + 16
	return nil
}

// maybeCompact folds the journal into a new snapshot once it outgrew the
// snapshot, which keeps the cost of a change amortized O(its size); callers
// hold c.mu and call it after the change is applied in memory.
func (c *core) maybeCompact() {
	st := c.store
	if st == nil || st.journalBytes < max(minCompactBytes, 2*st.snapBytes) {
		return
	}
	if err := c.compact(); err != nil {
		c.log.Error("compacting broker metadata", "dir", st.dir, "err", err)
	}
}

// compact writes the whole in-memory metadata as a snapshot and empties the
// journal; callers hold c.mu.
func (c *core) compact() error {
	st := c.store
	doc := c.metaDoc()
	doc.JournalNext = st.journal.Next()
	if err := st.writeSnapshot(doc); err != nil {
		return err
	}
	for _, t := range c.topics {
		for _, s := range t.subs {
			s.dirty = false
		}
	}
	if err := st.journal.Reset(doc.JournalNext); err != nil {
		return err
	}
	st.journalBytes = 0
	return nil
}

// setSchemaSubject assigns a topic's schema subject durably; callers hold c.mu.
func (c *core) setSchemaSubject(t *topic, subject string) error {
	tm := t.meta()
	tm.SchemaSubject = subject
	if err := c.persist(metaRec{Op: opTopicPut, Name: t.name, Topic: tm}); err != nil {
		return errPersist(err)
	}
	t.schemaSubject = subject
	c.maybeCompact()
	return nil
}

// putTopic persists a topic's own fields after a change made in memory;
// callers hold c.mu.
func (c *core) putTopic(t *topic) error {
	if err := c.persist(metaRec{Op: opTopicPut, Name: t.name, Topic: t.meta()}); err != nil {
		return errPersist(err)
	}
	c.maybeCompact()
	return nil
}

// putSchemas persists the schema registry after a change; undo restores the
// registry as it was before, so a change that is not durable is not made.
func (c *core) putSchemas(undo *schemareg.Registry) error {
	if err := c.persist(metaRec{Op: opSchemas, Schemas: c.schemas}); err != nil {
		if undo != nil {
			c.schemas = undo
		}
		return errPersist(err)
	}
	c.maybeCompact()
	return nil
}

// schemasUndo returns a deep copy of the registry to restore should
// persisting a change fail; nil without a data dir.
func (c *core) schemasUndo() *schemareg.Registry {
	if c.store == nil {
		return nil
	}
	b, err := json.Marshal(c.schemas)
	if err != nil {
		return nil
	}
	r := schemareg.New()
	if json.Unmarshal(b, r) != nil {
		return nil
	}
	return r
}

func (t *topic) meta() *topicMeta {
	return &topicMeta{Name: t.name, Reliable: t.reliable, SchemaSubject: t.schemaSubject,
		Validation: t.validation, PayloadValidation: t.payloadValidation}
}

func (c *core) metaDoc() *metaDoc {
	doc := &metaDoc{Schemas: c.schemas}
	for ns := range c.namespaces {
		doc.Namespaces = append(doc.Namespaces, ns)
	}
	sort.Strings(doc.Namespaces)
	for _, t := range c.topics {
		tm := *t.meta()
		tm.Policies, tm.DispatchCfg = t.policies, t.dispatchCfg
		for _, s := range t.subs {
			tm.Subs = append(tm.Subs, subMeta{Name: s.name, Type: int32(s.typ), Cursor: s.ackFloor})
		}
		sort.Slice(tm.Subs, func(i, j int) bool { return tm.Subs[i].Name < tm.Subs[j].Name })
		doc.Topics = append(doc.Topics, tm)
	}
	sort.Slice(doc.Topics, func(i, j int) bool { return doc.Topics[i].Name < doc.Topics[j].Name })
	return doc
}

// saveCursors journals the cursors that moved since they were last saved;
// callers hold c.mu. A failure is logged and retried on the next flush: the
// cursors stay dirty, and a cursor that lags only causes redelivery.
func (c *core) saveCursors() {
	if c.store == nil {
		return
	}
	cursors := map[string]map[string]uint64{}
	for _, t := range c.topics {
		for _, s := range t.subs {
			if !s.dirty {
				continue
			}
			if cursors[t.name] == nil {
				cursors[t.name] = map[string]uint64{}
			}
			cursors[t.name][s.name] = s.ackFloor
		}
	}
	if len(cursors) == 0 {
		return
	}
	if err := c.persist(metaRec{Op: opCursors, Cursors: cursors}); err != nil {
		c.log.Error("saving subscription cursors", "dir", c.store.dir, "err", err)
		return
	}
	for name, subs := range cursors {
		for sub := range subs {
			c.topics[name].subs[sub].dirty = false
		}
	}
	c.maybeCompact()
}

// metaState is metadata being rebuilt from the snapshot and the journal.
type metaState struct {
	namespaces map[string]bool
	topics     map[string]*topicMeta
	subs       map[string]map[string]*subMeta
	schemas    *schemareg.Registry
}

func newMetaState(doc *metaDoc) *metaState {
	m := &metaState{namespaces: map[string]bool{}, topics: map[string]*topicMeta{},
		subs: map[string]map[string]*subMeta{}, schemas: doc.Schemas}
	for _, ns := range doc.Namespaces {
		m.namespaces[ns] = true
	}
	for i := range doc.Topics {
		tm := doc.Topics[i]
		m.topics[tm.Name] = &tm
		m.subs[tm.Name] = map[string]*subMeta{}
		for j := range tm.Subs {
			sm := tm.Subs[j]
			m.subs[tm.Name][sm.Name] = &sm
		}
		tm.Subs = nil
	}
	return m
}

// apply replays one journal record. Records about a topic that no longer
// exists are skipped: a later record deleted it.
func (m *metaState) apply(r *metaRec) {
	tm := m.topics[r.Name]
	switch r.Op {
	case opNamespacePut:
		m.namespaces[r.Name] = true
	case opNamespaceDel:
		delete(m.namespaces, r.Name)
	case opTopicPut:
		if r.Topic == nil {
			return
		}
		if tm == nil {
			tm = &topicMeta{}
			m.topics[r.Name] = tm
			m.subs[r.Name] = map[string]*subMeta{}
		}
		pol, dc := tm.Policies, tm.DispatchCfg
		*tm = *r.Topic
		tm.Policies, tm.DispatchCfg = pol, dc
	case opTopicDel:
		delete(m.topics, r.Name)
		delete(m.subs, r.Name)
	case opSubPut:
		if tm != nil && r.Subscr != nil {
			sm := *r.Subscr
			m.subs[r.Name][sm.Name] = &sm
		}
	case opSubDel:
		if tm != nil {
			delete(m.subs[r.Name], r.Sub)
		}
	case opPolicy:
		if tm != nil && r.Policy != nil {
			if tm.Policies == nil {
				tm.Policies = map[string]failurePolicy{}
			}
			tm.Policies[r.Sub] = *r.Policy
		}
	case opDispatch:
		if tm != nil {
			if tm.DispatchCfg == nil {
				tm.DispatchCfg = map[string]int{}
			}
			tm.DispatchCfg[r.Sub] = r.MaxUnacked
		}
	case opCursors:
		for topic, cursors := range r.Cursors {
			for sub, cur := range cursors {
				if sm := m.subs[topic][sub]; sm != nil {
					sm.Cursor = cur
				}
			}
		}
	case opSchemas:
		if r.Schemas != nil {
			m.schemas = r.Schemas
		}
	}
}

func (m *metaState) doc() *metaDoc {
	doc := &metaDoc{Schemas: m.schemas}
	for ns := range m.namespaces {
		doc.Namespaces = append(doc.Namespaces, ns)
	}
	for name, tm := range m.topics {
		t := *tm
		for _, sm := range m.subs[name] {
			t.Subs = append(t.Subs, *sm)
		}
		sort.Slice(t.Subs, func(i, j int) bool { return t.Subs[i].Name < t.Subs[j].Name })
		doc.Topics = append(doc.Topics, t)
	}
	sort.Slice(doc.Topics, func(i, j int) bool { return doc.Topics[i].Name < doc.Topics[j].Name })
	return doc
}

// load rebuilds topics, subscriptions and reliable messages from the data
// dir, then compacts the metadata into a fresh snapshot.
func (c *core) load() error {
	st := c.store
	doc := &metaDoc{}
	b, err := os.ReadFile(st.metaPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("devbroker: read metadata: %w", err)
	default:
		if err := json.Unmarshal(b, doc); err != nil {
			return fmt.Errorf("devbroker: decode metadata %q: %w", st.metaPath(), err)
		}
		st.snapBytes = int64(len(b))
	}
	m := newMetaState(doc)
	_, statErr := os.Stat(st.journalPath())
	st.journal, err = wal.Open(st.journalPath(), wal.Options{Sync: st.sync}, func(r wal.Record) error {
		if r.Offset < doc.JournalNext {
			return nil // already in the snapshot
		}
		var rec metaRec
		if err := json.Unmarshal(r.Payload, &rec); err != nil {
			return fmt.Errorf("devbroker: decode metadata journal offset %d: %w", r.Offset, err)
		}
		m.apply(&rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("devbroker: open metadata journal: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := st.syncDir(st.dir); err != nil {
			return err
		}
	}
	if st.journal.Next() < doc.JournalNext {
		st.journal.SetNext(doc.JournalNext)
	}
	if err := c.loadDoc(m.doc()); err != nil {
		return err
	}
	return c.compact()
}

func (c *core) loadDoc(doc *metaDoc) error {
	for _, ns := range doc.Namespaces {
		c.namespaces[ns] = struct{}{}
	}
	if doc.Schemas != nil && doc.Schemas.Subjects != nil {
		c.schemas = doc.Schemas
	}
	for _, tm := range doc.Topics {
		t := &topic{name: tm.Name, ns: namespaceOf(tm.Name), reliable: tm.Reliable,
			producers: map[string]*producer{}, subs: map[string]*subscription{},
			policies: map[string]failurePolicy{}, dispatchCfg: map[string]int{},
			schemaSubject: tm.SchemaSubject, validation: tm.Validation, payloadValidation: tm.PayloadValidation}
		for k, v := range tm.Policies {
			t.policies[k] = v
		}
		for k, v := range tm.DispatchCfg {
			t.dispatchCfg[k] = v
		}
		if t.validation == "" {
			t.validation = "warn"
		}
		c.topics[t.name] = t
		for _, sm := range tm.Subs {
			s := c.newSubscription(t, sm.Name, pb.ConsumerRequest_SubscriptionType(sm.Type))
			if t.reliable {
				s.ackFloor, s.next = sm.Cursor, sm.Cursor
			}
		}
		if !t.reliable {
			continue
		}
		floor := uint64(1<<64 - 1)
		for _, s := range t.subs {
			floor = min(floor, s.ackFloor)
		}
		var msgs []*pb.StreamMessage
		first := true
		l, err := c.store.openLog(t.name, func(r wal.Record) error {
			if first {
				t.base = r.Offset
				first = false
			}
			if r.Offset < floor {
				t.base = r.Offset + 1
				return nil
			}
			m := &pb.StreamMessage{}
			if err := proto.Unmarshal(r.Payload, m); err != nil {
				return fmt.Errorf("decode offset %d: %w", r.Offset, err)
			}
			msgs = append(msgs, m)
			return nil
		})
		if err != nil {
			return fmt.Errorf("devbroker: open log of topic %s: %w", t.name, err)
		}
		t.log = l
		t.msgs = msgs
		if first { // empty log
			t.base = l.Next()
		}
		// A cursor beyond the log (lost tail) restarts at the log's end.
		for _, s := range t.subs {
			if s.ackFloor > t.next() {
				s.ackFloor, s.next = t.next(), t.next()
			}
			s.live = t.next()
		}
		t.trim()
	}
	return nil
}
