package chsink

import (
	"context"
	"database/sql/driver"
	"errors"
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

// classify gives an error of the ClickHouse client its runtime class: a lost or unresponsive
// connection is Disconnected (the runtime reconnects and repeats the batch without spending a
// retry), a schema change is errSchemaChanged, a missing table or permission is Fatal, any other
// server error is Retryable (the whole batch, then RETRY_EXHAUSTED).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch {
		case schemaCodes[ex.Code]:
			return errors.Join(errSchemaChanged, err)
		case fatalCodes[ex.Code]:
			return runtime.Fatal(err)
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
