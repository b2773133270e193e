// Package webhook delivers Danube messages to an HTTP endpoint: it builds the requests (payload as
// the body, attributes and message identity as headers, Standard Webhooks signature), sends them with
// bounded concurrency while keeping the order of messages that share a routing key, and classifies
// every outcome so the caller knows what to do with each message:
//
//   - nil: the endpoint answered 2xx; ack the message.
//   - an *Error with Retryable() true: network error, timeout, 5xx, 408 or 429 (with the endpoint's
//     Retry-After, if any); try again later, never drop.
//   - an *Error with Retryable() false: the endpoint rejected the message (another 4xx, or a 3xx
//     that cannot be followed); send it to the dead-letter topic with Status and Body.
//
// The package knows nothing about Danube's client or the connector runtime, so it is tested on its
// own against real HTTP servers and can be reused by any program that pushes records to webhooks.
package webhook
