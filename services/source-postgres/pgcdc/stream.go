package pgcdc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// LSN is the connector's position: a PostgreSQL WAL location.
type LSN = pglogrepl.LSN

type record = runtime.SourceRecord[LSN]

// item is what the stream's reader hands Poll: a record, or the error that ended the stream.
type item struct {
	rec record
	err error
}

// relation is a table as the stream's RELATION message describes it (re-sent after schema changes).
type relation struct {
	table    Table
	cols     []column
	keyFlags []bool // column is part of the replica identity key
	pk       []int  // primary key columns (the routing key)
	topic    string
	captured bool
	attrs    map[string]map[string]string // per operation, shared read-only by its records
	schema   *derived                     // SCHEMA_TYPE: the events' schema
}

// stream is one replication connection streaming the slot: a reader goroutine decodes pgoutput
// into records; status updates (the confirmed LSN) are written beside it.
type stream struct {
	conn    *pgconn.PgConn
	items   chan item
	stop    chan struct{}
	wg      sync.WaitGroup
	writeMu sync.Mutex
	sent    LSN // the last position reported (writeMu)
	src     *Source

	// reader goroutine only
	relations map[uint32]*relation
	enc       encoder
	inTx      bool
	tx        source
	lastPos   LSN
	before    []value // scratch tuples of the change being decoded
	after     []value
}

// startStream starts replication on conn (a replication connection) at from (0: the slot's
// confirmed position) and the reader and heartbeat goroutines.
func (s *Source) startStream(ctx context.Context, conn *pgconn.PgConn, from LSN) (*stream, error) {
	args := []string{"proto_version '" + s.protoVersion + "'", "publication_names '" + s.cfg.Publication + "'"}
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, from, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55000" {
			if keep, confirmed, lost := lostSince(ctx, conn, s.cfg.Slot); lost {
				return nil, lostSlot(s.cfg.Slot, "max_slot_wal_keep_size = "+keep, confirmed, classify(err, "START_REPLICATION"))
			}
		}
		return nil, classify(err, fmt.Sprintf("start replication from slot %q", s.cfg.Slot))
	}
	st := &stream{
		conn: conn, items: make(chan item, s.cfg.BatchSize), stop: make(chan struct{}), src: s,
		relations: map[uint32]*relation{}, enc: encoder{db: s.cfg.Database}, lastPos: from,
	}
	st.wg.Go(st.read)
	st.wg.Go(st.heartbeat)
	s.log.Info("streaming changes", "slot", s.cfg.Slot, "publication", s.cfg.Publication, "from", from.String(), "proto_version", s.protoVersion)
	return st, nil
}

// lostSince tells whether PostgreSQL invalidated the slot (after START_REPLICATION failed with
// 55000: during a long snapshot, say, since the connector last read it), with max_slot_wal_keep_size
// and the slot's confirmed position. It asks on the replication connection, which runs SQL
// (replication=database) once the failed command's ReadyForQuery, which pglogrepl leaves unread,
// is read.
func lostSince(ctx context.Context, conn *pgconn.PgConn, slot string) (keep, confirmed string, lost bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return "", "", false
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	// slot is a valid SLOT_NAME (lower-case letters, digits, '_'): safe in the literal
	rs, err := conn.Exec(ctx, `SELECT coalesce(to_jsonb(s) ->> 'wal_status', ''), coalesce(current_setting('max_slot_wal_keep_size', true), '?'),
		coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots s WHERE slot_name = '`+slot+`'`).ReadAll()
	if err != nil || len(rs) != 1 || rs[0].Err != nil || len(rs[0].Rows) != 1 {
		return "", "", false
	}
	row := rs[0].Rows[0]
	return string(row[1]), string(row[2]), string(row[0]) == "lost"
}

// close reports the confirmed position one last time and ends the connection and goroutines.
func (st *stream) close() {
	_ = st.sendStatus()
	close(st.stop)
	_ = st.conn.Conn().Close() // unblocks the reader
	st.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = st.conn.Close(ctx)
}

// reportAcked is sendStatus when the acked position moved since the last report (Commit: one
// status update per advance, not per call).
func (st *stream) reportAcked() error {
	st.writeMu.Lock()
	moved := LSN(st.src.confirmed.Load()) > st.sent
	st.writeMu.Unlock()
	if !moved {
		return nil
	}
	return st.sendStatus()
}

// sendStatus tells PostgreSQL the position Danube has acked everything up to: the slot may
// release the WAL before it.
func (st *stream) sendStatus() error {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	lsn := LSN(st.src.confirmed.Load())
	st.sent = lsn
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn, ClientTime: time.Now(),
	})
	if err != nil {
		return runtime.Disconnected(fmt.Errorf("send standby status update: %w", err))
	}
	return nil
}

func (st *stream) heartbeat() {
	t := time.NewTicker(st.src.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			_ = st.sendStatus() // a broken connection shows in the reader
		}
	}
}

