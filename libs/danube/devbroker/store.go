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

	"google.golang.org/protobuf/proto"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/schemareg"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/wal"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// store persists broker metadata (namespaces, topics, subscriptions with
// their cursors and failure policies, schemas) as one JSON document replaced
// atomically, and each reliable topic's messages in a CRC'd append-only log.
type store struct {
	dir string
}

type metaDoc struct {
	Namespaces []string            `json:"namespaces"`
	Topics     []topicMeta         `json:"topics"`
	Schemas    *schemareg.Registry `json:"schemas"`
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

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		return nil, fmt.Errorf("devbroker: create data dir %q: %w", dir, err)
	}
	return &store{dir: dir}, nil
}

func (s *store) metaPath() string { return filepath.Join(s.dir, "meta.json") }

func (s *store) logPath(topic string) string {
	return filepath.Join(s.dir, "wal", url.PathEscape(topic)+".log")
}

func (s *store) openLog(topic string, fn func(wal.Record) error) (*wal.Log, error) {
	if fn == nil {
		fn = func(wal.Record) error { return nil }
	}
	return wal.Open(s.logPath(topic), fn)
}

// saveMeta writes the metadata document; callers hold c.mu. Failures are
// logged, not returned: the in-memory state stays authoritative.
func (c *core) saveMeta() {
	if c.store == nil {
		return
	}
	doc := metaDoc{Schemas: c.schemas}
	for ns := range c.namespaces {
		doc.Namespaces = append(doc.Namespaces, ns)
	}
	sort.Strings(doc.Namespaces)
	for _, t := range c.topics {
		tm := topicMeta{Name: t.name, Reliable: t.reliable, SchemaSubject: t.schemaSubject,
			Validation: t.validation, PayloadValidation: t.payloadValidation,
			Policies: t.policies, DispatchCfg: t.dispatchCfg}
		for _, s := range t.subs {
			tm.Subs = append(tm.Subs, subMeta{Name: s.name, Type: int32(s.typ), Cursor: s.ackFloor})
			s.dirty = false
		}
		sort.Slice(tm.Subs, func(i, j int) bool { return tm.Subs[i].Name < tm.Subs[j].Name })
		doc.Topics = append(doc.Topics, tm)
	}
	sort.Slice(doc.Topics, func(i, j int) bool { return doc.Topics[i].Name < doc.Topics[j].Name })
	b, err := json.MarshalIndent(doc, "", " ")
	if err == nil {
		tmp := c.store.metaPath() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, c.store.metaPath())
		}
	}
	if err != nil {
		c.log.Error("saving broker metadata", "dir", c.store.dir, "err", err)
	}
}

// load rebuilds topics, subscriptions and reliable messages from the data dir.
func (c *core) load() error {
	b, err := os.ReadFile(c.store.metaPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("devbroker: read metadata: %w", err)
	}
	var doc metaDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("devbroker: decode metadata %q: %w", c.store.metaPath(), err)
	}
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
		}
		t.trim()
	}
	return nil
}
