// Command filesource runs the example file source; configuration comes from the environment (--help).
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesource"
)

func main() { runtime.MainSource(filesource.New) }
