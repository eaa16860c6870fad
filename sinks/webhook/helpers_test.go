package webhook_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// newSecret makes a fresh Standard Webhooks secret of n random bytes.
func newSecret(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// request is what a test receiver saw.
type request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// receiver is a loopback HTTP server that records requests and answers with respond.
func receiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, <-chan request) {
	t.Helper()
	got := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case got <- request{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: body}:
		default:
			t.Error("receiver: too many requests")
		}
		if respond != nil {
			respond(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// next returns the next recorded request, failing the test if none arrives in time.
func next(t *testing.T, got <-chan request) request {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the receiver")
		return request{}
	}
}

func newSink(t testing.TB, cfg webhook.Config, opts webhook.Options) *webhook.Sink {
	t.Helper()
	s, err := webhook.New("hook", cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// messageEvent is a message with everything that breaks naive JSON: quotes, backslashes,
// newlines, unicode and Slack-style mention syntax.
func messageEvent() bridge.Event {
	at := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	return bridge.Event{
		ID:         bridge.EventID("acme", "d1", "m1", "v1", bridge.MessageCreated),
		Type:       bridge.MessageCreated,
		Source:     "acme",
		Time:       at,
		Discussion: bridge.Discussion{ID: "d1", Title: `Incident "42" — DB`, URL: "https://acme.kinops.io/d/d1"},
		Message: &bridge.Message{
			ID: "m1", VersionID: "v1", Kind: bridge.KindUser,
			Text:   "DB is \"down\" \\ again\n<!channel> @everyone ünïcödé 🚨",
			Author: bridge.User{Username: "alice", DisplayName: `Alice "Ops"`},
		},
	}
}

func deliver(t testing.TB, s *webhook.Sink, e bridge.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Deliver(ctx, bridge.Delivery{Event: e, Target: bridge.Target{Route: "r", Sink: "hook"}, Attempt: 1})
}

func secrets(s ...string) config.Secrets {
	out := make(config.Secrets, len(s))
	for i := range s {
		out[i] = config.Secret(s[i])
	}
	return out
}

func mustEnvelope(t testing.TB, e bridge.Event) []byte {
	t.Helper()
	b, err := bridge.MarshalEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
