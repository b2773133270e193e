// Command source-postgres streams the committed changes of PostgreSQL tables (logical replication,
// pgoutput) into Danube as JSON events. Configuration comes only from the environment; run with
// --help for every variable.
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

func main() { runtime.MainSource(pgcdc.New) }
