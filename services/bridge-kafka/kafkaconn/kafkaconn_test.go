package kafkaconn_test

import (
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaconn"
)

// TestPropertiesRedactSecrets: secret properties pass through to librdkafka, but String (the
// start-up log, --print-config) and Check (a configuration error) print them redacted; the ones
// a variable sets are refused.
func TestPropertiesRedactSecrets(t *testing.T) {
	const secret = "TOPSECRET"
	var p kafkaconn.Properties
	for _, kv := range []string{"ssl.key.pem", "sasl.oauthbearer.config", "ssl.keystore.password", "sasl.oauthbearer.client.secret",
		"sasl.oauthbearer.assertion.private.key.passphrase"} {
		_ = p.UnmarshalText([]byte(kv + "=" + secret + ";linger.ms=7"))
		if p.Values[kv] != secret {
			t.Errorf("%s: not passed through: %v", kv, p.Values)
		}
		if s := p.String(); strings.Contains(s, secret) || !strings.Contains(s, kv+"=") || !strings.Contains(s, "linger.ms=7") {
			t.Errorf("%s: String() = %q, want it redacted", kv, s)
		}
		_ = p.UnmarshalText([]byte(kv + "=" + secret + ";go.events.channel.size=1"))
		if err := p.Check("KAFKA_CONSUMER_PROPERTIES"); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: Check() = %v, want an error without the secret", kv, err)
		}
	}
	for _, kv := range []string{"sasl.password", "ssl.key.password"} {
		_ = p.UnmarshalText([]byte(kv + "=" + secret))
		if err := p.Check("KAFKA_PRODUCER_PROPERTIES"); err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "set KAFKA_") {
			t.Errorf("%s: Check() = %v, want it refused (a variable sets it), without the secret", kv, err)
		}
	}
}

// TestProtocolText: KAFKA_SECURITY_PROTOCOL takes librdkafka's names in any case and lists them
// otherwise.
func TestProtocolText(t *testing.T) {
	var p kafkaconn.Protocol
	if err := p.UnmarshalText([]byte("SASL_SSL")); err != nil || p != "sasl_ssl" {
		t.Fatalf("%q %v", p, err)
	}
	if err := p.UnmarshalText([]byte("tls")); err == nil || err.Error() != `want "plaintext", "ssl", "sasl_plaintext" or "sasl_ssl"` {
		t.Fatalf("%v", err)
	}
}
