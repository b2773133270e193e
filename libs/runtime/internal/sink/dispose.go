package sink

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

// action is what a sink does with a record the connector did not write.
type action uint8

const (
	actRetry       action = iota // back off and try again
	actReconnect                 // the connection is gone, not the record: reconnect, then repeat
	actProbe                     // retries are due and the cause is unknown: see whether others get written
	actPause                     // an outage: close intake and retry until the external system is back
	actHold                      // poison, kept: retried without limit and reported
	actDeadLetter                // to DLQ_TOPIC, then ack
	actNack                      // back to Danube, redelivered after NACK_DELAY_MS
	actNackInvalid               // invalid data without DLQ_TOPIC: back to Danube, loudly
	actStop                      // stop the sink, leaving the record unacked
)

// evidence is what the sink learnt of the external system while records kept failing.
type evidence uint8

const (
	evidenceNone   evidence = iota
	evidencePoison          // other records got written: the failing ones are at fault
	evidenceOutage          // nothing got written: the external system is down
)

// failure is a failed attempt at a record, as dispose sees it.
type failure struct {
	class    class.Class
	attempt  int           // attempts so far, 1-based
	elapsed  time.Duration // since the record first failed
	held     bool          // already paused or held: retried without limit
	evidence evidence
}

// disposal is the policy dispose applies: RETRY_*, RETRY_EXHAUSTED, DLQ_TOPIC and the
// subscription's ack timeout.
type disposal struct {
	retry      retry.Policy
	exhausted  Exhausted
	dlq        bool
	ackTimeout time.Duration
}

// dispose decides what happens to a record after a failed attempt. It is a pure function of the
// failure and the policy, so that every combination is tested without a broker.
func (p disposal) dispose(f failure) action {
	switch f.class {
	case class.Fatal:
		return actStop
	case class.Disconnected:
		return actReconnect
	case class.InvalidData:
		switch {
		case p.dlq:
			return actDeadLetter
		case p.exhausted == ExhaustedStop:
			return actStop
		}
		return actNackInvalid
	}
	if f.held || !p.due(f.attempt, f.elapsed) {
		return actRetry
	}
	if p.exhausted.pausesOnOutage() {
		switch f.evidence {
		case evidenceNone:
			return actProbe
		case evidenceOutage:
			return actPause
		}
	}
	switch p.exhausted {
	case ExhaustedStop:
		return actStop
	case ExhaustedHold:
		return actHold
	case ExhaustedAuto, ExhaustedDeadLetter:
		if p.dlq {
			return actDeadLetter
		}
		if p.exhausted == ExhaustedAuto {
			return actHold
		}
	}
	return actNack
}

// due reports whether records failing for elapsed after attempt attempts must now be classified
// (an outage pauses intake, a poison record follows RETRY_EXHAUSTED): when their retries ran out,
// or, retrying without limit or with long waits, after three attempts or half the broker's ack
// timeout, whichever comes first: past the ack timeout the broker re-sends them, spending their
// delivery attempts.
func (p disposal) due(attempt int, elapsed time.Duration) bool {
	if !p.retry.Allows(attempt) {
		return true
	}
	return p.exhausted.pausesOnOutage() && (p.retry.MaxRetries < 0 && attempt >= 3 || elapsed >= p.ackTimeout/2)
}
