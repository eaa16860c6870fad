package bridge_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
)

// benchSink delivers nowhere and says when it has had want deliveries.
type benchSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (s *benchSink) Name() string { return "noop" }

func (s *benchSink) Deliver(context.Context, bridge.Delivery) error {
	if s.n.Add(1) == s.want {
		close(s.done)
	}
	return nil
}

// BenchmarkDispatcher is the bridge's own path for one event: Emit (route, Append in a
// group commit, fsynced) then delivery to a sink that does nothing, Head and Done included,
// over 200 discussions. batch is how many events one Emit carries (the Kinetic source hands
// over up to 256 at a time when they queue up); events/s counts from the first Emit to the
// last delivery.
func BenchmarkDispatcher(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			st, err := store.Open(b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			sink := &benchSink{want: int64(b.N), done: make(chan struct{})}
			router := bridge.NewRouter([]bridge.RouteConfig{{Name: "all", To: []bridge.TargetConfig{{Sink: "noop"}}}}, nil)
			d := bridge.NewDispatcher(st, router, []bridge.SinkSpec{{Sink: sink, MaxInFlight: 8}}, bridge.DispatcherOptions{})
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			go func() { stopped <- d.Run(ctx) }()
			defer func() { cancel(); <-stopped }()

			evs := make([]bridge.Event, 0, batch)
			b.ResetTimer()
			for i := range b.N {
				disc := "d" + strconv.Itoa(i%200)
				id := "m" + strconv.Itoa(i)
				evs = append(evs, bridge.Event{
					ID: bridge.EventID("src", disc, id, "", bridge.MessageCreated), Type: bridge.MessageCreated, Source: "src",
					Time: time.Now(), Discussion: bridge.Discussion{ID: disc},
					Message: &bridge.Message{ID: id, Kind: bridge.KindUser, Text: "benchmark message " + id, Author: bridge.User{Username: "alice"}},
				})
				if len(evs) == batch || i == b.N-1 {
					if err := d.Emit(ctx, evs...); err != nil {
						b.Fatal(err)
					}
					evs = evs[:0]
				}
			}
			select {
			case <-sink.done:
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d delivered after a minute", sink.n.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
