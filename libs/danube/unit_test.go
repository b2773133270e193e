package danube

import (
	"context"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
)

func TestFNV1a64Vectors(t *testing.T) {
	// Reference vectors of FNV-1a 64 (Fowler/Noll/Vo test suite).
	vectors := map[string]uint64{
		"":       0xcbf29ce484222325,
		"a":      0xaf63dc4c8601ec8c,
		"foobar": 0x85944171f73967e8,
	}
	for in, want := range vectors {
		if got := fnv1a64(in); got != want {
			t.Errorf("fnv1a64(%q) = %#x, want %#x", in, got, want)
		}
	}
	for _, k := range []string{"order-1", "customer/42", "ключ", strings.Repeat("x", 1000)} {
		h := fnv.New64a()
		h.Write([]byte(k))
		if got, want := fnv1a64(k), h.Sum64(); got != want {
			t.Errorf("fnv1a64(%q) = %#x, hash/fnv says %#x", k, got, want)
		}
	}
}

func TestPartitionForKey(t *testing.T) {
	cases := []struct {
		key  string
		n    int
		want int
	}{
		{"a", 3, int(0xaf63dc4c8601ec8c % 3)},
		{"foobar", 4, int(0x85944171f73967e8 % 4)},
		{"", 7, int(0xcbf29ce484222325 % 7)},
		{"anything", 1, 0},
		{"anything", 0, 0},
	}
	for _, c := range cases {
		if got := PartitionForKey(c.key, c.n); got != c.want {
			t.Errorf("PartitionForKey(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: -1}
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := b.Next(i + 1); got != w*time.Millisecond {
			t.Errorf("Next(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.Next(1 << 30); got != 100*time.Millisecond {
		t.Errorf("Next(huge) = %v, want the 100ms cap", got)
	}
	var def ExponentialBackoff
	for attempt := 1; attempt <= 10; attempt++ {
		full := min(100*time.Millisecond<<(attempt-1), 5*time.Second)
		for range 50 {
			got := def.Next(attempt)
			if got < full/2 || got > full {
				t.Fatalf("default Next(%d) = %v, want in [%v, %v]", attempt, got, full/2, full)
			}
		}
	}
}

func TestNewClientURL(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:6650", "https://broker.example:6650", "http://[::1]:6650/"} {
		if _, err := NewClient(ok); err != nil {
			t.Errorf("NewClient(%q) = %v, want ok", ok, err)
		}
	}
	bad := map[string]string{
		"127.0.0.1:6650":        `danube: service URL "127.0.0.1:6650": parse "127.0.0.1:6650": first path segment in URL cannot contain colon`,
		"localhost:6650":        `danube: service URL "localhost:6650": scheme must be http or https`,
		"grpc://127.0.0.1:6650": `danube: service URL "grpc://127.0.0.1:6650": scheme must be http or https`,
		"http://127.0.0.1":      `danube: service URL "http://127.0.0.1": want scheme://host:port`,
		"http://h:1/x":          `danube: service URL "http://h:1/x": unexpected path "/x"`,
	}
	for in, want := range bad {
		_, err := NewClient(in)
		if err == nil || err.Error() != want {
			t.Errorf("NewClient(%q) error = %v, want %q", in, err, want)
		}
	}
	_, err := NewClient("http://127.0.0.1:6650", WithCAFile("/nonexistent/ca.pem"))
	if err == nil || !strings.HasPrefix(err.Error(), `danube: CA file "/nonexistent/ca.pem": open /nonexistent/ca.pem:`) {
		t.Errorf("missing CA file error = %v", err)
	}
}

func TestTokenFileReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf := newTokenFile(path)
	ctx := context.Background()
	if tok, err := tf.Token(ctx); err != nil || tok != "first" {
		t.Fatalf("Token = %q, %v; want first", tok, err)
	}
	// Change the content and make sure the mtime differs even on coarse clocks.
	if err := os.WriteFile(path, []byte("second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if tok, err := tf.Token(ctx); err != nil || tok != "second-token" {
		t.Fatalf("Token after rewrite = %q, %v; want second-token", tok, err)
	}
	md, err := bearerCreds{supply: tf.Token}.GetRequestMetadata(ctx)
	if err != nil || md["authorization"] != "Bearer second-token" {
		t.Fatalf("metadata = %v, %v", md, err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(path, later.Add(time.Second), later.Add(time.Second))
	if _, err := tf.Token(ctx); err == nil || err.Error() != `token file "`+path+`" is empty` {
		t.Fatalf("empty token file error = %v", err)
	}
	os.Remove(path)
	if _, err := tf.Token(ctx); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing token file error = %v", err)
	}
}

func TestExactPartitions(t *testing.T) {
	raw := []string{"/default/orders-part-10", "/default/orders-part-2", "/default/ord-part-0", "/default/orders-part-0",
		"/default/orders-part-1", "/default/orders-archive", "/default/orders-part-x", "/default/orders-part-01"}
	got := exactPartitions("/default/orders", raw)
	want := []string{"/default/orders-part-0", "/default/orders-part-1", "/default/orders-part-2", "/default/orders-part-10"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("exactPartitions = %v, want %v", got, want)
	}
	if got := exactPartitions("/default/ord", raw); len(got) != 1 || got[0] != "/default/ord-part-0" {
		t.Errorf("exactPartitions(/default/ord) = %v", got)
	}
	if got := exactPartitions("/default/t", []string{"/default/t", "/default/t2"}); len(got) != 1 || got[0] != "/default/t" {
		t.Errorf("non-partitioned = %v", got)
	}
	if got := exactPartitions("/default/none", raw); len(got) != 0 {
		t.Errorf("no match = %v", got)
	}
}

func TestValidTopic(t *testing.T) {
	for _, ok := range []string{"/default/t", "/ns_1/topic-part-0", "/a/b", "/défaut/thé"} {
		if err := validTopic("Topic", ok); err != nil {
			t.Errorf("validTopic(%q) = %v", ok, err)
		}
	}
	bad := map[string]string{
		"":             "danube: Topic is required",
		"default/t":    `danube: Topic "default/t": want /namespace/topic`,
		"/default/t/x": `danube: Topic "/default/t/x": want /namespace/topic`,
		"/default/t.x": `danube: Topic "/default/t.x": only letters, digits, '_' and '-' are allowed in a topic name`,
		"/default/":    `danube: Topic "/default/": want /namespace/topic`,
	}
	for in, want := range bad {
		if err := validTopic("Topic", in); err == nil || err.Error() != want {
			t.Errorf("validTopic(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestParseSubscriptionType(t *testing.T) {
	cases := map[string]SubscriptionType{"exclusive": Exclusive, "Shared": Shared, "FAILOVER": Failover, "KeyShared": KeyShared, "key_shared": KeyShared, " key-shared ": KeyShared}
	for in, want := range cases {
		got, err := ParseSubscriptionType(in)
		if err != nil || got != want {
			t.Errorf("ParseSubscriptionType(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != subscriptionTypeNames[want] {
			t.Errorf("String() = %q", got.String())
		}
	}
	if _, err := ParseSubscriptionType("fanout"); err == nil || err.Error() != `danube: unknown subscription type "fanout" (want Exclusive, Shared, Failover or KeyShared)` {
		t.Errorf("bad type error = %v", err)
	}
	if s := SubscriptionType(9).String(); s != "SubscriptionType(9)" {
		t.Errorf("String(9) = %q", s)
	}
}

func TestUnwrapSchemaDefinition(t *testing.T) {
	cases := map[string]string{
		`{"JsonSchema":{"raw_schema":"{\"type\":\"object\"}","fingerprint":"sha256:ab"}}`:        `{"type":"object"}`,
		`{"Avro":{"raw_schema":"{\"type\":\"record\"}","fingerprint":"f"}}`:                      `{"type":"record"}`,
		`{"Protobuf":{"raw_proto":"syntax = \"proto3\";","message_name":"M","fingerprint":"f"}}`: `syntax = "proto3";`,
		`"Bytes"`:           ``,
		`"String"`:          ``,
		`{"type":"object"}`: `{"type":"object"}`,
		`not json`:          `not json`,
	}
	for in, want := range cases {
		if got := string(UnwrapSchemaDefinition([]byte(in))); got != want {
			t.Errorf("UnwrapSchemaDefinition(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestProxyHeader(t *testing.T) {
	direct := broker{brokerURL: "http://b1:6650", connectURL: "http://b1:6650"}
	if md, ok := metadata.FromOutgoingContext(rpcCtx(context.Background(), direct)); ok && len(md.Get(proxyHeader)) > 0 {
		t.Errorf("direct connection sent %s: %v", proxyHeader, md)
	}
	proxied := broker{brokerURL: "http://b1:6650", connectURL: "http://proxy:6650"}
	md, _ := metadata.FromOutgoingContext(rpcCtx(context.Background(), proxied))
	if got := md.Get(proxyHeader); len(got) != 1 || got[0] != "http://b1:6650" {
		t.Errorf("%s = %v, want [http://b1:6650]", proxyHeader, got)
	}
}
