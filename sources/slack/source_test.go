package slack

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	slacksink "github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

// memKV is an in-memory KV shared by the real Slack sink (which writes the message map)
// and the source (which reads it).
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

// collector is an Emitter that keeps what it is given, failing while fail is set.
type collector struct {
	mu     sync.Mutex
	events []bridge.Event
	fail   bool
}

func (c *collector) Emit(_ context.Context, es ...bridge.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return errors.New("the store is full")
	}
	c.events = append(c.events, es...)
	return nil
}

func (c *collector) got() []bridge.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bridge.Event(nil), c.events...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSourceAcksOnlyStoredEvents: with the real Slack sink mirroring a Kinetic message, a
// reply typed in its thread becomes an inbound event; while the store fails nothing is
// acknowledged and Run stops, and the next Run gets the envelope again; a bad app token is
// permanent.
func TestSourceAcksOnlyStoredEvents(t *testing.T) {
	fake := slacktest.NewServer(slacktest.Options{Channels: []slacktest.Channel{{ID: "C0OPS0001", Name: "ops"}},
		Users: []slacktest.User{{ID: "U1", Email: "a@x.example", Name: "Alice"}}})
	defer fake.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	kv := &memKV{}
	sink, err := slacksink.New("ops", slacksink.Config{Token: config.Secret(fake.Token()), APIURL: fake.URL(), Channel: "C0OPS0001"},
		slacksink.Options{KV: kv, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kev := bridge.Event{ID: "e1", Type: bridge.MessageCreated, Source: "acme", Discussion: bridge.Discussion{ID: "d1", Title: "T"},
		Message: &bridge.Message{ID: "m1", Kind: bridge.KindUser, Text: "hello", Author: bridge.User{Username: "bob"}}}
	if err := sink.Deliver(ctx, bridge.Delivery{Event: kev, Target: bridge.Target{Route: "r", Sink: "ops"}, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	parent := fake.Messages("C0OPS0001")[0].TS

	src, err := New(Config{Sink: "ops", Token: config.Secret(fake.Token()), AppToken: config.Secret(fake.AppToken()),
		APIURL: fake.URL(), Routes: []string{"r"}}, Options{KV: kv, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	emit := &collector{fail: true}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx, emit) }()
	waitFor(t, "a connection", func() bool { return fake.SocketStats().Connections == 1 })
	ts := fake.UserPosts("C0OPS0001", parent, "U1", "on it")
	select {
	case err := <-done:
		if err == nil || bridge.IsPermanent(err) {
			t.Fatalf("Run with a failing store = %v, want a retryable error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop on a failing store")
	}
	if st := fake.SocketStats(); st.Pending == 0 {
		t.Fatalf("an envelope was acknowledged without being stored: %+v", st)
	}
	emit.fail = false
	go func() { done <- src.Run(runCtx, emit) }()
	waitFor(t, "the reply emitted and every envelope acknowledged", func() bool {
		return len(emit.got()) == 1 && fake.SocketStats().Pending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v", err)
	}
	e := emit.got()[0]
	if e.Type != bridge.MessageCreated || e.Source != "slack:ops" || e.Discussion.ID != "d1" || e.Message.Text != "on it" ||
		e.Message.Author.DisplayName != "Alice" || e.Inbound == nil || e.Inbound.Kinetic != "acme" || e.Inbound.TS != ts ||
		e.Message.ParentID != "" {
		t.Errorf("event = %+v (message %+v, inbound %+v)", e, e.Message, e.Inbound)
	}
	st := src.Status()
	if st.Events[OutcomeBridged] != 1 || st.Events[OutcomeOwn] != 0 || st.Connects != 2 {
		t.Errorf("status = %+v", st)
	}

	bad, err := New(Config{Sink: "ops", Token: config.Secret(fake.Token()), AppToken: "xapp-1-wrong", APIURL: fake.URL(), Routes: []string{"r"}},
		Options{KV: kv, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Run(ctx, emit); !bridge.IsPermanent(err) || bad.Status().State != StateStopped {
		t.Errorf("a wrong app token: %v (state %s), want permanent", err, bad.Status().State)
	}
}
