package kafkaimport_test

import "time"

func timeMillis(ms int64) time.Time { return time.UnixMilli(ms) }
