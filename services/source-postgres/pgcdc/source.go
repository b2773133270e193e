// Package pgcdc is the PostgreSQL change data capture source: it streams every committed change of
// the chosen tables from a logical replication slot (pgoutput) into Danube as JSON events, after an
// optional initial snapshot read in the snapshot the slot exported, and confirms a WAL position to
// PostgreSQL only once Danube acknowledged every event before it.
//
// Positions: change events carry none; the end LSN of each transaction rides on a checkpoint record
// after its last event (and keepalives between transactions advance an idle or filtered stream), so
// the runtime's ordered watermark hands Commit a transaction's LSN only when Danube has all of it.
//
// Replicas: the instance holding a session advisory lock derived from SLOT_NAME leads; the others
// stay not ready and try again every POLL_INTERVAL_MS, taking over when the leader's session ends.
package pgcdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// phases of a leader.
const (
	phaseSetup    = iota // not leading yet, or reconnected: acquire the lock, prepare slot and snapshot
	phaseSnapshot        // reading the tables
	phaseStream          // streaming the slot
	phaseDone            // SNAPSHOT_MODE=initial_only finished
)

// Source is the connector.
type Source struct {
	cfg      *Config
	log      *slog.Logger
	tables   []Table
	captured map[Table]bool
	info     map[Table]tableInfo

	adminMu sync.Mutex
	admin   *pgx.Conn // setup, the leadership lock, snapshot progress, the catalog for schemas

	schemasMu sync.Mutex
	schemas   map[Table]*derived // SCHEMA_TYPE: each table's schema as last derived

	leader  atomic.Bool
	waiting atomic.Pointer[string] // why this instance is not ready

	heartbeat time.Duration // HEARTBEAT_INTERVAL_MS, at most half the server's wal_sender_timeout

	// Poll's goroutine (and Reconnect and Shutdown, which never run beside it)
	phase        int
	protoVersion string
	repl         *pgconn.PgConn // replication connection before streaming starts (slot created)
	tempRepl     *pgconn.PgConn // holds the temporary slot whose snapshot reads tables added later
	snap         *snapshot
	consistent   LSN // where streaming starts after a snapshot (0: the slot's confirmed position)
	stream       atomic.Pointer[stream]
	held         error // an error that ended the stream after records Poll returned first

	confirmed atomic.Uint64 // LSN acked by Danube (what status updates report)
	walEnd    atomic.Uint64 // furthest server WAL position seen (lag)

	// positioned records emitted, and the snapshot progress each snapshot checkpoint stands for
	marksMu   sync.Mutex
	emitted   uint64
	committed uint64
	marks     []mark
}

type mark struct {
	seq uint64 // the positioned record's number (1-based)
	p   progress
}

// New returns the connector for cfg.
func New(cfg *Config, res runtime.Resources) (runtime.SourceConnector[LSN], error) {
	return newSource(cfg, res), nil
}

func newSource(cfg *Config, res runtime.Resources) *Source {
	s := &Source{cfg: cfg, log: res.Logger, tables: cfg.TableList(), captured: map[Table]bool{}, heartbeat: cfg.Heartbeat.D(),
		schemas: map[Table]*derived{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, t := range s.tables {
		s.captured[t] = true
	}
	return s
}

// connConfig returns pgx's config with the session settings pgjson relies on.
func (s *Source) connConfig(replication bool) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(s.cfg.dsn(replication))
	if err != nil {
		return nil, runtime.Fatal(fmt.Errorf("PostgreSQL connection settings: %w", err))
	}
	for k, v := range map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, YMD", "bytea_output": "hex", "extra_float_digits": "3", "IntervalStyle": "iso_8601"} {
		cc.RuntimeParams[k] = v
	}
	cc.ConnectTimeout = 10 * time.Second
	return cc, nil
}

func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := s.connConfig(false)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, classify(err, fmt.Sprintf("connect to PostgreSQL %s:%d/%s", s.cfg.Host, s.cfg.Port, s.cfg.Database))
	}
	return conn, nil
}

func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := s.connConfig(true)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, &cc.Config)
	if err != nil {
		return nil, classify(err, fmt.Sprintf("open replication connection to %s:%d/%s", s.cfg.Host, s.cfg.Port, s.cfg.Database))
	}
	return conn, nil
}

