package chsink

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// Server error codes (ClickHouse's src/Common/ErrorCodes.cpp) the sink treats specially.
var (
	// schemaCodes: the INSERT's columns or types no longer match the table.
	schemaCodes = map[int32]bool{8: true, 10: true, 16: true, 47: true, 53: true}
	// fatalCodes: the table, database or permission is gone; repeating will not help.
	fatalCodes = map[int32]bool{60: true, 81: true, 164: true, 192: true, 193: true, 194: true, 291: true, 497: true, 516: true}
	// lostCodes: the server speaks of the network or a timeout; the outcome is unknown.
	lostCodes = map[int32]bool{159: true, 209: true, 210: true, 394: true}
)

// classify gives an error of the ClickHouse client its runtime class: a lost, refused or
// unresponsive connection is Disconnected (at start the runtime waits for the server; later it
// reconnects and repeats the batch without spending a retry), a schema change is errSchemaChanged,
// a missing table or permission is Fatal and says what to do, any other server error is Retryable
// (the whole batch, then RETRY_EXHAUSTED).
func (s *Sink) classify(err error) error {
	var classified *runtime.Error
	if err == nil || errors.As(err, &classified) {
		return err
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch {
		case schemaCodes[ex.Code]:
			return errors.Join(errSchemaChanged, err)
		case fatalCodes[ex.Code]:
			return runtime.Fatal(fmt.Errorf("%s: %w", s.remedy(ex.Code), err))
		case lostCodes[ex.Code]:
			return runtime.Disconnected(err)
		}
		return runtime.Retryable(err)
	}
	if errors.Is(err, context.Canceled) {
		return err // the runtime is stopping
	}
	if lost(err) {
		return runtime.Disconnected(err)
	}
	return runtime.Retryable(err)
}

// remedy says what a fatal server error means in terms of the sink's settings, and what to do.
func (s *Sink) remedy(code int32) string {
	switch code {
	case 81: // UNKNOWN_DATABASE
		return fmt.Sprintf("database %q does not exist: create it, or correct CH_DATABASE", s.cfg.Database)
	case 60: // UNKNOWN_TABLE
		return s.noTable()
	case 192, 193, 194, 516: // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
		return fmt.Sprintf("ClickHouse refused user %q: check CH_USER and CH_PASSWORD", s.cfg.User)
	}
	// the other fatalCodes: READONLY, DATABASE_ACCESS_DENIED, ACCESS_DENIED
	return fmt.Sprintf("user %q may not insert into %s: grant it INSERT on the table and SELECT on system.tables and system.columns, or set CH_USER to a user that may", s.cfg.User, s.table())
}

// noTable says that CH_TABLE is missing: the sink does not create it.
func (s *Sink) noTable() string {
	return fmt.Sprintf("table %s.%s does not exist: create it (or set CH_CREATE_TABLE=true to create it from the records' schema), or correct CH_DATABASE and CH_TABLE", s.cfg.Database, s.cfg.Table)
}

// lost reports whether err means the connection is gone or the server did not answer in time.
func lost(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, clickhouse.ErrAcquireConnTimeout) || errors.Is(err, net.ErrClosed)
}
