package kinetic

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// A burst faster than the source hands events over makes the simulator close the connection
// as a slow consumer (as a real server may); the reconnect's catch-up must bring back every
// message posted in the burst, in order — also those posted between the first subscribe and
// the first catch-up, which a first start once took for history (found by the 100,000-event
// backlog measurement: whole tails of discussions were lost).
func TestBurstThroughSlowConsumerDisconnect(t *testing.T) {
	srv := newSim(t, kinetictest.Options{SendBuffer: 256})
	const discussions, total = 100, 10000
	var ids []string
	for i := range discussions {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) { c.PageSize = 100 })
	// A slow emitter, as a store with fsync is: the burst outruns it.
	// Set under the recorder's lock: the first catch-ups may already be emitting.
	h.rec.mu.Lock()
	h.rec.reject = func(bridge.Event) error { time.Sleep(20 * time.Microsecond); return nil }
	h.rec.mu.Unlock()
	// Post as soon as the server has the subscriptions, before the first catch-ups have run:
	// a first start's "now" is the subscription, so these are news, not history.
	eventually(t, "the subscriptions", func() bool { return srv.Stats().Subscriptions == discussions })
	want := make([][]string, discussions)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < total; i += 4 {
				d := i % discussions
				m, err := srv.PostMessage(ids[d], kinetictest.Alice, fmt.Sprint("m", i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[d] = append(want[d], m.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for d, id := range ids {
		for {
			got, _ := h.rec.userMessages(id)
			if len(got) >= len(want[d]) {
				break
			}
			if time.Now().After(deadline) {
				have := map[string]bool{}
				for _, e := range got {
					have[e.Message.ID] = true
				}
				var missing []int
				for i, m := range srvOrder(srv, id, nil) {
					if !have[m] {
						missing = append(missing, i)
					}
				}
				t.Logf("discussion %s misses positions %v; its log:\n%s", id, missing, strings.Join(h.logs.lines(id), "\n"))
				t.Fatalf("discussion %d: %d of %d messages after 60s (connections %d)", d, len(got), len(want[d]), srv.Stats().ConnectionsTotal)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	evs := h.rec.all()
	for d, id := range ids {
		exactlyOnce(t, evs, id, srvOrder(srv, id, want[d]))
	}
	t.Logf("connections: %d, slow consumers closed: %d", srv.Stats().ConnectionsTotal, srv.Stats().SlowConsumers)
}

// srvOrder is the server's order of the message ids (concurrent posters append to want in
// their own order).
func srvOrder(srv *kinetictest.Server, discussion string, want []string) []string {
	var out []string
	for _, m := range srv.Messages(discussion) {
		if m.Type == kinetictest.MessageTypeUser {
			out = append(out, m.ID)
		}
	}
	return out
}
