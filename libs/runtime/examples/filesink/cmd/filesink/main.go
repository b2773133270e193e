// Command filesink runs the example file sink; configuration comes from the environment (--help).
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesink"
)

func main() { runtime.MainSink(filesink.New) }
