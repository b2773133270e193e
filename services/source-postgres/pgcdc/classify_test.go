package pgcdc

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// TestClassify: what waiting can fix is Disconnected, what it cannot is fatal with the fix named,
// and PostgreSQL's DETAIL and HINT stay in the error (pgconn's Error() leaves them out).
func TestClassify(t *testing.T) {
	notFound := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "pg", IsNotFound: true}}
	for _, c := range []struct {
		name  string
		err   error
		class runtime.Class
		want  []string
		not   string
	}{
		{"refused", fmt.Errorf("failed to connect: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), runtime.ClassDisconnected, nil, ""},
		{"host not found", fmt.Errorf("failed to connect: %w", notFound), runtime.ClassDisconnected, nil, ""},
		{"starting up", &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}, runtime.ClassDisconnected, nil, ""},
		{"too many clients", &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"}, runtime.ClassDisconnected, nil, ""},
		{"wrong password", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "app"`}, runtime.ClassFatal,
			[]string{"check PG_USER and PG_PASSWORD"}, ""},
		{"lost slot on START_REPLICATION", &pgconn.PgError{Severity: "ERROR", Code: "55000", Message: `cannot read from logical replication slot "s"`,
			Detail: "This slot has been invalidated because it exceeded the maximum reserved size."}, runtime.ClassFatal,
			[]string{`cannot read from logical replication slot "s" (SQLSTATE 55000) DETAIL: This slot has been invalidated because it exceeded the maximum reserved size.`},
			"max_replication_slots"},
		{"wal_level", &pgconn.PgError{Severity: "ERROR", Code: "55000", Message: "logical decoding requires wal_level >= logical"}, runtime.ClassFatal,
			[]string{"ALTER SYSTEM SET wal_level = logical"}, ""},
		{"hint kept", &pgconn.PgError{Severity: "ERROR", Code: "53400", Message: "all replication slots are in use", Hint: "Free one or increase max_replication_slots."},
			runtime.ClassFatal, []string{"HINT: Free one or increase max_replication_slots.", "drop unused slots"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := classify(c.err, "what")
			if runtime.ClassOf(err) != c.class || !errors.Is(err, c.err) {
				t.Fatalf("classify(%v) = %v (%v), want class %v wrapping it", c.err, err, runtime.ClassOf(err), c.class)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("%q lacks %q", err, w)
				}
			}
			if c.not != "" && strings.Contains(err.Error(), c.not) {
				t.Fatalf("%q has the unrelated %q", err, c.not)
			}
		})
	}
}
