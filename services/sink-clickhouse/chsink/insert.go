package chsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chtype"
)

// errSchemaChanged reports that the server's columns differ from the schema the rows were
// converted with: the schema is read again and the rows converted again.
var errSchemaChanged = errors.New("the table's columns changed")

// errUnfit reports messages that do not fit the schema as read (a field without a column, a value
// the column's type refuses): the table may have changed since, so the schema is read again before
// their fields are ignored or they are rejected. ClickHouse tells a client of no added column, and
// an INSERT that names only the known columns succeeds: such a field is the only sign of one.
var errUnfit = errors.New("a message has a field without a column or a value its column's type refuses")

// A field name without a column that the sink has not met before makes it read the schema again at
// once; one it has met (a stream whose messages always carry a field the table does not have) or a
// refused value does so at most once per rereadAfter, so that such a stream does not query the
// server for every batch. The sink remembers up to maxUnknown names.
const (
	rereadAfter = time.Second
	maxUnknown  = 256
)

// misfits is what converting a batch found that does not fit the schema.
type misfits struct {
	any   bool     // a field without a column, or a value its column refused
	names []string // fields without a column that are not in Sink.unknown
}

// blockBytes is about how much payload goes into one block of an INSERT (see sendOnce). The
// driver holds about three times a block at once (its column buffers, the encoded block and the
// compressed one); 256 KiB blocks keep that under 1 MiB and cost nothing measurable in rate.
const blockBytes = 256 << 10

// ProcessBatch inserts the records of one batch (one partition, in offset order). Rows that cannot
// be converted are reported as invalid data; the others go in one INSERT per set of present
// columns (one INSERT when every message has the same fields). It returns once ClickHouse
// acknowledged every INSERT.
func (s *Sink) ProcessBatch(ctx context.Context, recs []*runtime.SinkRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if err := s.waitGap(ctx, recs); err != nil {
		return err
	}
	if err := s.applySchemas(ctx, recs); err != nil { // CH_CREATE_TABLE, CH_ALTER_TABLE (ddl.go)
		return err
	}
	results := make([]error, len(recs))
	todo := make([]int, len(recs))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		rest, err := s.insert(ctx, recs, todo, results, attempt == 0)
		if err == nil {
			break
		}
		if (errors.Is(err, errSchemaChanged) || errors.Is(err, errUnfit)) && attempt == 0 {
			if err = s.refreshSchema(ctx); err == nil {
				todo = rest
				continue
			}
		}
		if errors.Is(err, errSchemaChanged) {
			err = runtime.Retryable(err)
		}
		for _, i := range rest {
			results[i] = err
		}
		break
	}
	return outcome(results)
}

// outcome is nil when every record was inserted, the shared error when all failed alike, and a
// BatchError otherwise.
func outcome(results []error) error {
	var first error
	same := true
	for _, err := range results {
		if err == nil {
			same = false
			continue
		}
		if first == nil {
			first = err
		} else if !errors.Is(err, first) {
			same = false
		}
	}
	switch {
	case first == nil:
		return nil
	case same:
		return first
	}
	return &runtime.BatchError{Errs: results}
}

