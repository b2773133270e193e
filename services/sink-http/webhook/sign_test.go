package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The Standard Webhooks reference test vector (standard-webhooks/standard-webhooks, libraries' tests).
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	s, err := NewSigner(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vecID, time.Unix(vecTS, 0), []byte(vecBody)); got != vecSig {
		t.Fatalf("signature %q, want %q", got, vecSig)
	}
}

func TestVerify(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderWebhookID, vecID)
	h.Set(HeaderWebhookTimestamp, strconv.Itoa(vecTS))
	h.Set(HeaderWebhookSignature, "v1,bm90IGl0 "+vecSig) // rotation: several signatures, one matches
	now := time.Unix(vecTS+10, 0)
	if err := Verify(vecSecret, h, []byte(vecBody), now, 0); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
	if err := Verify(vecSecret, h, []byte(vecBody+" "), now, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: got %v, want ErrBadSignature", err)
	}
	if err := Verify(vecSecret, h, []byte(vecBody), now.Add(time.Hour), time.Minute); !errors.Is(err, ErrBadTimestamp) {
		t.Fatalf("replayed request: got %v, want ErrBadTimestamp", err)
	}
	h.Del(HeaderWebhookID)
	if err := Verify(vecSecret, h, []byte(vecBody), now, 0); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("missing id: got %v, want ErrMissingSignature", err)
	}
}

func TestSecretForms(t *testing.T) {
	raw, err := NewSigner("plain-secret")
	if err != nil {
		t.Fatal(err)
	}
	if string(raw.key) != "plain-secret" {
		t.Fatalf("raw secret key %q", raw.key)
	}
	for _, bad := range []string{"", "whsec_", "whsec_%%%"} {
		if _, err := NewSigner(bad); err == nil {
			t.Errorf("NewSigner(%q) accepted", bad)
		}
	}
}
