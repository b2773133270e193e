package danube

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

const (
	orderV1 = `{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`
	orderV2 = `{"type":"object","properties":{"id":{"type":"string"},"qty":{"type":"integer"}},"required":["id"]}`
	orderV3 = `{"type":"object","properties":{"id":{"type":"string"},"qty":{"type":"integer"},"note":{"type":"string"}},"required":["id"]}`
)

func TestSchemaRegistry(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	reg := c.SchemaRegistry()
	ctx := testCtx(t)

	r1, err := reg.Register(ctx, "orders", SchemaJSON, []byte(orderV1), &RegisterOptions{Description: "v1", CreatedBy: "test", Tags: []string{"a"}})
	if err != nil {
		t.Fatalf("Register v1: %v", err)
	}
	if r1.Version != 1 || !r1.New || r1.ID == 0 || !strings.HasPrefix(r1.Fingerprint, "sha256:") {
		t.Fatalf("Register v1 = %+v", r1)
	}
	again, err := reg.Register(ctx, "orders", SchemaJSON, []byte(orderV1), nil)
	if err != nil || again.Version != 1 || again.New || again.ID != r1.ID {
		t.Fatalf("Register v1 again = %+v, %v; want version 1, not new, same id", again, err)
	}
	r2, err := reg.Register(ctx, "orders", SchemaJSON, []byte(orderV2), nil)
	if err != nil || r2.Version != 2 || r2.ID != r1.ID {
		t.Fatalf("Register v2 = %+v, %v", r2, err)
	}

	latest, err := reg.Latest(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != 2 || latest.ID != r1.ID || latest.Subject != "orders" || latest.Type != SchemaJSON || string(latest.Definition) != orderV2 {
		t.Fatalf("Latest = %+v (definition %s)", latest, latest.Definition)
	}
	v1, err := reg.Get(ctx, r1.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || string(v1.Definition) != orderV1 || v1.Description != "v1" || v1.CreatedBy != "test" || v1.CreatedAt.IsZero() {
		t.Fatalf("Get(v1) = %+v", v1)
	}
	vers, err := reg.Versions(ctx, "orders")
	if err != nil || len(vers) != 2 || vers[0].Version != 1 || vers[1].Version != 2 || vers[1].SchemaID != r1.ID {
		t.Fatalf("Versions = %+v, %v", vers, err)
	}

	ok, err := reg.CheckCompatibility(ctx, "orders", SchemaJSON, []byte(orderV3), "")
	if err != nil || !ok.Compatible || len(ok.Errors) != 0 {
		t.Fatalf("CheckCompatibility(v3) = %+v, %v; want compatible", ok, err)
	}
	bad := `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id","extra"]}`
	verdict, err := reg.CheckCompatibility(ctx, "orders", SchemaJSON, []byte(bad), "backward")
	if err != nil || verdict.Compatible || len(verdict.Errors) == 0 {
		t.Fatalf("CheckCompatibility(bad) = %+v, %v; want incompatible with reasons", verdict, err)
	}

	_, err = reg.Latest(ctx, "missing")
	if status.Code(err) != codes.NotFound || !strings.HasPrefix(err.Error(), `danube: latest schema of subject "missing": rpc error: code = NotFound`) {
		t.Fatalf("Latest(missing) = %v", err)
	}
	if _, err := reg.Register(ctx, "", SchemaJSON, nil, nil); err == nil || err.Error() != "danube: register schema: subject is required" {
		t.Fatalf("Register without subject = %v", err)
	}
}

func TestProducerStampsSchema(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	ctx := testCtx(t)
	reg := c.SchemaRegistry()
	r1, err := reg.Register(ctx, "events", SchemaJSON, []byte(orderV1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(ctx, "events", SchemaJSON, []byte(orderV2), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ref  SchemaRef
		want uint32
		err  string
	}{
		{"latest", SchemaRef{Subject: "events"}, 2, ""},
		{"pinned", SchemaRef{Subject: "events", Version: 1}, 1, ""},
		{"min ok", SchemaRef{Subject: "events", MinVersion: 2}, 2, ""},
		{"pinned too new", SchemaRef{Subject: "events", Version: 3}, 0, `danube: producer "p-pinned too new" on topic "/default/schematized": schema subject "events": pinned version 3 > latest 2`},
		{"min too new", SchemaRef{Subject: "events", MinVersion: 5}, 0, `danube: producer "p-min too new" on topic "/default/schematized": schema subject "events": latest version 2 < minimum 5`},
	}
	const topic = "/default/schematized"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := tc.ref
			p, err := c.NewProducer(ctx, ProducerOptions{Topic: topic, Name: "p-" + tc.name, Schema: &ref})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("NewProducer error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c-" + tc.name, Subscription: "s-" + tc.name, Type: Exclusive})
			mustSend(t, p, ProducerMessage{Payload: []byte(`{"id":"x"}`)})
			m := receive(t, cons)
			if m.SchemaID == nil || *m.SchemaID != r1.ID || m.SchemaVersion == nil || *m.SchemaVersion != tc.want {
				t.Fatalf("schema stamp = %v/%v, want id %d version %d", m.SchemaID, m.SchemaVersion, r1.ID, tc.want)
			}
		})
	}
	// A subject that was never registered is refused before the broker creates anything (a v0.15.1
	// broker would create the topic without a schema).
	_, err = c.NewProducer(ctx, ProducerOptions{Topic: "/default/unregistered", Name: "p", Schema: &SchemaRef{Subject: "nope"}})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `subject "nope"`) {
		t.Fatalf("NewProducer with unregistered subject = %v, want NotFound naming the subject", err)
	}
}