// emit hands one item to Poll; false when the stream is stopping.
func (st *stream) emit(it item) bool {
	select {
	case st.items <- it:
		return true
	case <-st.stop:
		return false
	}
}

func (st *stream) read() {
	for {
		msg, err := st.conn.ReceiveMessage(context.Background())
		if err != nil {
			select {
			case <-st.stop:
			default:
				st.emit(item{err: classify(err, "replication stream")})
			}
			return
		}
		var recs []record
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			recs, err = st.copyData(msg.Data)
		case *pgproto3.ErrorResponse:
			err = classify(pgconn.ErrorResponseToPgError(msg), "replication stream")
		case *pgproto3.CopyDone:
			err = runtime.Disconnected(errors.New("replication stream: the server ended the stream"))
		}
		for _, r := range recs {
			if !st.emit(item{rec: r}) {
				return
			}
		}
		if err != nil {
			st.emit(item{err: err})
			return
		}
	}
}

func (st *stream) copyData(data []byte) ([]record, error) {
	if len(data) == 0 {
		return nil, nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return nil, runtime.Fatal(fmt.Errorf("replication stream: %w", err))
		}
		st.src.seen(ka.ServerWALEnd)
		if ka.ReplyRequested {
			if err := st.sendStatus(); err != nil {
				return nil, err
			}
		}
		// Between transactions everything before ServerWALEnd has been sent: confirming it once
		// Danube acked what came before keeps an idle or filtered slot from retaining WAL.
		if !st.inTx && ka.ServerWALEnd > st.lastPos {
			st.lastPos = ka.ServerWALEnd
			return []record{runtime.Checkpoint(ka.ServerWALEnd)}, nil
		}
		return nil, nil
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return nil, runtime.Fatal(fmt.Errorf("replication stream: %w", err))
		}
		st.src.seen(x.WALStart)
		return st.decode(x)
	}
	return nil, nil
}

// decode turns one pgoutput message into records. Change events carry no position: the
// transaction's end LSN, on a checkpoint after its last event, is what Commit confirms, so a
// transaction is confirmed only when Danube has all of it.
func (st *stream) decode(x pglogrepl.XLogData) ([]record, error) {
	if len(x.WALData) > 0 {
		switch x.WALData[0] {
		case 'I', 'U', 'D': // the bulk of the stream: decoded in place (see decodeChange)
			return st.decodeChange(x)
		}
	}
	msg, err := pglogrepl.ParseV2(x.WALData, false)
	if err != nil {
		return nil, runtime.Fatal(fmt.Errorf("replication stream at LSN %s: decode pgoutput: %w", x.WALStart, err))
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		return nil, st.relation(&m.RelationMessage)
	case *pglogrepl.RelationMessage:
		return nil, st.relation(m)
	case *pglogrepl.BeginMessage:
		st.inTx = true
		st.tx = source{lsn: m.FinalLSN, txid: m.Xid, commitTime: m.CommitTime}
		if st.src.cfg.TxMarkers {
			return []record{{Payload: st.enc.marker(OpBegin, st.tx), Attributes: markerAttrs(OpBegin), Schema: st.src.markers()}}, nil
		}
	case *pglogrepl.CommitMessage:
		st.inTx = false
		st.lastPos = max(st.lastPos, m.TransactionEndLSN)
		if st.src.cfg.TxMarkers {
			src := st.tx
			src.lsn = m.CommitLSN
			commit := runtime.NewSourceRecord("", st.enc.marker(OpCommit, src), m.TransactionEndLSN).WithKey("").
				WithAttribute("op", OpCommit).WithAttribute("content-type", "application/json")
			commit.Schema = st.src.markers()
			return []record{commit}, nil
		}
		return []record{runtime.Checkpoint(m.TransactionEndLSN)}, nil
	case *pglogrepl.TruncateMessageV2:
		var recs []record
		for _, id := range m.RelationIDs {
			rel := st.relations[id]
			if rel == nil || !rel.captured {
				continue
			}
			src := st.tx
			src.lsn = x.WALStart
			payload, err := st.enc.encode(OpTruncate, rel.table, rel.cols, nil, nil, src)
			if err != nil {
				return nil, runtime.Fatal(err)
			}
			recs = append(recs, rel.schema.record(record{Topic: rel.topic, Payload: payload, Attributes: rel.attrs[OpTruncate], Origin: func() string {
				return fmt.Sprintf("table %s, TRUNCATE at LSN %s in transaction %d", rel.table, src.lsn, src.txid)
			}}))
		}
		return recs, nil
	}
	return nil, nil
}

func markerAttrs(op string) map[string]string {
	return map[string]string{"op": op, "content-type": "application/json"}
}