// Initialize connects and checks the server, the user and the tables. A server that cannot be
// reached yet (down, starting up, not resolvable) is Disconnected: the runtime waits and calls
// Initialize again. What only an administrator can fix stops the connector with the fix named.
func (s *Source) Initialize(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	if err := s.inspect(ctx, conn); err != nil {
		closeConn(conn)
		return err
	}
	s.admin = conn
	s.setWaiting("starting")
	return nil
}

// inspect checks the server, the user and the tables on conn and picks the pgoutput version.
func (s *Source) inspect(ctx context.Context, conn *pgx.Conn) error {
	if err := checkServer(ctx, conn, s.cfg.User); err != nil {
		return err
	}
	var err error
	if s.info, err = inspectTables(ctx, conn, s.tables, s.cfg.SnapshotMode != SnapshotNever); err != nil {
		return err
	}
	var timeout time.Duration
	if err := conn.QueryRow(ctx, "SELECT setting::bigint * interval '1 ms' FROM pg_settings WHERE name = 'wal_sender_timeout'").Scan(&timeout); err != nil {
		return classify(err, "read wal_sender_timeout")
	}
	if timeout > 0 && s.heartbeat > timeout/2 {
		// While Danube is away the stream is not read, so PostgreSQL's keepalives go unanswered:
		// these status updates are all that keeps the walsender from ending the connection.
		s.heartbeat = timeout / 2
		s.log.Warn("HEARTBEAT_INTERVAL_MS is too long for the server's wal_sender_timeout: standby status goes every half of it instead",
			"HEARTBEAT_INTERVAL_MS", s.cfg.Heartbeat.D().Milliseconds(), "wal_sender_timeout", timeout.String(), "interval", s.heartbeat.String())
	}
	s.protoVersion = "1"
	if v, _ := strconv.Atoi(conn.PgConn().ParameterStatus("server_version_num")); v >= 140000 {
		s.protoVersion = "2"
	} else if v == 0 {
		var num string
		if conn.QueryRow(ctx, "SHOW server_version_num").Scan(&num) == nil {
			if n, _ := strconv.Atoi(num); n >= 140000 {
				s.protoVersion = "2"
			}
		}
	}
	return nil
}

// closeConn ends a session, waiting at most a second for a server that may be gone.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (s *Source) setWaiting(why string) {
	if why == "" {
		s.waiting.Store(nil)
		return
	}
	s.waiting.Store(&why)
}

// Poll returns the next snapshot chunk or the changes streamed so far (waiting for the first).
func (s *Source) Poll(ctx context.Context) ([]record, error) {
	if s.phase == phaseSetup {
		if err := s.lead(ctx); err != nil || s.phase == phaseSetup {
			return nil, err
		}
	}
	switch s.phase {
	case phaseSnapshot:
		return s.pollSnapshot(ctx)
	case phaseStream:
		return s.pollStream(ctx)
	case phaseDone:
		// SNAPSHOT_MODE=initial_only: the runtime drains, waits for Danube's acks and the
		// progress Commit records, then exits 0.
		return nil, runtime.ErrSourceDone
	}
	return nil, nil
}

