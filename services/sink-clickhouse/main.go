// Command sink-clickhouse inserts the JSON messages of Danube topics into a ClickHouse table, in
// batches. Configuration comes only from the environment; run with --help for every variable.
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chsink"
)

// memoryLimit is Go's soft memory limit unless GOMEMLIMIT is set. Without it the heap grows to
// twice what is live before a collection, and what is live is mostly the window's messages
// (2 × BATCH_SIZE of them with a full pipeline): 10,000-row batches of 1 KiB hold about 20 MiB.
// Near the limit the collector runs sooner, which keeps such a sink under 64 MiB of RSS. Larger
// windows or messages need GOMEMLIMIT raised with them (README, "Memory and throughput").
const memoryLimit = 40 << 20

func main() {
	runtime.DefaultMemoryLimit(memoryLimit)
	runtime.MainSink(chsink.New)
}
