package danube

import "errors"

// UnmarshalText parses a subscription type as ParseSubscriptionType does, so that configuration
// loaders (environment variables, flags) hold a typed value parsed once.
func (t *SubscriptionType) UnmarshalText(b []byte) error {
	v, err := ParseSubscriptionType(string(b))
	if err != nil {
		return errors.New("want Exclusive, Shared, Failover or KeyShared")
	}
	*t = v
	return nil
}

// MarshalText returns the broker's name for the type.
func (t SubscriptionType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
