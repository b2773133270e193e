package runtime_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

func TestSinkRecordHelpers(t *testing.T) {
	r := runtime.NewSinkRecord(&danube.Message{Topic: "/default/t-part-1", ProducerID: 7, Offset: 42, Payload: []byte(`{"a":1}`)})
	if r.Partition != "/default/t-part-1" || r.MessageID() != "topic:/default/t-part-1/producer:7/offset:42" {
		t.Fatalf("%q %q", r.Partition, r.MessageID())
	}
	var v struct{ A int }
	if err := r.PayloadJSON(&v); err != nil || v.A != 1 {
		t.Fatal(v, err)
	}
	if s, err := r.PayloadString(); err != nil || s != `{"a":1}` || len(r.Attributes()) != 0 {
		t.Fatal(s, err)
	}
	bad := runtime.NewSinkRecord(&danube.Message{Topic: "/default/t", Payload: []byte{0xff}})
	_, err := bad.PayloadString()
	if !errors.Is(err, runtime.ErrInvalidData) || err.Error() != "message topic:/default/t/producer:0/offset:0: payload is not valid UTF-8" {
		t.Fatalf("%v", err)
	}
	if err := bad.PayloadJSON(&v); !errors.Is(err, runtime.ErrInvalidData) {
		t.Fatalf("%v", err)
	}
}

func TestSourceRecordBuilders(t *testing.T) {
	base, err := runtime.SourceRecordFromJSON("/default/t", map[string]int{"x": 1}, int64(7))
	if err != nil || string(base.Payload) != `{"x":1}` {
		t.Fatal(err)
	}
	a := base.WithAttribute("k", "v")
	b := a.WithAttribute("k2", "v2").WithKey("pk").WithPosition(9)
	if pos, ok := b.Position(); len(base.Attributes) != 0 || len(a.Attributes) != 1 || len(b.Attributes) != 2 || b.Key != "pk" || !ok || pos != 9 || a.Key != "" {
		t.Fatalf("builders share state: %v %v %v", base, a, b)
	}
	if pos, ok := a.Position(); !ok || pos != 7 {
		t.Fatalf("position %v %v, want 7", pos, ok)
	}
	if _, ok := b.WithoutPosition().Position(); ok {
		t.Fatal("WithoutPosition kept the position")
	}
	cp := runtime.Checkpoint(int64(3))
	if pos, ok := cp.Position(); !ok || pos != 3 || !cp.IsCheckpoint() || b.IsCheckpoint() {
		t.Fatalf("checkpoint %v %v %v", pos, ok, cp.IsCheckpoint())
	}
	if _, err := runtime.SourceRecordFromJSON("/default/t", func() {}, 0); !errors.Is(err, runtime.ErrInvalidData) {
		t.Fatalf("%v", err)
	}
}

func TestErrorClasses(t *testing.T) {
	cause := errors.New("boom")
	cases := []struct {
		err   error
		class runtime.Class
		is    error
	}{
		{runtime.Retryable(cause), runtime.ClassRetryable, runtime.ErrRetryable},
		{runtime.InvalidData(cause), runtime.ClassInvalidData, runtime.ErrInvalidData},
		{runtime.Fatal(cause), runtime.ClassFatal, runtime.ErrFatal},
		{fmt.Errorf("wrapped: %w", runtime.Fatal(cause)), runtime.ClassFatal, runtime.ErrFatal},
		{cause, runtime.ClassRetryable, nil},
	}
	for _, c := range cases {
		if got := runtime.ClassOf(c.err); got != c.class {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.class)
		}
		if c.is != nil && (!errors.Is(c.err, c.is) || !errors.Is(c.err, cause)) {
			t.Errorf("errors.Is(%v, %v) false", c.err, c.is)
		}
	}
	if runtime.Fatal(nil) != nil || runtime.InvalidData(nil) != nil || runtime.Retryable(nil) != nil || runtime.RetryableAfter(nil, time.Second) != nil {
		t.Error("classifying nil must give nil")
	}
	p := retry.Policy{Base: time.Millisecond}
	if d := p.Delay(1, fmt.Errorf("http: %w", runtime.RetryableAfter(cause, 3*time.Second))); d != 3*time.Second {
		t.Errorf("Retry-After hint ignored: %v", d)
	}
	be := &runtime.BatchError{Errs: []error{nil, runtime.InvalidData(cause), nil}}
	if be.Error() != "1 of 3 records failed; first: boom" || !errors.Is(be, runtime.ErrInvalidData) {
		t.Errorf("%v", be)
	}
}
