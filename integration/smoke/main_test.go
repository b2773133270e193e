// Package smoke proves the integration harness against each real system:
// every test gets its endpoint from the harness and does what the connector
// that needs the system will do. The Kafka test lives in ./kafka because it
// needs cgo (confluent-kafka-go) and builds slowly.
package smoke

import (
	"testing"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
