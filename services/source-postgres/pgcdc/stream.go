package pgcdc

import (
	"context"
	"errors"
	"fmt"
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
}

// stream is one replication connection streaming the slot: a reader goroutine decodes pgoutput
// into records; status updates (the confirmed LSN) are written beside it.
type stream struct {
	conn    *pgconn.PgConn
	items   chan item
	stop    chan struct{}
	wg      sync.WaitGroup
	writeMu sync.Mutex
	src     *Source

	// reader goroutine only
	relations map[uint32]*relation
	enc       encoder
	inTx      bool
	tx        source
	lastPos   LSN
}

// startStream starts replication on conn (a replication connection) at from (0: the slot's
// confirmed position) and the reader and heartbeat goroutines.
func (s *Source) startStream(ctx context.Context, conn *pgconn.PgConn, from LSN) (*stream, error) {
	args := []string{"proto_version '" + s.protoVersion + "'", "publication_names '" + s.cfg.Publication + "'"}
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, from, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
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

// sendStatus tells PostgreSQL the position Danube has acked everything up to: the slot may
// release the WAL before it.
func (st *stream) sendStatus() error {
	lsn := LSN(st.src.confirmed.Load())
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn, ClientTime: time.Now(),
	})
	if err != nil {
		return runtime.Disconnected(fmt.Errorf("send standby status update: %w", err))
	}
	return nil
}

func (st *stream) heartbeat() {
	t := time.NewTicker(st.src.cfg.Heartbeat.D())
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
	msg, err := pglogrepl.ParseV2(x.WALData, false)
	if err != nil {
		return nil, runtime.Fatal(fmt.Errorf("replication stream at LSN %s: decode pgoutput: %w", x.WALStart, err))
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		st.relation(&m.RelationMessage)
	case *pglogrepl.RelationMessage:
		st.relation(m)
	case *pglogrepl.BeginMessage:
		st.inTx = true
		st.tx = source{lsn: m.FinalLSN, txid: m.Xid, commitTime: m.CommitTime}
		if st.src.cfg.TxMarkers {
			return []record{{Payload: st.enc.marker(OpBegin, st.tx), Attributes: markerAttrs(OpBegin)}}, nil
		}
	case *pglogrepl.CommitMessage:
		st.inTx = false
		st.lastPos = max(st.lastPos, m.TransactionEndLSN)
		if st.src.cfg.TxMarkers {
			src := st.tx
			src.lsn = m.CommitLSN
			return []record{runtime.NewSourceRecord("", st.enc.marker(OpCommit, src), m.TransactionEndLSN).WithKey("").
				WithAttribute("op", OpCommit).WithAttribute("content-type", "application/json")}, nil
		}
		return []record{runtime.Checkpoint(m.TransactionEndLSN)}, nil
	case *pglogrepl.InsertMessageV2:
		return st.change(OpInsert, m.RelationID, x.WALStart, 0, nil, m.Tuple)
	case *pglogrepl.UpdateMessageV2:
		return st.change(OpUpdate, m.RelationID, x.WALStart, m.OldTupleType, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessageV2:
		return st.change(OpDelete, m.RelationID, x.WALStart, m.OldTupleType, m.OldTuple, nil)
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
			recs = append(recs, record{Topic: rel.topic, Payload: payload, Attributes: rel.attrs[OpTruncate]})
		}
		return recs, nil
	}
	return nil, nil
}

func markerAttrs(op string) map[string]string {
	return map[string]string{"op": op, "content-type": "application/json"}
}

func (st *stream) relation(m *pglogrepl.RelationMessage) {
	t := Table{m.Namespace, m.RelationName}
	rel := &relation{table: t, captured: st.src.captured[t], topic: st.src.cfg.topicFor(t)}
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
		rel.attrs[op] = map[string]string{"table": t.String(), "op": op, "content-type": "application/json"}
	}
	st.relations[m.RelationID] = rel
}

// tuple converts pgoutput tuple data; keyOnly keeps only replica identity key columns (a 'K' old
// tuple sends the others as NULL, which they are not).
func tuple(td *pglogrepl.TupleData, rel *relation, keyOnly bool) []value {
	if td == nil {
		return nil
	}
	vals := make([]value, len(td.Columns))
	for i, c := range td.Columns {
		if keyOnly && (i >= len(rel.keyFlags) || !rel.keyFlags[i]) {
			continue
		}
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			vals[i].null = true
		case pglogrepl.TupleDataTypeToast:
			vals[i].unchanged = true
		default:
			vals[i].data = c.Data
		}
	}
	return vals
}

func (st *stream) change(op string, relID uint32, lsn LSN, oldType uint8, oldTuple, newTuple *pglogrepl.TupleData) ([]record, error) {
	rel := st.relations[relID]
	if rel == nil {
		return nil, runtime.Fatal(fmt.Errorf("replication stream at LSN %s: change for relation %d before its RELATION message", lsn, relID))
	}
	if !rel.captured {
		return nil, nil // a table outside TABLE_WHITELIST (FOR ALL TABLES publication): the commit checkpoint covers it
	}
	before := tuple(oldTuple, rel, oldType == pglogrepl.UpdateMessageTupleTypeKey)
	after := tuple(newTuple, rel, false)
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
	return []record{{Topic: rel.topic, Payload: payload, Attributes: rel.attrs[op], Key: routingKey(rel.pk, keyVals)}}, nil
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
