// Package chsink is the ClickHouse sink connector: it inserts the JSON object messages of Danube
// topics into one ClickHouse table over the native protocol, a runtime batch per INSERT.
//
// Fields map to columns by name, with the table's schema read from system.columns at start, and
// again when an INSERT finds the server's columns differ or a message does not fit them (a column
// added while the sink runs shows only as a field without a column). Every INSERT names its
// columns. A message that cannot be converted goes to DLQ_TOPIC with the column, the value and the
// reason, and the rest of its batch is inserted. A batch is acked only after its INSERT returned;
// batches are aligned to offsets by the runtime, so on servers with insert_deduplication_token a
// repeated batch carries the same token and a deduplicating table drops it.
package chsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.opentelemetry.io/otel/metric"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// Sink is the connector. The runtime calls ProcessBatch from one goroutine; HealthCheck may run
// concurrently with it, never with Reconnect.
type Sink struct {
	cfg *Config
	log *slog.Logger
	m   metrics

	mu   sync.RWMutex // guards conn against HealthCheck
	conn clickhouse.Conn

	schema     *schema
	schemaRead time.Time       // when schema was read (see rereadAfter)
	unknown    map[string]bool // message fields without a column as of schemaRead (see maxUnknown)
	srv        server
	lastInsert time.Time // start of the last INSERT (FLUSH_INTERVAL_MS)
	ddl        ddlState  // CH_CREATE_TABLE, CH_ALTER_TABLE (ddl.go)
}

type metrics struct {
	inserted, deadLettered metric.Int64Counter
	latency, batchRows     metric.Float64Histogram
}

// New returns the sink for cfg; it connects in Initialize.
func New(cfg *Config, res runtime.Resources) (runtime.SinkConnector, error) {
	s := &Sink{cfg: cfg, log: res.Logger, unknown: map[string]bool{}}
	if cfg.TLSSkipVerify {
		s.log.Warn("CH_TLS_INSECURE_SKIP_VERIFY is set: the ClickHouse server's certificate is not verified")
	}
	var err error
	if s.m.inserted, err = res.Meter.Int64Counter("chsink.rows.inserted", metric.WithUnit("{row}"),
		metric.WithDescription("Rows inserted into CH_TABLE (acknowledged by ClickHouse).")); err != nil {
		return nil, err
	}
	if s.m.deadLettered, err = res.Meter.Int64Counter("chsink.rows.dead_lettered", metric.WithUnit("{row}"),
		metric.WithDescription("Messages that could not be converted to a row, handed to the runtime as invalid data (to DLQ_TOPIC, or RETRY_EXHAUSTED without one).")); err != nil {
		return nil, err
	}
	if s.m.latency, err = res.Meter.Float64Histogram("chsink.insert.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of one INSERT, from sending the query to the server's acknowledgement.")); err != nil {
		return nil, err
	}
	if s.m.batchRows, err = res.Meter.Float64Histogram("chsink.insert.rows", metric.WithUnit("{row}"),
		metric.WithDescription("Rows per INSERT."),
		metric.WithExplicitBucketBoundaries(1, 10, 100, 1000, 2000, 5000, 10000)); err != nil {
		return nil, err
	}
	return s, nil
}

// Initialize connects, reads the table's schema, checks that the user may insert into it, detects
// the server's deduplication support and logs which delivery guarantee applies. A server that
// cannot be reached is a Disconnected error, which the runtime waits out; what waiting cannot fix
// (credentials, a missing database or table, a missing privilege) is Fatal and names it.
func (s *Sink) Initialize(ctx context.Context) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	if s.schema == nil {
		s.log.Info("connected to ClickHouse; the table does not exist yet: CH_CREATE_TABLE creates it from the first record's schema",
			"addr", s.cfg.addr(), "version", s.srv.version, "table", s.table())
		return nil
	}
	guarantee, why := s.srv.guarantee()
	s.log.Info("connected to ClickHouse", "addr", s.cfg.addr(), "version", s.srv.version, "table", s.table(),
		"engine", s.srv.engine, "columns", len(s.schema.cols), "guarantee", guarantee, "why", why)
	return nil
}

