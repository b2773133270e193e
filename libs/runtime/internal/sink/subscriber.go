package sink

import (
	"context"
	"fmt"

	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// subscriber opens a sink's subscription on Danube: the consumers of every topic (creating a
// missing topic), the subscription's settings through the admin API on the first open, and the
// dead-letter producer.
type subscriber struct {
	cfg        *Config
	host       *Host
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
			if err := s.host.Configure(ctx, c.Topics()); err != nil {
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
		Topic: topic, Name: name, Subscription: s.cfg.Subscription, Type: s.cfg.SubscriptionType, KeyFilters: s.cfg.KeyFilters,
	}
	err = s.host.Retry(ctx, "subscribe", nil, func(ctx context.Context) error {
		c, err = s.host.Client.Subscribe(ctx, opts)
		if status.Code(err) == grpccodes.NotFound {
			if cerr := s.createTopic(ctx, topic); cerr != nil {
				return fmt.Errorf("runtime: DANUBE_TOPIC=%q does not exist and creating it failed: %w", topic, cerr)
			}
			c, err = s.host.Client.Subscribe(ctx, opts)
		}
		if err != nil {
			return fmt.Errorf("runtime: subscribe to DANUBE_TOPIC=%q as SUBSCRIPTION_NAME=%q: %w", topic, s.cfg.Subscription, err)
		}
		return nil
	})
	return c, err
}

// createTopic creates topic as a reliable topic: a producer's creation does it on the broker.
func (s *subscriber) createTopic(ctx context.Context, topic string) error {
	p, err := s.host.Client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: s.cfg.Name + "-create", Dispatch: danube.Reliable})
	if err != nil {
		return err
	}
	s.host.Log.Info("created the missing topic, so that nothing published before the subscription is missed", "topic", topic)
	return p.Close()
}

// dlqProducer creates the dead-letter producer, retrying like subscribe: the broker may still be
// starting, and a sink without its DLQ must not start.
func (s *subscriber) dlqProducer(ctx context.Context) (p *danube.Producer, err error) {
	err = s.host.Retry(ctx, "create dead-letter producer", nil, func(ctx context.Context) error {
		p, err = s.host.Client.NewProducer(ctx, danube.ProducerOptions{Topic: s.cfg.DLQTopic, Name: s.cfg.Name + "-dlq", Dispatch: danube.Reliable})
		if err != nil {
			return fmt.Errorf("runtime: DLQ_TOPIC=%q: create producer: %w", s.cfg.DLQTopic, err)
		}
		return nil
	})
	return p, err
}
