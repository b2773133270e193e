package devbroker

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// With LagDrop, a subscription whose window is full while more than window + 256 messages are
// published loses what overflowed, as v0.15.1 does: it gets the first window and the last 256,
// and after a restart the lost ones do not come back.
func TestLagDropLosesWhatOverflowedTheChannel(t *testing.T) {
	for _, lagDrop := range []bool{false, true} {
		t.Run(fmt.Sprintf("lag-drop=%v", lagDrop), func(t *testing.T) {
			cfg := fastConfig()
			cfg.DataDir = t.TempDir()
			cfg.MaxUnackedMessages = 100
			cfg.AckTimeout = time.Minute
			cfg.LagDrop = lagDrop
			e := startEnv(t, cfg)
			const topic, n = "/default/lag", 1000
			pid := e.producer(topic, "p", reliable)
			s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
			for i := range n {
				e.send(topic, pid, uint64(i), fmt.Sprint(i), nil)
			}
			want := n
			if lagDrop {
				want = 100 + lagChannel
			}
			for i := range want {
				m := s.next(t)
				wantOff := uint64(i)
				if lagDrop && i >= 100 {
					wantOff = uint64(n - lagChannel + i - 100)
				}
				if off := m.GetMsgId().GetTopicOffset(); off != wantOff {
					t.Fatalf("message %d has offset %d, want %d", i, off, wantOff)
				}
				e.ack(m, "sub")
			}
			s.quiet(t)
			e = restart(t, e)
			s = e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
			s.quiet(t) // nothing comes back: the cursor moved past the lost range
		})
	}
}
