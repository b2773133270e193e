package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

// adminTimeout bounds each admin call: the settings are applied once at start.
const adminTimeout = 10 * time.Second

// configureSubscription sizes the window of the subscription on each of topics (partitions
// included) and applies the SUBSCRIPTION_* failure settings through the admin API. The broker's
// window (max_unacked_messages, 10 by default) caps how many messages a sink holds: below
// BATCH_SIZE no batch ever fills. Without DANUBE_ADMIN_URL the runtime cannot read or set it, so
// it says at start what a batch or MAX_IN_FLIGHT above the default needs.
func configureSubscription(ctx context.Context, e *env, cfg *SinkConfig, policy retry.Policy, topics []string) error {
	want := cfg.WantWindow()
	if want > defaultWindow {
		// Danube v0.15.1 stores a subscription's window set through the admin API but dispatches with
		// the broker's default: say so rather than count on it.
		e.log.Warn("the subscription's window may be too small: a Danube v0.15 broker lets a subscription hold its "+
			"default of 10 unacked messages (its dispatch configuration), and v0.15.1 does not apply a per-subscription "+
			"window set through the admin API; batches above the window are cut by BATCH_TIMEOUT_MS",
			"batch_size", cfg.BatchSize, "max_in_flight", cfg.MaxInFlight, "window_wanted", want, "subscription", cfg.SubscriptionName,
			"admin", cfg.DanubeAdminURL != "")
	}
	if cfg.DanubeAdminURL == "" {
		return nil
	}
	admin, err := danube.NewAdmin(cfg.DanubeAdminURL, cfg.ClientOptions()...)
	if err != nil {
		return fmt.Errorf("runtime: DANUBE_ADMIN_URL=%q: %w", cfg.DanubeAdminURL, err)
	}
	defer admin.Close()
	for _, topic := range topics {
		err := e.retryDanube(ctx, policy, "configure subscription", transient, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, adminTimeout)
			defer cancel()
			return applySettings(ctx, e, cfg, admin, topic, want)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// transient reports whether a failed Danube call may succeed later (see permanent).
func transient(err error) bool { return !danube.Permanent(err) }

func applySettings(ctx context.Context, e *env, cfg *SinkConfig, admin *danube.Admin, topic string, window int) error {
	if err := admin.SetSubscriptionWindow(ctx, topic, cfg.SubscriptionName, window); err != nil {
		return err
	}
	e.log.Info("subscription window requested", "topic", topic, "subscription", cfg.SubscriptionName, "max_unacked_messages", window)
	if cfg.PoisonPolicy == PoisonKeep && cfg.MaxRedeliveries == 0 && cfg.AckTimeout == 0 {
		return nil
	}
	p, err := admin.SubscriptionFailurePolicy(ctx, topic, cfg.SubscriptionName)
	if err != nil {
		return err
	}
	switch cfg.PoisonPolicy {
	case PoisonBlock:
		p.Poison = danube.PoisonBlock
	case PoisonDrop:
		p.Poison = danube.PoisonDrop
	case PoisonDeadLetter:
		p.Poison, p.DeadLetterTopic = danube.PoisonDeadLetter, cfg.DLQTopic
	}
	if cfg.MaxRedeliveries > 0 {
		p.MaxRedeliveries = cfg.MaxRedeliveries
	}
	if cfg.AckTimeout > 0 {
		p.AckTimeout = cfg.AckTimeout.D()
	}
	if err := admin.SetSubscriptionFailurePolicy(ctx, topic, cfg.SubscriptionName, p); err != nil {
		return err
	}
	// A v0.15.1 broker reads a subscription's failure policy when it creates or loads the
	// subscription; a live one keeps the policy it was loaded with, and a new consumer joining it
	// writes that one back over the stored change.
	e.log.Info("subscription failure policy stored (a v0.15 broker applies it to a new subscription; an existing one keeps "+
		"its policy until the broker reloads it, and a new consumer joining writes the old one back)", "topic", topic, "subscription", cfg.SubscriptionName,
		"max_redeliveries", p.MaxRedeliveries, "ack_timeout", p.AckTimeout, "poison_policy", cfg.PoisonPolicy.String())
	return nil
}
