package runtime

import (
	"context"
	"fmt"
	"time"

	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

// subscriber opens a sink's subscription on Danube: the consumers of every topic (creating a
// missing topic), the subscription's settings through the admin API on the first open, and the
// dead-letter producer.
type subscriber struct {
	cfg        *SinkConfig
	env        *env
	policy     retry.Policy
	configured bool
}

// open subscribes to every topic as consumer name; the first open also configures the
// subscription.
func (s *subscriber) open(ctx context.Context, name string) ([]*danube.Consumer, error) {
	var cs []*danube.Consumer
	for _, topic := range s.cfg.Topics {
		c, err := s.subscribe(ctx, topic, name)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
		if !s.configured {
			if err := s.configure(ctx, c.Topics()); err != nil {
				closeAll(cs)
				return nil, err
			}
		}
	}
	s.configured = true
	return cs, nil
}

// subscribe retries until the subscription is granted, or ctx ends (an Exclusive subscription
// held by another consumer name refuses it). A missing topic is created first, as a reliable
// topic, and subscribed to at once: a new subscription starts at the tail, so waiting for the
// topic's first producer would lose what it publishes before the next attempt.
func (s *subscriber) subscribe(ctx context.Context, topic, name string) (c *danube.Consumer, err error) {
	opts := danube.ConsumerOptions{
		Topic: topic, Name: name, Subscription: s.cfg.SubscriptionName, Type: s.cfg.SubscriptionType, KeyFilters: s.cfg.KeyFilters,
	}
	err = s.env.retryDanube(ctx, s.policy, "subscribe", nil, func(ctx context.Context) error {
		c, err = s.env.client.Subscribe(ctx, opts)
		if status.Code(err) == grpccodes.NotFound {
			if cerr := s.createTopic(ctx, topic); cerr != nil {
				return fmt.Errorf("runtime: DANUBE_TOPIC=%q does not exist and creating it failed: %w", topic, cerr)
			}
			c, err = s.env.client.Subscribe(ctx, opts)
		}
		if err != nil {
			return fmt.Errorf("runtime: subscribe to DANUBE_TOPIC=%q as SUBSCRIPTION_NAME=%q: %w", topic, s.cfg.SubscriptionName, err)
		}
		return nil
	})
	return c, err
}

// createTopic creates topic as a reliable topic: a producer's creation does it on the broker.
func (s *subscriber) createTopic(ctx context.Context, topic string) error {
	p, err := s.env.client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: s.cfg.ConnectorName + "-create", Dispatch: danube.Reliable})
	if err != nil {
		return err
	}
	s.env.log.Info("created the missing topic, so that nothing published before the subscription is missed", "topic", topic)
	return p.Close()
}

// dlqProducer creates the dead-letter producer, retrying like subscribe: the broker may still be
// starting, and a sink without its DLQ must not start.
func (s *subscriber) dlqProducer(ctx context.Context) (p *danube.Producer, err error) {
	err = s.env.retryDanube(ctx, s.policy, "create dead-letter producer", nil, func(ctx context.Context) error {
		p, err = s.env.client.NewProducer(ctx, danube.ProducerOptions{Topic: s.cfg.DLQTopic, Name: s.cfg.ConnectorName + "-dlq", Dispatch: danube.Reliable})
		if err != nil {
			return fmt.Errorf("runtime: DLQ_TOPIC=%q: create producer: %w", s.cfg.DLQTopic, err)
		}
		return nil
	})
	return p, err
}

// adminTimeout bounds each admin call: the settings are applied once at start.
const adminTimeout = 10 * time.Second

// configure sizes the window of the subscription on each of topics (partitions
// included) and applies the SUBSCRIPTION_* failure settings through the admin API. The broker's
// window (max_unacked_messages, 10 by default) caps how many messages a sink holds: below
// BATCH_SIZE no batch ever fills. Without DANUBE_ADMIN_URL the runtime cannot read or set it, so
// it says at start what a batch or MAX_IN_FLIGHT above the default needs.
func (s *subscriber) configure(ctx context.Context, topics []string) error {
	cfg := s.cfg
	want := cfg.WantWindow()
	if want > defaultWindow {
		// Danube v0.15.1 stores a subscription's window set through the admin API but dispatches with
		// the broker's default: say so rather than count on it.
		s.env.log.Warn("the subscription's window may be too small: a Danube v0.15 broker lets a subscription hold its "+
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
		err := s.env.retryDanube(ctx, s.policy, "configure subscription", transient, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, adminTimeout)
			defer cancel()
			return s.applySettings(ctx, admin, topic, want)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// transient reports whether a failed Danube call may succeed later (see permanent).
func transient(err error) bool { return !permanent(err) }

func (s *subscriber) applySettings(ctx context.Context, admin *danube.Admin, topic string, window int) error {
	cfg := s.cfg
	if err := admin.SetSubscriptionWindow(ctx, topic, cfg.SubscriptionName, window); err != nil {
		return err
	}
	s.env.log.Info("subscription window requested", "topic", topic, "subscription", cfg.SubscriptionName, "max_unacked_messages", window)
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
	s.env.log.Info("subscription failure policy stored (a v0.15 broker applies it to a new subscription; an existing one keeps "+
		"its policy until the broker reloads it, and a new consumer joining writes the old one back)", "topic", topic, "subscription", cfg.SubscriptionName,
		"max_redeliveries", p.MaxRedeliveries, "ack_timeout", p.AckTimeout, "poison_policy", cfg.PoisonPolicy.String())
	return nil
}