// connect opens a connection, checks it and loads what the sink needs to know about the table. On
// an error it closes what it opened, so that it can be called again.
func (s *Sink) connect(ctx context.Context) error {
	opts, err := s.options()
	if err != nil {
		return runtime.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return runtime.Fatal(fmt.Errorf("clickhouse %s: %w", s.cfg.addr(), err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout.D()+s.cfg.InsertTimeout.D())
	defer cancel()
	srv, sc, err := s.inspect(ctx, conn)
	if err != nil {
		_ = conn.Close()
		return s.classify(fmt.Errorf("clickhouse %s: %w", s.cfg.addr(), err))
	}
	s.srv = srv
	if sc == nil { // CH_CREATE_TABLE: created from a record's schema
		s.schema = nil
	} else {
		s.useSchema(sc)
	}
	s.mu.Lock()
	old := s.conn
	s.conn = conn
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// inspect pings the server, reads what it is and the table's columns, and prepares an INSERT of
// every column (aborted unsent), so that a missing privilege stops the sink at start rather than
// at its first batch.
func (s *Sink) inspect(ctx context.Context, conn clickhouse.Conn) (server, *schema, error) {
	if err := conn.Ping(ctx); err != nil {
		return server{}, nil, err
	}
	srv, err := probeServer(ctx, conn, s.cfg.Database, s.cfg.Table)
	if errors.Is(err, sql.ErrNoRows) {
		if s.cfg.CreateTable {
			return srv, nil, nil
		}
		return server{}, nil, runtime.Fatal(errors.New(s.noTable()))
	}
	if err != nil {
		return server{}, nil, err
	}
	sc, err := loadSchema(ctx, conn, s.cfg.Database, s.cfg.Table)
	if err != nil {
		return server{}, nil, err
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+s.table())
	if err != nil {
		return server{}, nil, err
	}
	_ = b.Abort() // closes that connection: the server drops the INSERT, nothing was sent
	return srv, sc, nil
}

func (s *Sink) options() (*clickhouse.Options, error) {
	opts := &clickhouse.Options{
		Addr:         []string{s.cfg.addr()},
		Protocol:     clickhouse.Native,
		Auth:         clickhouse.Auth{Database: s.cfg.Database, Username: s.cfg.User, Password: s.cfg.Password.Reveal()},
		DialTimeout:  s.cfg.DialTimeout.D(),
		ReadTimeout:  s.cfg.InsertTimeout.D(),
		MaxOpenConns: 2, MaxIdleConns: 2,
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "danube-sink-clickhouse", Version: "0.1"}}},
	}
	switch s.cfg.Compression {
	case "lz4":
		opts.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	case "zstd":
		opts.Compression = &clickhouse.Compression{Method: clickhouse.CompressionZSTD}
	}
	if !s.cfg.secure() {
		return opts, nil
	}
	tc := &tls.Config{ServerName: s.cfg.TLSServerName, InsecureSkipVerify: s.cfg.TLSSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // CH_TLS_INSECURE_SKIP_VERIFY is opt-in and logged
	if tc.ServerName == "" {
		tc.ServerName = s.cfg.Host
	}
	if s.cfg.TLSCAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(s.cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("CH_TLS_CA_FILE: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CH_TLS_CA_FILE=%q: no PEM certificate found", s.cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if s.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("CH_TLS_CERT_FILE/CH_TLS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	opts.TLS = tc
	return opts, nil
}

// Reconnect replaces a lost connection (runtime.Reconnector); the runtime then repeats the batch.
func (s *Sink) Reconnect(ctx context.Context) error {
	if err := s.connect(ctx); err != nil {
		if runtime.ClassOf(err) == runtime.ClassFatal {
			return err
		}
		return fmt.Errorf("reconnect: %w", err)
	}
	return nil
}

// HealthCheck pings the server; a failed ping is a lost connection.
func (s *Sink) HealthCheck(ctx context.Context) error {
	s.mu.RLock()
	conn := s.conn
	s.mu.RUnlock()
	if conn == nil {
		return runtime.Disconnected(errors.New("not connected"))
	}
	if err := conn.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return runtime.Disconnected(fmt.Errorf("clickhouse %s: %w", s.cfg.addr(), err))
	}
	return nil
}

// Shutdown closes the connection.
func (s *Sink) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Process inserts one record (the runtime uses ProcessBatch; this serves a batch of one).
func (s *Sink) Process(ctx context.Context, r *runtime.SinkRecord) error {
	err := s.ProcessBatch(ctx, []*runtime.SinkRecord{r})
	var be *runtime.BatchError
	if errors.As(err, &be) {
		return be.Errs[0]
	}
	return err
}

// table is the quoted table name.
func (s *Sink) table() string { return quote(s.cfg.Database) + "." + quote(s.cfg.Table) }

// quote makes a ClickHouse identifier of name.
func quote(name string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(name) + "`"
}

// token is the insert_deduplication_token of the rows of one INSERT: the same rows of the same
// partition (offset-aligned batches, deterministic conversion) always give the same token.
func token(partition string, first, last uint64, n int) string {
	return partition + ":" + strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10) + ":" + strconv.Itoa(n)
}
