// Command sink-clickhouse inserts the JSON messages of Danube topics into a ClickHouse table, in
// batches. Configuration comes only from the environment; run with --help for every variable.
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chsink"
)

func main() { runtime.MainSink(chsink.New) }
