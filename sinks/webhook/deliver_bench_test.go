package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
	benchDeliveries(b, newSink(b, webhook.Config{URL: srv.URL, Secret: secrets(newSecret(b, 32))}, webhook.Options{}))
}

// BenchmarkDeliverNetHTTP is BenchmarkDeliver through net/http's transport (the path a lent
// Options.Client takes, and the sink's own before the tenth round): the baseline for the
// sink's own client, measured in the same run. Both figures include the receiver's work.
func BenchmarkDeliverNetHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	benchDeliveries(b, newSink(b, webhook.Config{URL: srv.URL, Secret: secrets(newSecret(b, 32))}, webhook.Options{Client: &http.Client{Transport: tr}}))
}

// BenchmarkDeliverSinkOnly is the sink's own work around one delivery — envelope, signature,
// request, the answer's classification — with a transport that answers 204 at once: what a
// delivery costs beyond the HTTP exchange itself.
func BenchmarkDeliverSinkOnly(b *testing.B) {
	benchDeliveries(b, newSink(b, webhook.Config{URL: "http://127.0.0.1:9/hook", Secret: secrets(newSecret(b, 32))},
		webhook.Options{Client: &http.Client{Transport: answerAtOnce{}}}))
}

// benchDeliveries delivers the same message event through s, its envelope shared.
func benchDeliveries(b *testing.B, s *webhook.Sink) {
	d := bridge.Delivery{Event: messageEvent(), Target: bridge.Target{Route: "r", Sink: "hook"}, Attempt: 1, Shared: new(bridge.Shared)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Deliver(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}

// answerAtOnce reads the request's body and answers 204 No Content.
type answerAtOnce struct{}

func (answerAtOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	_, err := io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}
