// Package danube is a Go client for the Danube messaging broker (wire protocol v0.15).
//
// A [Client] holds one gRPC connection per broker and is shared by every
// [Producer] and [Consumer] created from it. Producers look a topic up, create
// themselves on the owning broker and then publish one message at a time per
// partition, so order within a partition is the order of Send calls. Unlike
// the official clients, a producer recreates itself when its broker forgets it
// (NOT_FOUND after a restart), when the topic moves, and when the broker's
// health check answers CLOSE; a consumer resubscribes on CLOSE (even while its
// stream is idle), when its stream ends, and on NOT_FOUND.
//
// Retries use a [Backoff]; the default is [DefaultBackoff]: exponential from
// 100 ms doubling to a 5 s cap, each wait jittered down to half its value, and
// at most 5 retries per operation (see [WithMaxRetries]).
//
// The package does not import OpenTelemetry: metrics and tracing attach
// through [Hooks].
package danube
