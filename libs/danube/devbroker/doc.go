// Package devbroker is a single-node Danube broker for tests and laptops.
//
// It speaks the Danube v0.15 client API (danube.ProducerService,
// ConsumerService, Discovery, HealthCheck, StorageService and
// danube_schema.SchemaRegistry) on one port and a subset of danube_admin on
// another, and behaves like a real broker started in standalone mode as far
// as a client can tell: the same status codes and messages, the same
// delivery semantics, the same quirks (see PROTOCOL.md §3 and §7).
//
// Start one in a test with the zero Config for random loopback ports and the
// real broker's defaults, or shrink the timers so redelivery tests take
// milliseconds:
//
//	b, err := devbroker.Start(devbroker.Config{AckTimeout: 50 * time.Millisecond, RetryTick: 5 * time.Millisecond})
//	...
//	defer b.Close()
//	client := connectTo(b.URL())
//
// Fault injection (ForceClose, DropStream, FailNext, SetClusterMode,
// RedirectTopic, Restart) lets client and connector tests drive their
// recovery paths deterministically. With Config.DataDir, reliable topics'
// messages (an append-only, CRC-checked log per topic) and all metadata
// (namespaces, topics, subscriptions with cursors and failure policies,
// schemas) survive Restart and process restarts; a torn log tail is
// truncated on open.
//
// Delivery model, as in the real broker:
//   - non-reliable topics are at-most-once: a message is dropped when the
//     consumer cannot take it (its 4-slot channel is full while no
//     ReceiveMessages stream is attached, or 64 messages are pending on an
//     attached stream, which approximates the real broker's channel, stream
//     buffer and HTTP/2 window), when no consumer is healthy, or when the
//     topic has no subscription;
//   - reliable topics are at-least-once: a window of MaxUnackedMessages
//     unsettled offsets per subscription, out-of-order acks, ack timeout, nack
//     with delay, exponential redelivery, then the poison policy (Block, Drop
//     or DeadLetter); a new subscription starts at the tail;
//   - KeyShared routes by consistent hashing with glob key filters, one
//     in-flight message per key on reliable topics, and evicts a reliable
//     consumer that stays inactive for six heartbeats.
//
// A reliable subscription's window is an offset-indexed ring with counters
// and heaps, so produce, deliver and ack cost O(log window) whatever
// MaxUnackedMessages is (KeyShared scans the window once per dispatch to
// keep one message in flight per key). Measure with:
//
//	go test -run '^$' -bench ProduceDeliver ./libs/danube/devbroker/
//
// Known differences from the real broker: RBAC is not implemented (auth mode
// only authenticates, and never trusts x-danube-internal-broker); an evicted
// KeyShared consumer's in-flight messages are redelivered rather than skipped;
// cluster mode is only the first-create UNAVAILABLE emulation; protobuf
// schemas are stored but not checked for compatibility or validated; messages
// are kept in memory until every subscription has acknowledged them.
package devbroker
