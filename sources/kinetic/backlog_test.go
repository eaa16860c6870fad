package kinetic

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestReadingWaitsForQueuedEvents holds the emitter (a store that takes nothing) while
// 1,200 messages arrive in three discussions: the reader stops once liveHigh events wait, so
// the queues stay near that bound instead of taking in everything sent; nothing is dropped,
// and once the emitter takes events again every message comes through, in order.
func TestReadingWaitsForQueuedEvents(t *testing.T) {
	const high, low, perDiscussion = 40, 20, 400
	srv := newSim(t, kinetictest.Options{})
	var ids []string
	for range 3 {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"}).ID)
	}
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) {
		tm.liveHigh, tm.liveLow = high, low
		tm.emitFirst, tm.emitMax = 5*time.Millisecond, 20*time.Millisecond
	})
	h.waitReady()
	h.rec.setReject(func(bridge.Event) error { return errors.New("store unavailable") })
	want := map[string][]string{}
	for _, id := range ids {
		want[id] = post(t, srv, id, "m", perDiscussion)
	}
	queued := func() int {
		n := 0
		for _, d := range h.src.Status().Discussions {
			n += d.Queued
		}
		return n
	}
	// Reading stops at high; what was already read from the socket (the reader's channel
	// to the session, inboundCapacity frames) still reaches the queues.
	bound := high + inboundCapacity + 1
	eventually(t, "the queues to fill up to the bound", func() bool { return queued() >= high })
	for i := range 100 { // a second of watching: the queues must not keep growing
		if n := queued(); n > bound {
			t.Fatalf("%d live events queued after %d polls; reading should stop near %d (bound %d)", n, i, high, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := queued(); n >= 3*perDiscussion {
		t.Fatalf("everything was read into the queues (%d)", n)
	}
	h.rec.setReject(nil)
	for _, id := range ids {
		if got := messageIDs(h.waitMessages(id, perDiscussion)); !slices.Equal(got, want[id]) {
			t.Fatalf("discussion %s: got %d messages %v…, want %d in order", id, len(got), got[:min(len(got), 5)], len(want[id]))
		}
	}
	if d := h.src.Status().Dropped; d != 0 {
		t.Fatalf("%d events dropped", d)
	}
}
