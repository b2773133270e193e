// Package danube is a Go client for the Danube messaging broker (wire protocol v0.15).
//
// A [Client] holds one gRPC connection per broker and is shared by every
// [Producer] and [Consumer] created from it. Producers look a topic up and
// create themselves on the owning broker. Unlike the official clients, which
// hold a mutex across each publish, a producer pipelines concurrent
// [Producer.Send] calls, even on one partition: sequential calls keep their
// order, concurrent calls have none among themselves. A producer also
// recreates itself when its broker forgets it (NOT_FOUND after a restart),
// when the topic moves, and when the broker's health check answers CLOSE; a
// consumer resubscribes on CLOSE (even while its stream is idle), when its
// stream ends, and on NOT_FOUND.
//
// [ProducerOptions] default to [Reliable] dispatch (at-least-once), although
// the wire protocol's default is non-reliable.
//
// Retries use a [Backoff]; the default is [DefaultBackoff]: exponential from
// 100 ms doubling to a 5 s cap, each wait jittered down to half its value, and
// at most 5 retries per operation (see [WithMaxRetries]).
//
// The package does not import OpenTelemetry: metrics and tracing attach
// through [Hooks].
//
// docs/danube-protocol.md in this repository describes the wire contract
// the client follows.
package danube
