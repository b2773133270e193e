package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

// webhookTopic is the webhook scenario's Danube topic.
const webhookTopic = "/default/notifications"

// runWebhook is the webhook scenario:
//
//	producer ──► development broker ──► sink-http connector ──► local webhook receiver
//
// The receiver answers 503 to some first attempts so that the sink's retries show.
func runWebhook(ctx context.Context, args []string, out io.Writer) error {
	fs, set := newFlags("webhook", "events", 5, out)
	flaky := fs.Int("flaky", 7, "the receiver answers 503 to the first attempt of every n-th event (0 = never)")
	if err := set.parse(fs, args); err != nil {
		return err
	}
	p, err := newPipeline(out, set)
	if err != nil {
		return err
	}
	defer p.close()

	secret := newSecret("whsec_")
	recv, err := startReceiver(secret, *flaky, p.ui, p.deliver)
	if err != nil {
		return err
	}
	defer recv.Close()

	var retried atomic.Int64
	if err := p.startSinkHTTP(ctx, []string{
		"DANUBE_TOPIC=" + webhookTopic, "SUBSCRIPTION_NAME=quickstart", "CONNECTOR_NAME=quickstart-webhook",
		"TARGET_URL=http://" + recv.Addr().String() + "/hook", "WEBHOOK_SECRET=" + secret, "MAX_RETRIES=-1",
		"BATCH_SIZE=10", "BATCH_TIMEOUT_MS=50", "MAX_IN_FLIGHT=4",
	}, sinkhttp.WithHooks(webhook.Hooks{
		OnAttempt: func(ev webhook.AttemptEvent) {
			if ev.Err != nil && webhook.IsRetryable(ev.Err) {
				retried.Add(int64(ev.Messages))
			}
		},
	})); err != nil {
		return err
	}

	client, err := danube.NewClient(p.broker.URL())
	if err != nil {
		return err
	}
	defer client.Close()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: webhookTopic, Name: "quickstart-producer", Dispatch: danube.Reliable})
	if err != nil {
		return fmt.Errorf("create producer: %w", err)
	}
	defer prod.Close()

	fmt.Fprintf(out, "Danube quickstart: broker %s → sink-http → receiver http://%s/hook\n", p.broker.URL(), recv.Addr())
	fmt.Fprintf(out, "Publishing to %s at %g events/s; Ctrl-C to stop.\n\n", webhookTopic, set.rate)
	return p.run(ctx, []stat{{"produced", p.produced.Load}, {"delivered", p.delivered.Load}, {"retried", retried.Load}},
		func(ctx context.Context) {
			p.produce(ctx, set.every(1), func(ctx context.Context, id int) error { return sendEvent(ctx, prod, id) })
		})
}

var kinds = []string{"order.created", "order.paid", "order.shipped"}

// orderEvent is sample event id as JSON, and its customer.
func orderEvent(id int) (customer string, body []byte) {
	i := id - 1
	customer = fmt.Sprintf("customer-%d", i%5)
	body, _ = json.Marshal(map[string]any{"id": id, "type": kinds[(i/5)%len(kinds)], "customer": customer, "amount": 10 + i%90})
	return customer, body
}

// sendEvent publishes sample event id, keyed by customer so each customer's events stay in order.
func sendEvent(ctx context.Context, prod *danube.Producer, id int) error {
	customer, body := orderEvent(id)
	_, err := prod.Send(ctx, danube.ProducerMessage{Payload: body, Key: customer,
		Attributes: map[string]string{"content-type": "application/json", "source": "quickstart"}})
	return err
}