// A message may carry a newer version of the producer's subject than the one resolved at creation
// (a source registered it mid-stream); SetCompatibility changes what the registry accepts next.
func TestMessageSchemaVersionAndCompatibility(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	ctx := testCtx(t)
	reg := c.SchemaRegistry()
	r1, err := reg.Register(ctx, "rows", SchemaJSON, []byte(orderV1), nil)
	if err != nil {
		t.Fatal(err)
	}
	const topic = "/default/rows"
	p, err := c.NewProducer(ctx, ProducerOptions{Topic: topic, Name: "p", Schema: &SchemaRef{Subject: "rows"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	if _, err := reg.Register(ctx, "rows", SchemaJSON, []byte(orderV2), nil); err != nil {
		t.Fatal(err)
	}
	mustSend(t, p, ProducerMessage{Payload: []byte(`{"id":"a"}`)})
	mustSend(t, p, ProducerMessage{Payload: []byte(`{"id":"b","qty":1}`), SchemaVersion: 2})
	for _, want := range []uint32{1, 2} {
		m := receive(t, cons)
		if *m.SchemaID != r1.ID || *m.SchemaVersion != want {
			t.Fatalf("%s: stamp %d/%d, want %d/%d", m.Payload, *m.SchemaID, *m.SchemaVersion, r1.ID, want)
		}
	}

	incompatible := `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id","extra"]}`
	if _, err := reg.Register(ctx, "rows", SchemaJSON, []byte(incompatible), nil); err == nil {
		t.Fatal("an incompatible schema was registered under backward compatibility")
	}
	if err := reg.SetCompatibility(ctx, "rows", "none"); err != nil {
		t.Fatal(err)
	}
	if r, err := reg.Register(ctx, "rows", SchemaJSON, []byte(incompatible), nil); err != nil || r.Version != 3 {
		t.Fatalf("after compatibility none: %+v, %v", r, err)
	}
	if err := reg.SetCompatibility(ctx, "missing", "none"); err == nil || !strings.Contains(err.Error(), `set compatibility of schema "missing" to none`) {
		t.Fatalf("SetCompatibility(missing) = %v", err)
	}
}