// waitGap holds a partial batch until FLUSH_INTERVAL_MS after the start of the previous INSERT.
func (s *Sink) waitGap(ctx context.Context, recs []*runtime.SinkRecord) error {
	if s.cfg.FlushInterval <= 0 || s.lastInsert.IsZero() || !partial(recs, s.cfg.BatchSize) {
		return nil
	}
	wait := time.Until(s.lastInsert.Add(s.cfg.FlushInterval.D()))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// partial reports whether the runtime cut the batch before it filled its offset window.
func partial(recs []*runtime.SinkRecord, size int) bool {
	last := recs[len(recs)-1].Message.Offset
	return len(recs) < size && (last+1)%uint64(size) != 0
}

// refreshSchema reads the table's columns again.
func (s *Sink) refreshSchema(ctx context.Context) error {
	s.mu.RLock()
	conn := s.conn
	s.mu.RUnlock()
	sc, err := loadSchema(ctx, conn, s.cfg.Database, s.cfg.Table)
	if err != nil {
		return s.classify(fmt.Errorf("read the schema of %s: %w", s.table(), err))
	}
	s.useSchema(sc)
	return nil
}

// useSchema makes sc, just read, the schema rows are converted with, and logs what changed.
func (s *Sink) useSchema(sc *schema) {
	if s.schema != nil {
		if added, dropped, retyped := s.schema.diff(sc); len(added)+len(dropped)+len(retyped) > 0 {
			s.log.Info("the table's columns changed", "table", s.table(), "added", added, "dropped", dropped, "retyped", retyped)
		}
	}
	maps.DeleteFunc(s.unknown, func(name string, _ bool) bool { _, ok := sc.byName[name]; return ok })
	s.schema, s.schemaRead = sc, time.Now()
}

// group is the rows of a batch that have the same columns present: one INSERT.
type group struct {
	cols []int // schema columns, in table order
	rows []int // record indexes, in offset order
}

// insert converts recs[todo], records conversion failures in results and inserts the rest. On an
// error it returns the records that were neither inserted nor rejected. With reread, messages that
// do not fit the schema can make it return errUnfit (see stale) before it rejects or inserts any.
func (s *Sink) insert(ctx context.Context, recs []*runtime.SinkRecord, todo []int, results []error, reread bool) ([]int, error) {
	sc := s.schema
	n := len(sc.cols)
	vals := make([]any, len(recs)*n)
	groups := map[string]*group{}
	var order []*group
	present := make([]byte, (n+7)/8)
	var rejected []int
	var m misfits
	for _, i := range todo {
		clear(present)
		err := s.convert(sc, recs[i].Payload(), vals[i*n:(i+1)*n], present, &m)
		if err != nil {
			m.any = true
			results[i] = runtime.InvalidData(fmt.Errorf("message %s: %w", recs[i].MessageID(), err))
			rejected = append(rejected, i)
			continue
		}
		g := groups[string(present)]
		if g == nil {
			g = &group{}
			for j := range n {
				if present[j/8]&(1<<(j%8)) != 0 {
					g.cols = append(g.cols, j)
				}
			}
			groups[string(present)] = g
			order = append(order, g)
		}
		g.rows = append(g.rows, i)
	}
	if reread && s.stale(&m) {
		for _, i := range rejected {
			results[i] = nil
		}
		return todo, errUnfit
	}
	for _, name := range m.names { // without a column as of the last read
		if len(s.unknown) < maxUnknown {
			s.unknown[name] = true
		}
	}
	if len(rejected) > 0 {
		s.m.deadLettered.Add(ctx, int64(len(rejected)))
	}
	for k, g := range order {
		if err := s.send(ctx, recs, sc, g, vals, results); err != nil {
			var rest []int
			for _, g := range order[k:] {
				rest = append(rest, g.rows...)
			}
			slices.Sort(rest)
			return rest, err
		}
	}
	return nil, nil
}

// stale reports whether what m found calls for reading the schema again (see rereadAfter).
func (s *Sink) stale(m *misfits) bool {
	return (len(m.names) > 0 && len(s.unknown) < maxUnknown) || (m.any && time.Since(s.schemaRead) >= rereadAfter)
}

// convert decodes one payload into the row's values; present marks the columns it sets, m notes
// its fields without a column. A field that is absent, or null for a column that is not Nullable,
// takes the column default.
func (s *Sink) convert(sc *schema, payload []byte, row []any, present []byte, m *misfits) error {
	var names []string
	err := eachField(payload, func(name, raw []byte) error {
		j, ok := sc.byName[string(name)]
		if !ok {
			m.any = true
			if !s.unknown[string(name)] && !slices.Contains(m.names, string(name)) {
				m.names = append(m.names, string(name))
			}
			if s.cfg.UnknownFields == RejectUnknown {
				names = append(names, string(name))
			}
			return nil
		}
		c := sc.cols[j]
		if string(raw) == "null" && !c.typ.Nullable() {
			return nil // column default
		}
		var v any
		if c.typ.Kind == chtype.String && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
			v = raw[1 : len(raw)-1] // the driver copies it into the column: no string of our own
		} else {
			var err error
			if v, err = c.typ.Convert(raw); err != nil {
				return fmt.Errorf("column %q (%s): value %s: %w", name, c.typ.Name, clip(raw), err)
			}
		}
		row[j] = v
		present[j/8] |= 1 << (j % 8)
		return nil
	})
	if errors.Is(err, errNotObject) {
		return fmt.Errorf("payload is not a JSON object: %s", clip(payload))
	}
	if err != nil {
		return err
	}
	if len(names) > 0 {
		slices.Sort(names)
		return fmt.Errorf("fields without a column in %s (UNKNOWN_FIELDS=error): %s", s.table(), strings.Join(names, ", "))
	}
	if !slices.ContainsFunc(present, func(b byte) bool { return b != 0 }) {
		return fmt.Errorf("no field matches a column of %s", s.table())
	}
	return nil
}

