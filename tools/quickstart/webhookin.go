package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
	webhooksrc "github.com/danube-messaging/danube-connect-go/services/source-webhook/webhook"
)

// The webhook-in scenario's Danube topic and the route senders post to.
const (
	webhookInTopic = "/default/incoming-orders"
	webhookInPath  = "/hooks/orders"
)

// runWebhookIn is the webhook-in scenario, HTTP into Danube:
//
//	senders ──HTTP POST──► source-webhook ──► Danube ──► sink-http ──► receiver
//
// The senders sign their events the Standard Webhooks way, as a SaaS provider does; source-webhook
// checks the signature, keys each event by its customer and answers 200 only once Danube has the
// event. A sender retries an event answered 503 or 429 after Retry-After, with the same webhook-id,
// so source-webhook does not publish it twice.
func runWebhookIn(ctx context.Context, args []string, out io.Writer) error {
	fs, set := newFlags("webhook-in", "events", 20, out)
	senders := fs.Int("senders", 4, "concurrent HTTP senders")
	if err := set.parse(fs, args); err != nil {
		return err
	}
	if *senders < 1 {
		return fmt.Errorf("-senders %d: must be at least 1", *senders)
	}
	p, err := newPipeline(out, set)
	if err != nil {
		return err
	}
	defer p.close()

	recv, err := p.startDelivery(ctx, webhookInTopic, "quickstart-webhook-in-sink", "/orders")
	if err != nil {
		return err
	}
	defer recv.Close()

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	secret := newSecret("whsec_")
	if err := startSource(p, "source-webhook", webhooksrc.New,
		"CONNECTOR_NAME=quickstart-webhook-in", "WEBHOOK_ADDR="+addr,
		"WEBHOOK_ROUTES="+webhookInPath+"="+webhookInTopic+" key=json:customer",
		"WEBHOOK_AUTH=standard", "WEBHOOK_HMAC_SECRET="+secret, "WEBHOOK_RETRY_AFTER_MS=1000",
	); err != nil {
		return err
	}
	if err := p.waitListening(ctx, addr); err != nil {
		return err
	}

	signer, err := webhook.NewSigner(secret)
	if err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *senders}
	defer tr.CloseIdleConnections()
	s := sender{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: "http://" + addr + webhookInPath, signer: signer}

	fmt.Fprintf(out, "Danube quickstart (webhook-in): %d senders → POST %s (source-webhook) → broker %s → sink-http → receiver http://%s/orders\n",
		*senders, s.url, p.broker.URL(), recv.Addr())
	fmt.Fprintf(out, "Senders post signed JSON events, %g events/s in all; an event counts as posted once answered 2xx, "+
		"which source-webhook does only after Danube acknowledged it. Ctrl-C to stop.\n\n", set.rate)
	return p.run(ctx, []stat{{"posted", p.produced.Load}, {"in Danube", p.inDanube(webhookInTopic, "quickstart")}, {"delivered", p.delivered.Load}},
		func(ctx context.Context) {
			var wg sync.WaitGroup
			for range *senders {
				wg.Go(func() { p.produce(ctx, set.every(*senders), s.post) })
			}
			wg.Wait()
		})
}

// sender posts events as a webhook provider does: Standard Webhooks signatures, the event's id as
// webhook-id on every attempt.
type sender struct {
	client *http.Client
	url    string
	signer *webhook.Signer
}

// post sends event seq once; it succeeds on a 2xx answer. After a 503 or a 429 it waits as long
// as Retry-After says before returning the error (the caller then sends the event again).
func (s sender) post(ctx context.Context, seq int) error {
	_, body := orderEvent(seq)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	id, now := "evt_"+strconv.Itoa(seq), time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderWebhookID, id)
	req.Header.Set(webhook.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhook.HeaderWebhookSignature, s.signer.Sign(id, now, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("%s %s", resp.Status, bytes.TrimSpace(answer))
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		wait := time.Second
		if sec, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && sec >= 0 {
			wait = time.Duration(sec) * time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return err
}
