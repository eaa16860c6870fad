package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// BenchmarkDeliver is one delivery attempt end to end over loopback: request, signature, a
// 204 from the receiver, classification. The envelope is shared, as between the deliveries
// of one event to several targets, so the figure is the per-target cost.
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := newSink(b, webhook.Config{URL: srv.URL, Secret: secrets(newSecret(b, 32))}, webhook.Options{})
	d := bridge.Delivery{Event: messageEvent(), Target: bridge.Target{Route: "r", Sink: "hook"}, Attempt: 1, Shared: new(bridge.Shared)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Deliver(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}
