package transform_test

import (
	"testing"

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