// relation records a RELATION message: sent before a table's first change in a session and after
// a change to the table.
func (st *stream) relation(m *pglogrepl.RelationMessage) error {
	t := Table{m.Namespace, m.RelationName}
	rel := &relation{table: t, captured: st.src.captured[t], topic: st.src.cfg.topicFor(t)}
	if rel.captured {
		var err error
		if rel.schema, err = st.src.schemaFor(context.Background(), t, m); err != nil {
			return err
		}
	}
	info := st.src.info[t]
	for _, c := range m.Columns {
		rel.cols = append(rel.cols, column{name: c.Name, oid: c.DataType})
		rel.keyFlags = append(rel.keyFlags, c.Flags&1 != 0)
	}
	for _, name := range info.pk {
		for i, c := range rel.cols {
			if c.name == name {
				rel.pk = append(rel.pk, i)
			}
		}
	}
	rel.attrs = map[string]map[string]string{}
	for _, op := range []string{OpInsert, OpUpdate, OpDelete, OpTruncate} {
		rel.attrs[op] = map[string]string{"table": t.String(), "op": op, "content-type": st.src.cfg.contentType()}
	}
	st.relations[m.RelationID] = rel
	return nil
}

// errShort is a pgoutput message cut short.
var errShort = errors.New("message ends early")

// decodeChange decodes a pgoutput INSERT, UPDATE or DELETE (the stream runs without the streaming
// option, so they carry no xid) without copying: the values point into the message, which stays
// valid until the next one is received, and the event is encoded before that.
func (st *stream) decodeChange(x pglogrepl.XLogData) ([]record, error) {
	d := x.WALData
	fail := func(err error) ([]record, error) {
		return nil, runtime.Fatal(fmt.Errorf("replication stream at LSN %s: decode pgoutput %q message: %w", x.WALStart, d[0], err))
	}
	if len(d) < 6 {
		return fail(errShort)
	}
	kind, relID, rest := d[0], binary.BigEndian.Uint32(d[1:5]), d[5:]
	rel := st.relations[relID]
	if rel == nil {
		return nil, runtime.Fatal(fmt.Errorf("replication stream at LSN %s: change for relation %d before its RELATION message", x.WALStart, relID))
	}
	if !rel.captured {
		return nil, nil // a table outside TABLE_WHITELIST (FOR ALL TABLES publication): the commit checkpoint covers it
	}
	var before, after []value
	var err error
	if kind != 'I' && len(rest) > 0 && (rest[0] == 'K' || rest[0] == 'O') {
		// 'K': only the replica identity key columns are meaningful (the others are sent as NULL)
		if before, rest, err = parseTuple(rest[1:], st.before, rel.keyFlags, rest[0] == 'K'); err != nil {
			return fail(err)
		}
		st.before = before
	}
	if kind != 'D' {
		if len(rest) == 0 || rest[0] != 'N' {
			return fail(errors.New("no new tuple"))
		}
		if after, _, err = parseTuple(rest[1:], st.after, nil, false); err != nil {
			return fail(err)
		}
		st.after = after
	} else if before == nil {
		return fail(errors.New("no old tuple"))
	}
	op := OpInsert
	switch kind {
	case 'U':
		op = OpUpdate
	case 'D':
		op = OpDelete
	}
	return st.change(op, rel, x.WALStart, before, after)
}

// parseTuple reads pgoutput TupleData into vals (reused); keyOnly leaves the columns that are not
// part of the replica identity key out.
func parseTuple(b []byte, vals []value, keyFlags []bool, keyOnly bool) ([]value, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	vals = slices.Grow(vals[:0], n)[:n]
	for i := range n {
		if len(b) == 0 {
			return nil, nil, errShort
		}
		kind := b[0]
		b = b[1:]
		var v value
		switch kind {
		case pglogrepl.TupleDataTypeNull:
			v.null = true
		case pglogrepl.TupleDataTypeToast:
			v.unchanged = true
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			if len(b) < 4 {
				return nil, nil, errShort
			}
			l := int(binary.BigEndian.Uint32(b))
			b = b[4:]
			if l < 0 || l > len(b) {
				return nil, nil, errShort
			}
			v.data = b[:l:l]
			b = b[l:]
		default:
			return nil, nil, fmt.Errorf("column %d: unknown tuple data kind %q", i, kind)
		}
		if keyOnly && (i >= len(keyFlags) || !keyFlags[i]) {
			v = value{}
		}
		vals[i] = v
	}
	return vals, b, nil
}

func (st *stream) change(op string, rel *relation, lsn LSN, before, after []value) ([]record, error) {
	src := st.tx
	src.lsn = lsn
	payload, err := st.enc.encode(op, rel.table, rel.cols, before, after, src)
	if err != nil {
		return nil, runtime.Fatal(err)
	}
	keyVals := after
	if keyVals == nil {
		keyVals = before
	}
	key := routingKey(rel.pk, keyVals)
	return []record{rel.schema.record(record{Topic: rel.topic, Payload: payload, Attributes: rel.attrs[op], Key: key, Origin: func() string {
		return origin(rel.table, rel.cols, rel.pk, key, fmt.Sprintf("%s at LSN %s in transaction %d", op, src.lsn, src.txid))
	}})}, nil
}

// atomicMax raises v to x.
func atomicMax(v *atomic.Uint64, x uint64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}
