package slack

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

const testToken = "xoxb-1111-2222-SeCrEtToKeNvAlUe"

// newFake starts a slacktest server with three channels (the private one on the second page
// of conversations.list) and stops it at cleanup.
func newFake(t *testing.T) *slacktest.Server {
	t.Helper()
	f := slacktest.NewServer(slacktest.Options{
		Token:    testToken,
		PageSize: 2,
		Channels: []slacktest.Channel{
			{ID: "C0000OPS1", Name: "ops"}, {ID: "C0000DEV2", Name: "dev"}, {ID: "G0000SEC3", Name: "secret-room", Private: true},
		},
	})
	t.Cleanup(f.Close)
	return f
}

// memKV is an in-memory KV.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(_ context.Context, ns, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[ns+"|"+key]
	return slices.Clone(v), ok, nil
}

func (k *memKV) Put(_ context.Context, ns, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[ns+"|"+key] = slices.Clone(v)
	return nil
}

// baseConfig is a configuration against the fake with a rate high enough not to matter.
func baseConfig(f *slacktest.Server) Config {
	return Config{Token: config.Secret(f.Token()), Channel: "C0000OPS1", APIURL: f.URL(), Rate: 1000, Burst: 1000,
		Timeout: config.Duration(10 * time.Second)}
}

func newSink(t *testing.T, cfg Config, kv KV) *Sink {
	t.Helper()
	return newSinkWith(t, cfg, Options{KV: kv})
}

func newSinkWith(t *testing.T, cfg Config, opts Options) *Sink {
	t.Helper()
	s, err := New("ops-slack", cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// event builds a message event; text may be "" for deletes.
func event(typ, discussion, id, parent, text string) bridge.Event {
	raw, _ := json.Marshal(text)
	return bridge.Event{
		ID:         bridge.EventID("acme", discussion, id, "", typ),
		Type:       typ,
		Source:     "acme",
		Discussion: bridge.Discussion{ID: discussion, Title: "Incident " + discussion, URL: "https://acme.kinops.io/#/discussions/" + discussion},
		Message: &bridge.Message{ID: id, ParentID: parent, Kind: bridge.KindUser, Text: text,
			Content: []bridge.Token{{Type: "text", Value: raw}},
			Author:  bridge.User{Username: "alice", DisplayName: "Alice Doe", Email: "Alice@Example.com"}},
	}
}

func deliver(t *testing.T, s *Sink, e bridge.Event, channel string) {
	t.Helper()
	deliverRoute(t, s, e, "r", channel)
}

func deliverRoute(t *testing.T, s *Sink, e bridge.Event, route, channel string) {
	t.Helper()
	if err := s.Deliver(context.Background(), bridge.Delivery{Event: e, Target: bridge.Target{Route: route, Sink: s.Name(), Channel: channel}, Attempt: 1}); err != nil {
		t.Fatalf("deliver %s %s: %v", e.Type, e.Message.ID, err)
	}
}