// lead takes leadership (the advisory lock) or reports why not, then prepares the slot, the
// publication and the snapshot.
func (s *Source) lead(ctx context.Context) error {
	if !s.leader.Load() {
		var got bool
		s.adminMu.Lock()
		err := s.admin.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", "danube-source-postgres/"+s.cfg.Slot).Scan(&got)
		s.adminMu.Unlock()
		if err != nil {
			return classify(err, "take the leadership lock")
		}
		if !got {
			s.setWaiting(fmt.Sprintf("standby: another replica streams slot %q; waiting to take over", s.cfg.Slot))
			return nil // the runtime polls again after POLL_INTERVAL_MS
		}
		s.leader.Store(true)
		s.log.Info("leading: holds the lock of the slot", "slot", s.cfg.Slot)
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if err := s.prepare(ctx); err != nil {
		return err
	}
	s.setWaiting("")
	return nil
}

// prepare decides between snapshot and streaming (adminMu held).
func (s *Source) prepare(ctx context.Context) error {
	mode := s.cfg.SnapshotMode
	if mode != SnapshotNever {
		if err := ensureStateTable(ctx, s.admin, s.cfg.SnapshotState); err != nil {
			return err
		}
	}
	if mode == SnapshotInitialOnly {
		return s.prepareSnapshotOnly(ctx)
	}
	slot, err := readSlot(ctx, s.admin, s.cfg.Slot, s.cfg.Database)
	if err != nil {
		return err
	}
	if !slot.found {
		if err := ensurePublication(ctx, s.admin, s.cfg.Publication, s.tables); err != nil {
			return err
		}
		return s.createSlot(ctx)
	}
	var added []Table
	if mode == SnapshotInitial {
		// Tables new to the whitelist are recorded as to read before the publication gains them:
		// a crash in between reads them from the start again, never skips them.
		if added, err = publicationLacks(ctx, s.admin, s.cfg.Publication, s.tables); err != nil {
			return classify(err, fmt.Sprintf("read publication %q", s.cfg.Publication))
		}
		if err := addProgress(ctx, s.admin, s.cfg.SnapshotState, s.cfg.Slot, added, true); err != nil {
			return classify(err, "record snapshot progress")
		}
	}
	if err := ensurePublication(ctx, s.admin, s.cfg.Publication, s.tables); err != nil {
		return err
	}
	s.confirmed.Store(max(s.confirmed.Load(), uint64(slot.confirmed)))
	if mode == SnapshotInitial {
		pending, err := pendingProgress(ctx, s.admin, s.cfg.SnapshotState, s.cfg.Slot, s.tables)
		if err != nil {
			return classify(err, "read snapshot progress")
		}
		if len(pending) > 0 {
			return s.snapshotPending(ctx, slot.confirmed, added, pending)
		}
	}
	return s.beginStreaming(ctx, 0)
}

// snapshotPending reads the tables just added to the publication and the unfinished snapshots a
// crash left (from their recorded progress) before streaming resumes from the slot's confirmed
// position, which precedes the publication change (or the slot's creation).
//
// The rows are read in the snapshot a temporary slot exports: creating it waits for every
// transaction running at the time to end, so the snapshot holds every change committed before the
// publication gained the tables — including changes of a transaction that began before and
// committed after, which the stream leaves out because the table was not published when they were
// written. Every change after the publication change comes from the stream, after the READ events
// (those up to the temporary slot's point arrive twice: at-least-once). The confirmed position
// does not move during the snapshot, so a crash mid-way resumes it from its recorded progress, in
// a new temporary slot's snapshot, and replays the stream from before the publication change.
func (s *Source) snapshotPending(ctx context.Context, from LSN, added []Table, pending []progress) error {
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%.48s_add_%s", s.cfg.Slot, hex.EncodeToString(b[:]))
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT",
	})
	if err != nil {
		_ = repl.Close(context.Background())
		return classify(err, fmt.Sprintf("create temporary replication slot %q for the snapshot", name))
	}
	s.log.Info("snapshot of tables added to TABLE_WHITELIST or left unfinished; streaming resumes after it",
		"added", tableNames(tablesProgress(added)), "tables", tableNames(pending), "temporary_slot", name,
		"snapshot_point", res.ConsistentPoint, "resume_from", from.String())
	if err := s.startSnapshot(ctx, res.SnapshotName, from, pending); err != nil {
		_ = repl.Close(context.Background()) // drops the temporary slot; the next Poll prepares again
		return err
	}
	s.tempRepl = repl // the exported snapshot and the temporary slot live as long as this session
	return nil
}

func tablesProgress(ts []Table) []progress {
	out := make([]progress, len(ts))
	for i, t := range ts {
		out[i] = progress{table: t}
	}
	return out
}

func tableNames(ps []progress) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.table.String()
	}
	return out
}

// prepareSnapshotOnly snapshots without a slot (SNAPSHOT_MODE=initial_only), resuming progress; a
// table without progress (new to the whitelist) is read from the start.
func (s *Source) prepareSnapshotOnly(ctx context.Context) error {
	if err := addProgress(ctx, s.admin, s.cfg.SnapshotState, s.cfg.Slot, s.tables, false); err != nil {
		return classify(err, "record snapshot progress")
	}
	pending, err := pendingProgress(ctx, s.admin, s.cfg.SnapshotState, s.cfg.Slot, s.tables)
	if err != nil {
		return classify(err, "read snapshot progress")
	}
	if len(pending) == 0 {
		s.phase = phaseDone
		s.log.Info("SNAPSHOT_MODE=initial_only: every table's snapshot is already complete (" + s.cfg.SnapshotState + "); nothing to read")
		return nil
	}
	return s.startSnapshot(ctx, "", 0, pending)
}