// clip shortens a value for an error message (which becomes the dead letter's x-failure-reason).
func clip(b []byte) string {
	const limit = 80
	if len(b) > limit {
		return string(b[:limit]) + "…"
	}
	return string(b)
}

// send runs one INSERT of the group's rows and records its outcome in results.
func (s *Sink) send(ctx context.Context, recs []*runtime.SinkRecord, sc *schema, g *group, vals []any, results []error) error {
	n := len(sc.cols)
	names := make([]string, len(g.cols))
	for k, j := range g.cols {
		names[k] = quote(sc.cols[j].name)
	}
	query := "INSERT INTO " + s.table() + " (" + strings.Join(names, ", ") + ")"
	for {
		if len(g.rows) == 0 {
			return nil
		}
		first, last := recs[g.rows[0]].Message, recs[g.rows[len(g.rows)-1]].Message
		qctx := ctx
		if s.srv.token {
			qctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
				"insert_deduplication_token": token(recs[g.rows[0]].Partition, first.Offset, last.Offset, len(g.rows)),
			}))
		}
		qctx, cancel := context.WithTimeout(qctx, s.cfg.InsertTimeout.D())
		start := time.Now()
		s.lastInsert = start
		bad, reason, err := s.sendOnce(qctx, query, recs, sc, g, vals, n)
		cancel()
		if err != nil {
			return err
		}
		if bad >= 0 { // the driver refused a value the converter accepted: drop that row, build again
			i := g.rows[bad]
			results[i] = runtime.InvalidData(fmt.Errorf("message %s: %w", recs[i].MessageID(), reason))
			s.m.deadLettered.Add(ctx, 1)
			g.rows = slices.Delete(g.rows, bad, bad+1)
			continue
		}
		s.m.latency.Record(ctx, time.Since(start).Seconds())
		s.m.batchRows.Record(ctx, float64(len(g.rows)), metric.WithAttributes(attribute.Int("columns", len(g.cols))))
		s.m.inserted.Add(ctx, int64(len(g.rows)))
		for _, i := range g.rows {
			results[i] = nil
		}
		return nil
	}
}

// sendOnce prepares the INSERT, checks the server's columns against the schema, appends the rows
// column by column and sends the block. bad is the position in g.rows of a row the driver refused
// (the batch is then aborted and nothing was sent), or -1.
func (s *Sink) sendOnce(ctx context.Context, query string, recs []*runtime.SinkRecord, sc *schema, g *group, vals []any, n int) (bad int, reason, err error) {
	s.mu.RLock()
	conn := s.conn
	s.mu.RUnlock()
	b, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return -1, nil, s.classify(fmt.Errorf("insert into %s: %w", s.table(), err))
	}
	defer func() { _ = b.Close() }()
	cols := b.Columns()
	if len(cols) != len(g.cols) {
		_ = b.Abort()
		return -1, nil, fmt.Errorf("%w: the server expects %d columns, the schema %d", errSchemaChanged, len(cols), len(g.cols))
	}
	for k, j := range g.cols {
		if got, want := string(cols[k].Type()), sc.cols[j].typ.Name; got != want {
			_ = b.Abort()
			return -1, nil, fmt.Errorf("%w: column %q is %s, the schema said %s", errSchemaChanged, sc.cols[j].name, got, want)
		}
	}
	// The rows go in blocks of about blockBytes of payload, each sent as soon as it is built: the
	// driver's column buffers are reused from block to block, so the sink's memory is bounded by
	// blockBytes rather than by the batch. The server squashes the blocks of one INSERT into one
	// part (min_insert_block_size_rows/bytes), and commits nothing unless the INSERT completes.
	for from := 0; from < len(g.rows); {
		to, size := from, 0
		for to < len(g.rows) && (to == from || size < blockBytes) {
			size += len(recs[g.rows[to]].Payload())
			to++
		}
		for k, j := range g.cols {
			col := cols[k]
			for r := from; r < to; r++ {
				if err := col.AppendRow(vals[g.rows[r]*n+j]); err != nil {
					_ = b.Abort() // closes the connection: the server drops the unfinished INSERT
					return r, fmt.Errorf("column %q (%s): %w", sc.cols[j].name, sc.cols[j].typ.Name, err), nil
				}
			}
		}
		if to < len(g.rows) {
			if err := b.Flush(); err != nil {
				return -1, nil, s.classify(fmt.Errorf("insert %d rows into %s: %w", len(g.rows), s.table(), err))
			}
		}
		from = to
	}
	if err := b.Send(); err != nil {
		return -1, nil, s.classify(fmt.Errorf("insert %d rows into %s: %w", len(g.rows), s.table(), err))
	}
	return -1, nil, nil
}
