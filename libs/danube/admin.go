package danube

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/danube-messaging/danube-connect-go/proto/adminpb"
)

// Admin calls the broker's admin API (a separate port, 50051 by default) for the subscription
// settings a connector needs. It uses the same TLS and token options as a Client.
type Admin struct {
	cc     *grpc.ClientConn
	topics adminpb.TopicAdminClient
}

// NewAdmin returns an admin client for adminURL ("http://host:50051" or "https://host:50051").
// Like NewClient it does no network I/O.
func NewAdmin(adminURL string, opts ...Option) (*Admin, error) {
	target, err := hostPort(adminURL)
	if err != nil {
		return nil, err
	}
	var cfg config
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	creds, err := transportCredentials(adminURL, &cfg)
	if err != nil {
		return nil, err
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if cfg.token != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerCreds{supply: cfg.token}))
	}
	cc, err := grpc.NewClient("passthrough:///"+target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("danube: connect admin %s: %w", adminURL, err)
	}
	return &Admin{cc: cc, topics: adminpb.NewTopicAdminClient(cc)}, nil
}

// Close closes the connection.
func (a *Admin) Close() error { return a.cc.Close() }

// SetSubscriptionWindow sets the subscription's max_unacked_messages (1 to 10,000): how many
// messages the broker lets its consumers hold unacked.
func (a *Admin) SetSubscriptionWindow(ctx context.Context, topic, subscription string, maxUnacked int) error {
	_, err := a.topics.SetSubscriptionDispatchConfig(ctx, &adminpb.SetSubscriptionDispatchConfigRequest{
		Topic: topic, Subscription: subscription,
		DispatchConfig: &adminpb.SubscriptionDispatchConfig{MaxUnackedMessages: uint32(maxUnacked)},
	})
	if err != nil {
		return fmt.Errorf("danube: set window of subscription %q on %s to %d: %w", subscription, topic, maxUnacked, err)
	}
	return nil
}

// SubscriptionWindow returns the subscription's max_unacked_messages, or 0 when the broker runs it
// on its default.
func (a *Admin) SubscriptionWindow(ctx context.Context, topic, subscription string) (int, error) {
	resp, err := a.topics.GetSubscriptionDispatchConfig(ctx, &adminpb.GetSubscriptionDispatchConfigRequest{Topic: topic, Subscription: subscription})
	if err != nil {
		return 0, fmt.Errorf("danube: get window of subscription %q on %s: %w", subscription, topic, err)
	}
	return int(resp.GetDispatchConfig().GetMaxUnackedMessages()), nil
}

// PoisonPolicy is what the broker does with a message past its redelivery limit.
type PoisonPolicy int

const (
	// PoisonBlock keeps the message, and everything after it, out for good (the broker's default).
	PoisonBlock PoisonPolicy = iota
	// PoisonDrop skips the message.
	PoisonDrop
	// PoisonDeadLetter moves the message to FailurePolicy.DeadLetterTopic.
	PoisonDeadLetter
)

// FailurePolicy is a subscription's redelivery and poison-message policy. DefaultFailurePolicy
// holds the broker's defaults.
type FailurePolicy struct {
	MaxRedeliveries int           // delivery attempts (sends, ack-timeout re-sends, nacks) before Poison applies
	AckTimeout      time.Duration // re-send interval of an unacked message
	BaseDelay       time.Duration // first redelivery delay after a nack
	MaxDelay        time.Duration // cap on the redelivery delay
	FixedBackoff    bool          // false: the delay doubles per attempt
	Poison          PoisonPolicy
	DeadLetterTopic string // PoisonDeadLetter only
}

// DefaultFailurePolicy is the policy a broker applies to a subscription nobody configured.
var DefaultFailurePolicy = FailurePolicy{MaxRedeliveries: 5, AckTimeout: 30 * time.Second, BaseDelay: time.Second, MaxDelay: time.Minute}

// SubscriptionFailurePolicy returns the subscription's policy (DefaultFailurePolicy when never set).
func (a *Admin) SubscriptionFailurePolicy(ctx context.Context, topic, subscription string) (FailurePolicy, error) {
	resp, err := a.topics.GetSubscriptionFailurePolicy(ctx, &adminpb.GetSubscriptionFailurePolicyRequest{Topic: topic, Subscription: subscription})
	if err != nil {
		return FailurePolicy{}, fmt.Errorf("danube: get failure policy of subscription %q on %s: %w", subscription, topic, err)
	}
	fp := resp.GetFailurePolicy()
	if fp == nil {
		return DefaultFailurePolicy, nil
	}
	p := FailurePolicy{
		MaxRedeliveries: int(fp.GetMaxRedeliveryCount()),
		AckTimeout:      time.Duration(fp.GetAckTimeoutMs()) * time.Millisecond,
		BaseDelay:       time.Duration(fp.GetBaseRedeliveryDelayMs()) * time.Millisecond,
		MaxDelay:        time.Duration(fp.GetMaxRedeliveryDelayMs()) * time.Millisecond,
		FixedBackoff:    fp.GetBackoffStrategy() == adminpb.SubscriptionBackoffStrategy_Fixed,
		DeadLetterTopic: fp.GetDeadLetterTopic(),
	}
	switch fp.GetPoisonPolicy() {
	case adminpb.SubscriptionPoisonPolicy_Drop:
		p.Poison = PoisonDrop
	case adminpb.SubscriptionPoisonPolicy_DeadLetter:
		p.Poison = PoisonDeadLetter
	default:
		p.Poison = PoisonBlock
	}
	return p, nil
}

// SetSubscriptionFailurePolicy replaces the subscription's policy.
func (a *Admin) SetSubscriptionFailurePolicy(ctx context.Context, topic, subscription string, p FailurePolicy) error {
	fp := &adminpb.SubscriptionFailurePolicy{
		MaxRedeliveryCount:    uint32(p.MaxRedeliveries),
		AckTimeoutMs:          uint64(p.AckTimeout / time.Millisecond),
		BaseRedeliveryDelayMs: uint64(p.BaseDelay / time.Millisecond),
		MaxRedeliveryDelayMs:  uint64(p.MaxDelay / time.Millisecond),
		BackoffStrategy:       adminpb.SubscriptionBackoffStrategy_Exponential,
		PoisonPolicy:          adminpb.SubscriptionPoisonPolicy_Block,
	}
	if p.FixedBackoff {
		fp.BackoffStrategy = adminpb.SubscriptionBackoffStrategy_Fixed
	}
	switch p.Poison {
	case PoisonDrop:
		fp.PoisonPolicy = adminpb.SubscriptionPoisonPolicy_Drop
	case PoisonDeadLetter:
		fp.PoisonPolicy = adminpb.SubscriptionPoisonPolicy_DeadLetter
		fp.DeadLetterTopic = &p.DeadLetterTopic
	}
	_, err := a.topics.SetSubscriptionFailurePolicy(ctx, &adminpb.SetSubscriptionFailurePolicyRequest{Topic: topic, Subscription: subscription, FailurePolicy: fp})
	if err != nil {
		return fmt.Errorf("danube: set failure policy of subscription %q on %s: %w", subscription, topic, err)
	}
	return nil
}