// createSlot creates the slot; with SNAPSHOT_MODE=initial the tables are read in the snapshot it
// exports, so that streaming from its consistent point misses nothing and repeats nothing.
func (s *Source) createSlot(ctx context.Context) error {
	snapshot := s.cfg.SnapshotMode == SnapshotInitial
	if snapshot {
		if err := resetProgress(ctx, s.admin, s.cfg.SnapshotState, s.cfg.Slot, s.tables); err != nil {
			return classify(err, "record snapshot progress")
		}
	}
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	action := "NOEXPORT_SNAPSHOT"
	if snapshot {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.LogicalReplication, SnapshotAction: action,
	})
	if err != nil {
		_ = repl.Close(context.Background())
		return classify(err, fmt.Sprintf("create replication slot %q", s.cfg.Slot))
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		_ = repl.Close(context.Background())
		return runtime.Fatal(fmt.Errorf("create replication slot %q: consistent point %q: %w", s.cfg.Slot, res.ConsistentPoint, err))
	}
	s.log.Info("created replication slot", "slot", s.cfg.Slot, "consistent_point", res.ConsistentPoint, "snapshot", res.SnapshotName)
	s.confirmed.Store(uint64(lsn))
	s.repl = repl // idle until the snapshot is over: its exported snapshot lives as long as it does
	if !snapshot {
		return s.beginStreaming(ctx, lsn)
	}
	return s.startSnapshot(ctx, res.SnapshotName, lsn, tablesProgress(s.tables))
}

func (s *Source) startSnapshot(ctx context.Context, exported string, pos LSN, pending []progress) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	if err := beginSnapshot(ctx, conn, exported); err != nil {
		_ = conn.Close(context.Background())
		return classify(err, "begin the snapshot transaction")
	}
	s.snap = &snapshot{conn: conn, pending: pending, pos: pos, enc: encoder{db: s.cfg.Database}, cols: map[Table][]column{}}
	s.consistent = pos
	s.phase = phaseSnapshot
	s.log.Info("snapshot started", "tables", len(pending), "exported_snapshot", exported, "position", pos.String())
	return nil
}

// beginStreaming starts replication (on the connection that created the slot, if any).
func (s *Source) beginStreaming(ctx context.Context, from LSN) error {
	repl := s.repl
	s.repl = nil
	if repl == nil {
		var err error
		if repl, err = s.connectReplication(ctx); err != nil {
			return err
		}
	}
	st, err := s.startStream(ctx, repl, from)
	if err != nil {
		_ = repl.Close(context.Background())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // slot active: a replica without our lock (older version, or the lock was lost)
			s.setWaiting(fmt.Sprintf("standby: replication slot %q is in use by another process", s.cfg.Slot))
			return fmt.Errorf("replication slot %q is in use by another process: %w", s.cfg.Slot, pgErr)
		}
		return err
	}
	s.stream.Store(st)
	s.phase = phaseStream
	return nil
}

func (s *Source) pollSnapshot(ctx context.Context) ([]record, error) {
	recs, p, err := s.snap.next(ctx, s)
	if err != nil {
		return nil, err
	}
	if p == nil { // every table read: stream from the slot's consistent point
		_, _ = s.snap.conn.Exec(ctx, "COMMIT")
		_ = s.snap.conn.Close(context.Background())
		s.snap = nil
		if s.tempRepl != nil { // drops the temporary slot
			_ = s.tempRepl.Close(context.Background())
			s.tempRepl = nil
		}
		if s.cfg.SnapshotMode == SnapshotInitialOnly {
			s.phase = phaseDone
			s.log.Info("SNAPSHOT_MODE=initial_only: every table read; exiting once Danube acknowledged it all")
			return nil, runtime.ErrSourceDone
		}
		return nil, s.beginStreaming(ctx, s.consistent)
	}
	recs = append(recs, runtime.Checkpoint(s.snap.pos))
	s.marksMu.Lock()
	s.emitted++
	s.marks = append(s.marks, mark{seq: s.emitted, p: *p})
	s.marksMu.Unlock()
	return recs, nil
}

func (s *Source) pollStream(ctx context.Context) ([]record, error) {
	if err := s.held; err != nil {
		s.held = nil
		return nil, err
	}
	st := s.stream.Load()
	recs := make([]record, 0, min(len(st.items)+1, s.cfg.BatchSize))
	select {
	case it := <-st.items:
		if it.err != nil {
			return nil, it.err
		}
		recs = append(recs, it.rec)
	case <-ctx.Done():
		return nil, nil
	}
drain: // what the reader has ready, without waiting
	for len(recs) < s.cfg.BatchSize {
		select {
		case it := <-st.items:
			if it.err != nil {
				s.held = it.err // returned by the next Poll, after these records are handed over
				break drain
			}
			recs = append(recs, it.rec)
		default:
			break drain
		}
	}
	return s.count(recs), nil
}

