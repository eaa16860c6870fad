package kinetic

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// memKV is an in-memory KV; the store's own tests cover the real one.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *memKV) Get(_ context.Context, ns, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[ns+"\x00"+key]
	return v, ok, nil
}

func (k *memKV) Put(_ context.Context, ns, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string][]byte{}
	}
	k.m[ns+"\x00"+key] = v
	return nil
}

type rig struct {
	sim  *kinetictest.Server
	sink *Sink
	disc string
}

func newRig(t *testing.T, secret string) *rig {
	t.Helper()
	sim := kinetictest.NewServer(kinetictest.Options{})
	t.Cleanup(sim.Close)
	s, err := New("kinetic", Config{Spaces: map[string]Space{"acme": {URL: sim.URL(), ClientID: "integration-user",
		ClientSecret: config.Secret(secret)}}}, Options{KV: &memKV{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &rig{sim: sim, sink: s, disc: sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "T"}).ID}
}

func (r *rig) event(typ, ts, text string) bridge.Event {
	return bridge.Event{ID: "evt_" + typ + ts, Type: typ, Source: "slack:ops", Discussion: bridge.Discussion{ID: r.disc},
		Message: &bridge.Message{ID: "C1/" + ts, Kind: bridge.KindUser, Text: text,
			Author: bridge.User{Username: "U1", DisplayName: "Alice *the* [admin]"}},
		Inbound: &bridge.Inbound{Kinetic: "acme", Sink: "ops", Channel: "C1", TS: ts, ThreadTS: "1.0"}}
}

func (r *rig) deliver(t *testing.T, e bridge.Event) error {
	t.Helper()
	return r.sink.Deliver(context.Background(), bridge.Delivery{Event: e, Target: bridge.Target{Route: "slack:ops", Sink: "kinetic"}, Attempt: 1})
}

func (r *rig) texts() []string {
	var out []string
	for _, m := range r.sim.Messages(r.disc) {
		if m.Type == "User" {
			out = append(out, m.Text())
		}
	}
	return out
}

// TestCreateEditDelete: a reply is created once (a redelivery does not duplicate it), its
// edit and delete reach the same message, and a late edit after the delete changes nothing.
func TestCreateEditDelete(t *testing.T) {
	r := newRig(t, "integration-secret")
	for range 2 {
		if err := r.deliver(t, r.event(bridge.MessageCreated, "2.0", "hi there")); err != nil {
			t.Fatal(err)
		}
	}
	want := `**Alice \*the\* \[admin\] (Slack)**: hi there`
	if got := r.texts(); len(got) != 1 || got[0] != want {
		t.Fatalf("after create: %q, want [%q]", got, want)
	}
	if err := r.deliver(t, r.event(bridge.MessageUpdated, "2.0", "hi again")); err != nil {
		t.Fatal(err)
	}
	if got := r.texts(); len(got) != 1 || !strings.HasSuffix(got[0], ": hi again") {
		t.Fatalf("after edit: %q", got)
	}
	for range 2 {
		if err := r.deliver(t, r.event(bridge.MessageDeleted, "2.0", "")); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.deliver(t, r.event(bridge.MessageUpdated, "2.0", "too late")); err != nil {
		t.Fatal(err)
	}
	if got := r.texts(); len(got) != 0 {
		t.Fatalf("after delete: %q", got)
	}
	// An edit of a reply never seen is posted as new; a delete of one is done already.
	if err := r.deliver(t, r.event(bridge.MessageDeleted, "3.0", "")); err != nil {
		t.Fatal(err)
	}
	if err := r.deliver(t, r.event(bridge.MessageUpdated, "4.0", "edited before we saw it")); err != nil {
		t.Fatal(err)
	}
	if got := r.texts(); len(got) != 1 {
		t.Fatalf("after an unseen edit: %q", got)
	}
}

// TestErrorsAreClassified: a 401 gets a fresh token at once; 5xx is retried; 4xx and an
// oversized message are permanent with the reason; refused credentials are permanent and
// never show the secret.
func TestErrorsAreClassified(t *testing.T) {
	r := newRig(t, "integration-secret")
	if err := r.deliver(t, r.event(bridge.MessageCreated, "1.0", "warm the token")); err != nil {
		t.Fatal(err)
	}
	tokens := r.sim.Stats().TokenRequests
	r.sim.FailREST(1, 401)
	if err := r.deliver(t, r.event(bridge.MessageCreated, "2.0", "after a 401")); err != nil {
		t.Fatalf("after one 401: %v", err)
	}
	if n := r.sim.Stats().TokenRequests - tokens; n != 1 {
		t.Errorf("%d token requests after a 401, want 1", n)
	}

	r.sim.FailREST(1, 503)
	err := r.deliver(t, r.event(bridge.MessageCreated, "3.0", "x"))
	if err == nil || bridge.IsPermanent(err) {
		t.Errorf("503: %v, want a retryable error", err)
	}
	r.sim.FailREST(1, 429)
	if err := r.deliver(t, r.event(bridge.MessageCreated, "3.0", "x")); err == nil {
		t.Error("429: nil error")
	} else if _, ok := bridge.RetryAfterOf(err); !ok {
		t.Errorf("429: %v, want a retry-after", err)
	}

	gone := r.event(bridge.MessageCreated, "5.0", "x")
	gone.Discussion.ID = "no-such-discussion"
	if err := r.deliver(t, gone); !bridge.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown discussion: %v, want permanent with the status", err)
	}
	if err := r.deliver(t, r.event(bridge.MessageCreated, "6.0", strings.Repeat("x", MaxText))); !bridge.IsPermanent(err) || !strings.Contains(err.Error(), "over the") {
		t.Errorf("oversized: %v, want permanent with the reason", err)
	}
	other := r.event(bridge.MessageCreated, "7.0", "x")
	other.Inbound = &bridge.Inbound{Kinetic: "elsewhere", Sink: "ops", Channel: "C1", TS: "7.0"}
	if err := r.deliver(t, other); !bridge.IsPermanent(err) {
		t.Errorf("unknown space: %v, want permanent", err)
	}

	bad := newRig(t, "wrong-secret-0000")
	err = bad.deliver(t, bad.event(bridge.MessageCreated, "1.0", "x"))
	if !bridge.IsPermanent(err) || strings.Contains(err.Error(), "wrong-secret-0000") {
		t.Errorf("refused credentials: %v, want permanent without the secret", err)
	}
	var h *httpError
	if errors.As(err, &h) {
		t.Errorf("refused credentials reported as an HTTP error of the API: %v", err)
	}
}

// TestReplyAuthor: a Slack sink's reply_author replaces the default line start for its
// replies only; a template that does not render is refused.
func TestReplyAuthor(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	s, err := New("kinetic", Config{Spaces: map[string]Space{"acme": {URL: sim.URL(), ClientID: "integration-user", ClientSecret: "integration-secret"}},
		Authors: map[string]string{"ops": "{{.Name}} via Slack — "}}, Options{KV: &memKV{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &rig{sim: sim, sink: s, disc: sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "T"}).ID}
	if err := r.deliver(t, r.event(bridge.MessageCreated, "1.0", "hi")); err != nil {
		t.Fatal(err)
	}
	other := r.event(bridge.MessageCreated, "2.0", "hello")
	other.Inbound.Sink = "elsewhere"
	if err := r.deliver(t, other); err != nil {
		t.Fatal(err)
	}
	want := []string{`Alice \*the\* \[admin\] via Slack — hi`, `**Alice \*the\* \[admin\] (Slack)**: hello`}
	if got := r.texts(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("texts = %q, want %q", got, want)
	}
	for _, bad := range []string{"{{.Nope}}", "{{.Name"} {
		if ValidateAuthor(bad) == nil {
			t.Errorf("ValidateAuthor(%q) = nil", bad)
		}
	}
}
