package harness

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// roundTrip publishes one reliable message through ep and receives it back.
func roundTrip(t *testing.T, ep DanubeEndpoint) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := danube.NewClient(ep.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := "/default/" + Name(t)
	p, err := c.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "p", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cons, err := c.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if _, err := p.Send(ctx, danube.ProducerMessage{Payload: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-cons.Messages():
		if !bytes.Equal(m.Payload, []byte("hello")) || m.Topic != topic {
			t.Fatalf("received %q on %s, want \"hello\" on %s", m.Payload, m.Topic, topic)
		}
		if err := cons.Ack(ctx, m); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no message received")
	}
}

func TestDanubeInProcess(t *testing.T) {
	t.Setenv(EnvDanubeURL, "")
	ep := Danube(t, devbroker.Config{AckTimeout: time.Second})
	if ep.Broker == nil || ep.URL != ep.Broker.URL() || !strings.HasPrefix(ep.URL, "http://127.0.0.1:") {
		t.Fatalf("endpoint %+v: want an in-process broker on loopback", ep)
	}
	roundTrip(t, ep)
}

func TestDanubeFromEnv(t *testing.T) {
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Setenv(EnvDanubeURL, b.URL())
	t.Setenv(EnvDanubeAdminURL, "") // whatever the environment says: this broker's admin is not set
	ep := Danube(t)
	if ep.Broker != nil || ep.URL != b.URL() || ep.Source != EnvDanubeURL+"="+b.URL() {
		t.Fatalf("endpoint %+v: want the broker at %s from the environment", ep, b.URL())
	}
	roundTrip(t, ep)
}

func TestDanubeFromEnvRejectsBadValues(t *testing.T) {
	for raw, want := range map[string]string{
		"127.0.0.1:6650":     `IT_DANUBE_URL: "127.0.0.1:6650" is not an http(s)://host:port service URL`,
		"grpc://127.0.0.1:1": `IT_DANUBE_URL: "grpc://127.0.0.1:1" is not an http(s)://host:port service URL`,
		"http://127.0.0.1:1": "IT_DANUBE_URL: 127.0.0.1:1 is unreachable",
		"http://127.0.0.1":   `IT_DANUBE_URL: "http://127.0.0.1" is not an http(s)://host:port service URL`,
	} {
		_, err := danubeFromEnv(raw)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("danubeFromEnv(%q) = %v, want an error starting with %q", raw, err, want)
		}
	}
}