// count numbers the positioned records (see Commit).
func (s *Source) count(recs []record) []record {
	n := uint64(0)
	for i := range recs {
		if _, ok := recs[i].Position(); ok {
			n++
		}
	}
	s.marksMu.Lock()
	s.emitted += n
	s.marksMu.Unlock()
	return recs
}

// Commit confirms the last LSN Danube acked everything up to, and records snapshot progress.
func (s *Source) Commit(ctx context.Context, positions []LSN) error {
	s.marksMu.Lock()
	upto := s.committed + uint64(len(positions))
	var done []progress
	for len(s.marks) > 0 && s.marks[0].seq <= upto {
		done = append(done, s.marks[0].p)
		s.marks = s.marks[1:]
	}
	s.marksMu.Unlock()
	if len(done) > 0 {
		latest := map[Table]progress{}
		var order []Table
		for _, p := range done {
			if _, ok := latest[p.table]; !ok {
				order = append(order, p.table)
			}
			latest[p.table] = p
		}
		s.adminMu.Lock()
		for _, t := range order {
			if err := saveProgress(ctx, s.admin, s.cfg.SnapshotState, s.cfg.Slot, latest[t]); err != nil {
				s.adminMu.Unlock()
				s.requeue(done)
				return classify(err, "record snapshot progress")
			}
		}
		s.adminMu.Unlock()
	}
	s.marksMu.Lock()
	s.committed = upto
	s.marksMu.Unlock()
	atomicMax(&s.confirmed, uint64(positions[len(positions)-1]))
	if st := s.stream.Load(); st != nil {
		return st.reportAcked()
	}
	return nil
}

// requeue puts back progress a failed Commit did not record (the runtime retries the positions).
func (s *Source) requeue(done []progress) {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	back := make([]mark, len(done))
	for i, p := range done {
		back[i] = mark{seq: s.committed + 1, p: p}
	}
	s.marks = append(back, s.marks...)
}

// seen records a server WAL position for the lag.
func (s *Source) seen(lsn LSN) { atomicMax(&s.walEnd, uint64(lsn)) }

// Lag is the WAL in bytes between the server's position and what Danube acked.
func (s *Source) Lag() int64 {
	end, done := s.walEnd.Load(), s.confirmed.Load()
	if end <= done {
		return 0
	}
	return int64(end - done)
}

// HealthCheck is not ready while this instance is a standby; a lost session is Disconnected.
func (s *Source) HealthCheck(ctx context.Context) error {
	if why := s.waiting.Load(); why != nil {
		return errors.New(*why)
	}
	if !s.adminMu.TryLock() {
		return nil // busy with setup or progress: it is alive
	}
	defer s.adminMu.Unlock()
	if err := s.admin.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return runtime.Disconnected(fmt.Errorf("PostgreSQL session: %w", err))
	}
	return nil
}

// Reconnect drops every connection (and with the session the leadership) and opens the session
// again; the next Poll takes the lead again and resumes from the confirmed position.
func (s *Source) Reconnect(ctx context.Context) error {
	s.closeAll()
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	s.adminMu.Lock()
	s.admin = conn
	s.adminMu.Unlock()
	return nil
}

// closeAll ends the stream (reporting the confirmed position), the snapshot and the session.
func (s *Source) closeAll() {
	if st := s.stream.Swap(nil); st != nil {
		st.close()
	}
	s.held = nil
	for _, c := range []**pgconn.PgConn{&s.repl, &s.tempRepl} {
		if *c != nil {
			_ = (*c).Close(context.Background())
			*c = nil
		}
	}
	if s.snap != nil {
		_ = s.snap.conn.Close(context.Background())
		s.snap = nil
	}
	s.adminMu.Lock()
	if s.admin != nil {
		closeConn(s.admin) // releases the leadership lock
	}
	s.adminMu.Unlock()
	s.leader.Store(false)
	s.phase = phaseSetup
	s.setWaiting("reconnecting to PostgreSQL")
}

// Shutdown reports the confirmed position and closes every connection.
func (s *Source) Shutdown(context.Context) error {
	s.closeAll()
	return nil
}
