package transform_test

import (
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// A typical three-step chain (unwrap, mask, filter) on a source-postgres event.
func BenchmarkChain(b *testing.B) {
	c := sourceChain(b, "TRANSFORMS=unwrap,mask,only_eu", "TRANSFORM_MASK_FIELDS=email",
		"TRANSFORM_ONLY_EU_TYPE=filter", "TRANSFORM_ONLY_EU_EXPR=payload.region == 'eu'")
	payload := []byte(`{"op":"INSERT","schema":"public","table":"customers","before":null,"after":{"id":12345,"name":"Ada Lovelace",` +
		`"email":"ada@example.com","region":"eu","balance":"1234.50","created_at":"2026-12-08T10:00:00Z"},` +
		`"source":{"db":"shop","lsn":"0/16B3748","txid":771,"commit_time":"2026-12-08T10:00:00.123Z","snapshot":false}}`)
	attrs := map[string]string{"table": "public.customers", "op": "INSERT"}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		r := transform.Record{Payload: payload, Attributes: attrs, Topic: "/cdc/customers"}
		if keep, err := c.Apply(&r); err != nil || !keep {
			b.Fatal(keep, err)
		}
	}
}

// The sink bench case's chain (tools/bench sink-http-transforms) on its 640-byte order.
func BenchmarkSinkChain(b *testing.B) {
	c := sinkChain(b, "TRANSFORMS=only_paid,rename,insert", "TRANSFORM_ONLY_PAID_TYPE=filter", `TRANSFORM_ONLY_PAID_EXPR=payload.status == "paid"`,
		"TRANSFORM_RENAME_FIELDS=order_id:id,customer.id:customer_id", `TRANSFORM_INSERT_EXPR={"danube_topic": topic, "danube_offset": offset}`)
	payload := []byte(`{"order_id":1,"status":"paid","created":"2026-01-02T03:04:05.000001Z","customer":{"id":"c-1","name":"Customer 1",` +
		`"email":"customer1@example.com","country":"AT"},"amount":"129.90","currency":"EUR","items":[{"sku":"SKU-10001","name":"Widget",` +
		`"qty":1,"price":"99.90"},{"sku":"SKU-10002","name":"Gadget","qty":2,"price":"10.00"},{"sku":"SKU-10003","name":"Cable","qty":1,` +
		`"price":"10.00"}],"shipping":{"method":"standard","address":{"street":"Ringstrasse 1","city":"Vienna","zip":"1010","country":"AT"}},` +
		`"payment":{"method":"card","provider":"acme-pay","reference":"pay-00000001"},"tags":["web","returning"],"note":"leave at the door, ring twice"}`)
	m := &danube.Message{Topic: "/default/orders", Offset: 42, Payload: payload}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		r := transform.Record{Payload: payload, Topic: m.Topic, Message: m}
		if keep, err := c.Apply(&r); err != nil || !keep {
			b.Fatal(keep, err)
		}
	}
}
