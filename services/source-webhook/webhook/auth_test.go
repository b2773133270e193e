package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func sign(secret []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, secret)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// TestAuthSchemes: every scheme with a good, a missing, a bad and (where the scheme signs a
// timestamp) an expired or replayed signature; only the good requests reach Danube. A replayed
// GitHub delivery (same X-GitHub-Delivery) is answered without being published again.
func TestAuthSchemes(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "auth")
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	writeFile(t, keys, "# partners\nkey-one\n\nkey-two\n")
	stripeSecret := filepath.Join(dir, "stripe")
	writeFile(t, stripeSecret, "whsec_old\nwhsec_stripe\n") // rotation: either matches
	stdKey := []byte("0123456789abcdef0123456789abcdef")
	stdSecret := filepath.Join(dir, "standard")
	writeFile(t, stdSecret, "whsec_"+base64.StdEncoding.EncodeToString(stdKey)+"\n")
	cfg := loadConfig(t, b, "wh-auth", topic, "WEBHOOK_HMAC_SECRET=gh-secret", "WEBHOOK_SIGNATURE_TOLERANCE_MS=60000",
		"WEBHOOK_ROUTES=/key="+topic+" auth=apikey keys_file="+keys+
			";/gh="+topic+" auth=github"+
			";/stripe="+topic+" auth=stripe secret_file="+stripeSecret+
			";/std="+topic+" auth=standard secret_file="+stdSecret+
			";/hmac="+topic+" auth=hmac signature_header=X-Sig")
	r := start(t, cfg)
	const body = `{"event":"x"}`
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-2*time.Minute).Unix(), 10)
	ghSig := "sha256=" + hex.EncodeToString(sign([]byte("gh-secret"), body))
	stripeSig := func(secret, ts string) string {
		return "t=" + ts + ",v1=" + hex.EncodeToString(sign([]byte(secret), ts+".", body))
	}
	stdSig := func(id, ts string) string {
		return "v1," + base64.StdEncoding.EncodeToString(sign(stdKey, id+"."+ts+".", body))
	}

	cases := []struct {
		name, path string
		headers    []string
		code       int
	}{
		{"apikey X-API-Key", "/key", []string{"X-API-Key", "key-one"}, 200},
		{"apikey bearer", "/key", []string{"Authorization", "Bearer key-two"}, 200},
		{"apikey missing", "/key", nil, 401},
		{"apikey wrong", "/key", []string{"X-API-Key", "key-three"}, 403},
		{"apikey comment line", "/key", []string{"X-API-Key", "# partners"}, 403},
		{"github good", "/gh", []string{"X-Hub-Signature-256", ghSig, "X-GitHub-Delivery", "d-1"}, 200},
		{"github replayed delivery", "/gh", []string{"X-Hub-Signature-256", ghSig, "X-GitHub-Delivery", "d-1"}, 200},
		{"github missing", "/gh", nil, 401},
		{"github bad", "/gh", []string{"X-Hub-Signature-256", "sha256=" + hex.EncodeToString(sign([]byte("other"), body))}, 403},
		{"github not hex", "/gh", []string{"X-Hub-Signature-256", "sha256=zz"}, 403},
		{"stripe good", "/stripe", []string{"Stripe-Signature", stripeSig("whsec_stripe", ts)}, 200},
		{"stripe bad", "/stripe", []string{"Stripe-Signature", stripeSig("whsec_wrong", ts)}, 403},
		{"stripe expired", "/stripe", []string{"Stripe-Signature", stripeSig("whsec_stripe", old)}, 403},
		{"stripe timestamp altered", "/stripe", []string{"Stripe-Signature", "t=" + ts + ",v1=" + hex.EncodeToString(sign([]byte("whsec_stripe"), old+".", body))}, 403},
		{"stripe missing", "/stripe", nil, 401},
		{"standard good", "/std", []string{"Webhook-Id", "msg_1", "Webhook-Timestamp", ts, "Webhook-Signature", stdSig("msg_1", ts)}, 200},
		{"standard replayed id", "/std", []string{"Webhook-Id", "msg_1", "Webhook-Timestamp", ts, "Webhook-Signature", stdSig("msg_1", ts)}, 200},
		{"standard expired", "/std", []string{"Webhook-Id", "msg_2", "Webhook-Timestamp", old, "Webhook-Signature", stdSig("msg_2", old)}, 403},
		{"standard id altered", "/std", []string{"Webhook-Id", "msg_3", "Webhook-Timestamp", ts, "Webhook-Signature", stdSig("msg_2", ts)}, 403},
		{"standard missing", "/std", nil, 401},
		{"hmac good", "/hmac", []string{"X-Sig", hex.EncodeToString(sign([]byte("gh-secret"), body))}, 200},
		{"hmac bad", "/hmac", []string{"X-Sig", hex.EncodeToString(sign([]byte("gh-secret"), body+" "))}, 403},
		{"hmac missing", "/hmac", nil, 401},
	}
	accepted := 0
	for _, c := range cases {
		got := post(t, r.url+c.path, "application/json", body, c.headers...)
		got.want(t, c.name, c.code)
		if c.code == 200 && got.hdr.Get("Idempotent-Replayed") == "" {
			accepted++
		}
	}
	if accepted != 6 {
		t.Fatalf("%d first-time acceptances, want 6 (the replays answered from memory)", accepted)
	}

	// The key file is re-read when it changes: a new key works, a removed one no longer does.
	writeFile(t, keys, "key-new\n")
	deadline := time.Now().Add(runtimetest.Timeout)
	for post(t, r.url+"/key", "application/json", body, "X-API-Key", "key-new").code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("a key added to the key file is not accepted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	post(t, r.url+"/key", "application/json", body, "X-API-Key", "key-one").want(t, "removed key", 403)

	col.WaitFor(t, "7 events", func(ms []*danube.Message) bool { return len(ms) >= 7 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(col.Messages()); n != 7 {
		t.Fatalf("%d events in Danube, want the 7 accepted once", n)
	}
	if logs := fmt.Sprint(cfg); strings.Contains(logs, "gh-secret") {
		t.Fatalf("the config prints the secret: %s", logs)
	}
}

// writeFile replaces path's content atomically (as a secret mount does) with a new modification time.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Duration(len(content)) * time.Millisecond)
	_ = os.Chtimes(path, later, later)
}
