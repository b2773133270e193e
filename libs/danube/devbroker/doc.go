// Package devbroker is a single-node Danube broker for tests and laptops.
//
// It speaks the Danube v0.15 client API (danube.ProducerService,
// ConsumerService, Discovery, HealthCheck, StorageService and
// danube_schema.SchemaRegistry) on one port and a subset of danube_admin on
// another, and behaves like a real broker started in standalone mode as far
// as a client can tell: the same status codes and messages, the same
// delivery semantics, the same quirks (see docs/danube-protocol.md).
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
// truncated on open. Metadata are a snapshot plus a journal of changes, so a
// change costs its own size, and the journal is folded into the snapshot on
// open and once it outgrows it. Nothing is reported done before it is on
// stable storage: a reliable SendMessage answers after its record is fsynced
// (concurrent producers share fsyncs), a metadata change after its journal
// record is, and files created or renamed have their directory fsynced; a
// change that cannot be made durable fails (INTERNAL, or PERMISSION_DENIED
// for SendMessage as for any publish failure) and is not applied.
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
//     consumer that stays inactive (no ReceiveMessages stream; health checks
//     do not count) for Config.KeySharedEvictionTimeout, by default six
//     heartbeats (3 s).
//
// A stalled reliable subscription shows: Broker.SubscriptionStats and the
// StatsHeader of admin DescribeTopic report per subscription the messages
// pending redelivery and blocked by the poison policy (the real broker's
// danube_subscription_pending_redelivery and
// danube_subscription_terminal_blocked gauges), and the log gets a warn line
// naming topic, subscription, offset and attempts when Block stalls one.
//
// A reliable subscription's window is an offset-indexed ring with counters
// and heaps, so produce, deliver and ack cost O(log window) whatever
// MaxUnackedMessages is (KeyShared scans the window once per dispatch to
// keep one message in flight per key). Measure with:
//
//	go test -run '^$' -bench ProduceDeliver ./libs/danube/devbroker/
//
// Known differences from the real broker:
//   - RBAC is not implemented (auth mode only authenticates, and never trusts
//     x-danube-internal-broker);
//   - an evicted KeyShared consumer's unacknowledged messages are redelivered
//     to the keys' new owners and its name may rejoin; the real broker settles
//     them as acked, so they are lost, and never gives the name keys again:
//     set Config.KeySharedEvictionDropsUnacked for that;
//   - topic names with an empty namespace or topic part, or whose log file
//     name (the URL-escaped name plus ".log") exceeds 255 bytes, are refused
//     (INVALID_ARGUMENT; NOT_FOUND through admin, as every admin failure);
//   - with DataDir, a reliable SendMessage is acknowledged once fsynced; the
//     real broker acknowledges once its WAL writer has the message and
//     flushes every 5 s;
//   - subscription stats travel in a response header of DescribeTopic, whose
//     message has no field for them; the real broker exports them to
//     Prometheus only;
//   - cluster mode is only the first-create UNAVAILABLE emulation;
//   - protobuf schemas are stored but not checked for compatibility or
//     validated;
//   - messages are kept in memory until every subscription has acknowledged
//     them.
package devbroker
