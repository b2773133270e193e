package danube

import "time"

// Hooks observe the client for metrics and tracing without this package
// importing OpenTelemetry. Nil funcs are skipped. Hooks run synchronously on
// the client's goroutines and must be fast and must not block.
type Hooks struct {
	OnSend      func(SendEvent)      // after each SendMessage reply or final error
	OnReceive   func(ReceiveEvent)   // each message delivered to Messages()
	OnAck       func(AckEvent)       // each Ack or Nack
	OnRetry     func(RetryEvent)     // each retry of an rpc, before its wait
	OnReconnect func(ReconnectEvent) // each producer recreation or consumer resubscription
	OnHealth    func(HealthEvent)    // each periodic health check of a producer or consumer
}

// SendEvent describes one Send outcome.
type SendEvent struct {
	Topic    string        // exact (partition) topic
	Bytes    int           // payload size
	Duration time.Duration // from Send's start to the reply, retries included
	Err      error
}

// ReceiveEvent describes one delivered message.
type ReceiveEvent struct {
	Topic  string
	Bytes  int
	Offset uint64
}

// AckEvent describes one Ack or Nack.
type AckEvent struct {
	Topic  string
	Offset uint64
	Nack   bool
	Err    error
}

// RetryEvent describes a failed rpc attempt that will be retried after Delay.
type RetryEvent struct {
	Op      string // rpc or operation, e.g. "CreateProducer", "SendMessage", "Subscribe"
	Topic   string
	Attempt int // 1-based retry number
	Delay   time.Duration
	Err     error
}

// ReconnectEvent describes a producer recreation or consumer resubscription.
// Err is nil when it succeeded.
type ReconnectEvent struct {
	Topic  string
	Kind   string // "producer" or "consumer"
	Reason string // e.g. "health check CLOSE", "stream ended", "NotFound"
	Err    error
}

// HealthEvent describes one periodic health check of a producer or consumer: Err is nil when the
// broker answered. It is how an idle client learns that the broker is gone.
type HealthEvent struct {
	Topic string
	Kind  string // "producer" or "consumer"
	Err   error
}

func (h *Hooks) health(e HealthEvent) {
	if h.OnHealth != nil {
		h.OnHealth(e)
	}
}

func (h *Hooks) send(e SendEvent) {
	if h.OnSend != nil {
		h.OnSend(e)
	}
}

func (h *Hooks) receive(e ReceiveEvent) {
	if h.OnReceive != nil {
		h.OnReceive(e)
	}
}

func (h *Hooks) ack(e AckEvent) {
	if h.OnAck != nil {
		h.OnAck(e)
	}
}

func (h *Hooks) retry(e RetryEvent) {
	if h.OnRetry != nil {
		h.OnRetry(e)
	}
}

func (h *Hooks) reconnect(e ReconnectEvent) {
	if h.OnReconnect != nil {
		h.OnReconnect(e)
	}
}
