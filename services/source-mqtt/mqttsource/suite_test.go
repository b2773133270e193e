package mqttsource_test

import (
	"fmt"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// suite is what differs between the modes' conformance runs.
type suite struct {
	New   func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector[mqttsource.Seq]
	Emit  func(t *testing.T, payloads ...[]byte)
	Reset func(t *testing.T)
	Key   func(i int) string
}

func harnessSuite(t *testing.T, s suite) {
	runtimetest.SourceSuite[mqttsource.Seq]{
		New: s.New, Emit: s.Emit, Reset: s.Reset, Key: s.Key,
		Payload: func(i int) []byte { return fmt.Appendf(nil, "n=%d", i) },
	}.Run(t)
}
