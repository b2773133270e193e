package chsink

import (
	"context"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// TestInitializeSaysWhatIsWrong: a server that cannot be reached is a Disconnected error, which the
// runtime waits out; what waiting cannot fix is Fatal and names the setting and what to do.
func TestInitializeSaysWhatIsWrong(t *testing.T) {
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64) ENGINE = MergeTree ORDER BY id")
	closed := harness.StartProxy(t, ep.NativeAddr)
	closed.Down() // nothing listens there
	host, port, _ := strings.Cut(closed.Addr(), ":")
	for _, c := range []struct {
		name  string
		env   []string
		class runtime.Class
		want  string
	}{
		{"refused", []string{"CH_HOST=" + host, "CH_PORT=" + port}, runtime.ClassDisconnected, "connection refused"},
		{"no such host", []string{"CH_HOST=clickhouse.invalid"}, runtime.ClassDisconnected, "clickhouse.invalid"},
		{"wrong password", []string{"CH_PASSWORD=wrong-" + ep.Password}, runtime.ClassFatal, `ClickHouse refused user "` + ep.Username + `": check CH_USER and CH_PASSWORD`},
		{"unknown user", []string{"CH_USER=nosuch"}, runtime.ClassFatal, `ClickHouse refused user "nosuch": check CH_USER and CH_PASSWORD`},
		{"missing database", []string{"CH_DATABASE=nosuch"}, runtime.ClassFatal, `database "nosuch" does not exist: create it, or correct CH_DATABASE`},
		{"missing table", []string{"CH_TABLE=nosuch"}, runtime.ClassFatal, "table " + ep.Database + ".nosuch does not exist: create it (or set CH_CREATE_TABLE=true to create it from the records' schema), or correct CH_DATABASE and CH_TABLE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t, loadConfig(t, ep, "events", c.env...), nil)
			err := s.Initialize(context.Background())
			if err == nil || runtime.ClassOf(err) != c.class || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Initialize = %v (%v), want %v saying %q", err, runtime.ClassOf(err), c.class, c.want)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPrivilegeErrorsSayWhatToDo covers the server errors of a missing privilege, which the local
// 18.16 server (no SQL users) cannot produce for the test's user.
func TestPrivilegeErrorsSayWhatToDo(t *testing.T) {
	s := &Sink{cfg: &Config{User: "writer", Database: "analytics", Table: "events"}}
	for _, code := range []int32{164, 291, 497} { // READONLY, DATABASE_ACCESS_DENIED, ACCESS_DENIED
		err := s.classify(&clickhouse.Exception{Code: code, Message: "denied"})
		want := "user \"writer\" may not insert into `analytics`.`events`: grant it INSERT on the table"
		if runtime.ClassOf(err) != runtime.ClassFatal || !strings.Contains(err.Error(), want) {
			t.Errorf("code %d: %v (%v), want fatal saying %q", code, err, runtime.ClassOf(err), want)
		}
	}
}
