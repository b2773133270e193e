// Package deadletter is the vocabulary a connector's dead letters share, sink or source: the
// attributes that say where a message came from and why it failed, and the bound on their size.
package deadletter

import "unicode/utf8"

// Attributes added to a dead letter (the broker's own dead-lettering uses the same names).
const (
	AttrOriginalTopic        = "x-original-topic"
	AttrOriginalSubscription = "x-original-subscription"
	AttrOriginalOffset       = "x-original-topic-offset"
	AttrFailureReason        = "x-failure-reason"
	AttrConnector            = "x-connector"
)

// MaxReason bounds the failure reason a dead letter carries: an error that quotes a whole response
// must not push the message over the broker's size limit.
const MaxReason = 4 << 10

// Cut cuts s to at most n bytes, on a rune boundary, marking the cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
