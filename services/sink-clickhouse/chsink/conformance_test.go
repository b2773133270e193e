package chsink

import (
	"fmt"
	"testing"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestConformance runs the runtime's sink suite against the real ClickHouse, with batches of one
// and of eight rows.
func TestConformance(t *testing.T) {
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
	base := loadConfig(t, ep, "events")
	rd := reader(t, ep)
	for _, batch := range []int{1, 8} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			runtimetest.SinkSuite{
				New:       func(t *testing.T, sc *runtime.SinkConfig) runtime.SinkConnector { return newSink(t, base, sc) },
				Configure: func(sc *runtime.SinkConfig) { sc.BatchSize = batch },
				Written: func(t *testing.T) []string {
					return queryStrings(t, rd, "SELECT concat('{\"id\":', toString(id), ',\"name\":\"', name, '\"}') FROM "+ep.Database+".events")
				},
				Reset:   func(t *testing.T) { exec(t, ep, "TRUNCATE TABLE "+ep.Database+".events") },
				Valid:   jsonRow,
				Invalid: []byte(`{"id":"not a number","name":"x"}`),
			}.Run(t)
		})
	}
}
