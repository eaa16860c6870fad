package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// fannedOutEvent has every part a sink could be tempted to change in place: content tokens,
// attachments and the raw object.
func fannedOutEvent() bridge.Event {
	e := messageEvent()
	e.Message.Content = []bridge.Token{{Type: "text", Value: json.RawMessage(`"DB is down"`)}, {Type: "mention", Name: "bob", Value: json.RawMessage(`{"username":"bob"}`)}}
	e.Message.Attachments = []bridge.Attachment{{Filename: "trace.txt", Size: 12}}
	e.Raw = json.RawMessage(`{"id":"m1","content":[]}`)
	return e
}

// The envelope of an event is encoded once for all the targets it fans out to, and each
// target still signs it with its own secrets; a body template stays per sink. None of the
// sinks changes the event they all share.
func TestFanOutSharesTheEnvelopeAndNotTheSignature(t *testing.T) {
	srv, got := receiver(t, nil)
	secrets3 := []string{newSecret(t, 32), newSecret(t, 32), newSecret(t, 32)}
	var sinks []*webhook.Sink
	for _, sec := range secrets3 {
		sinks = append(sinks, newSink(t, webhook.Config{URL: srv.URL, Secret: secrets(sec)}, webhook.Options{}))
	}
	templated := newSink(t, webhook.Config{URL: srv.URL, BodyTemplate: `{"text": {{json .Data.Message.Text}}}`}, webhook.Options{})

	e := fannedOutEvent()
	before := fannedOutEvent()
	shared := new(bridge.Shared)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, s := range append(sinks, templated) {
		d := bridge.Delivery{Event: e, Target: bridge.Target{Route: "r", Sink: "hook"}, Attempt: 1, Shared: shared}
		if err := s.Deliver(ctx, d); err != nil {
			t.Fatalf("sink %d: %v", i, err)
		}
	}
	want := mustEnvelope(t, before)
	env, err := shared.Envelope(e)
	if err != nil || !bytes.Equal(env, want) {
		t.Fatalf("shared envelope = %s, %v; want %s", env, err, want)
	}
	for i, sec := range secrets3 {
		r := next(t, got)
		if !bytes.Equal(r.Body, want) {
			t.Errorf("target %d got body %s, want the envelope %s", i, r.Body, want)
		}
		if err := verify(sec, r.Header, r.Body, time.Now()); err != nil {
			t.Errorf("target %d: signature does not verify under its own secret: %v", i, err)
		}
		for j, other := range secrets3 {
			if j != i && verify(other, r.Header, r.Body, time.Now()) == nil {
				t.Errorf("target %d: signature verifies under target %d's secret", i, j)
			}
		}
	}
	if r := next(t, got); string(r.Body) != `{"text": "DB is \"down\" \\ again\n<!channel> @everyone ünïcödé 🚨"}` {
		t.Errorf("the templated sink sent %s", r.Body)
	}
	if !reflect.DeepEqual(e, before) {
		t.Fatalf("delivering changed the shared event:\n got %+v\nwant %+v", e, before)
	}
	if env2, _ := shared.Envelope(e); !bytes.Equal(env2, want) {
		t.Fatal("delivering changed the shared envelope")
	}
}
