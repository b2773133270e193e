package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

func Example() {
	const secret = "whsec_c2VjcmV0LWtleS1ieXRlcw=="
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if string(body) == "bad" {
			http.Error(w, "unknown event", http.StatusUnprocessableEntity)
			return
		}
		fmt.Printf("received %s (topic %s, offset %s)\n", body, r.Header.Get("X-Danube-Topic"), r.Header.Get("X-Danube-Offset"))
	}))
	defer receiver.Close()

	s, err := webhook.New(webhook.Config{URL: receiver.URL, Secret: secret})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	errs := s.Deliver(context.Background(), []webhook.Message{
		{Topic: "/default/orders", Offset: 7, Payload: []byte(`{"order":1}`)},
		{Topic: "/default/orders", Offset: 8, Payload: []byte("bad")},
	})
	for i, err := range errs {
		fmt.Printf("message %d: err=%v retryable=%v\n", i, err, webhook.IsRetryable(err))
	}
	// Output:
	// received {"order":1} (topic /default/orders, offset 7)
	// message 0: err=<nil> retryable=false
	// message 1: err=webhook: 422 Unprocessable Entity: "unknown event\n" retryable=false
}
