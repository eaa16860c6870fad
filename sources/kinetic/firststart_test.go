package kinetic

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// Issue 16.3: a first start replays no history. Its "now" is on the space's clock (read
// from the token), so messages posted a few seconds before it are history whatever the skew
// between our clock and the space's, and those posted after it are all delivered.
func TestFirstStartOnSpaceClock(t *testing.T) {
	for _, skew := range []time.Duration{0, 10 * time.Minute, -10 * time.Minute} {
		t.Run(fmt.Sprint("space clock ", skew), func(t *testing.T) {
			var offset atomic.Int64
			srv := newSim(t, kinetictest.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
			d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
			// History, stamped 5 s before now on the space's clock: inside the old 30 s margin.
			offset.Store(int64(skew - 5*time.Second))
			post(t, srv, d.ID, "history", 3)
			offset.Store(int64(skew))

			h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
				tm.serverClock, tm.clockMargin, tm.startSkew = true, 2*time.Second, 30*time.Second
			})
			h.waitReady()
			fresh := post(t, srv, d.ID, "new", 2)
			got := messageIDs(h.waitMessages(d.ID, 2))
			if !slices.Equal(got, fresh) {
				t.Errorf("first start emitted %v, want only the messages posted after it, %v", got, fresh)
			}
			if off, ok := h.src.tokens.clockOffset(); !ok || (off-skew).Abs() > 2*time.Second {
				t.Errorf("clock offset %s (known %t), want about %s", off, ok, skew)
			}
		})
	}
}

// A first start that ends before its first catch-up (a process killed, a leader losing the
// lead) leaves a mark: the next start catches those discussions up from the first one's
// "now", not its own, so what was posted in between is delivered. Once every discussion has
// a checkpoint the mark is cleared, and a discussion added later starts from its own "now".
func TestFirstStartInterruptedResumesFromTheMark(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d1 := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "one"})
	d2 := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "two"})
	post(t, srv, d1.ID, "history", 2)
	cps := &MemoryCheckpoints{}
	withCPs := func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps }

	// The first start subscribes, but no catch-up can read the REST API: no discussion gets
	// a checkpoint before it stops.
	srv.FailREST(1<<30, 503)
	h1 := start(t, srv, []string{d1.ID, d2.ID}, withCPs)
	eventually(t, "both subscribes", func() bool { return srv.Stats().Subscribes >= 2 })
	mark, ok, _ := cps.Checkpoint(t.Context(), "acme", firstsKey)
	if !ok || mark.CreatedAt.IsZero() {
		t.Fatalf("no first-start mark stored before the subscribes: %+v (found %t)", mark, ok)
	}
	during1 := post(t, srv, d1.ID, "during", 3)
	during2 := post(t, srv, d2.ID, "during", 2)
	time.Sleep(50 * time.Millisecond) // let the live events reach the source, which must not emit them
	h1.stop()
	if got, _ := h1.rec.userMessages(d1.ID); len(got) != 0 {
		t.Fatalf("the first start emitted %d messages without a catch-up", len(got))
	}
	for _, id := range []string{d1.ID, d2.ID} {
		if _, ok, _ := cps.Checkpoint(t.Context(), "acme", id); ok {
			t.Fatalf("discussion %s has a checkpoint after the first start", id)
		}
	}
	gap := post(t, srv, d1.ID, "gap", 2) // while nothing runs

	srv.FailREST(0, 0)
	h2 := start(t, srv, []string{d1.ID, d2.ID}, withCPs)
	h2.waitMessages(d1.ID, len(during1)+len(gap))
	h2.waitMessages(d2.ID, len(during2))
	h2.waitReady()
	exactlyOnce(t, h2.rec.all(), d1.ID, append(slices.Clone(during1), gap...))
	exactlyOnce(t, h2.rec.all(), d2.ID, during2)
	if !strings.Contains(h2.logs.String(), "an earlier start ended before every discussion had a checkpoint") {
		t.Errorf("the pending mark was not reported:\n%s", h2.logs.String())
	}
	eventually(t, "the mark cleared", func() bool {
		cp, ok, _ := cps.Checkpoint(t.Context(), "acme", firstsKey)
		return ok && cp.CreatedAt.IsZero()
	})
	h2.stop()

	// A discussion added afterwards is a first start of its own: its history stays history.
	d3 := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "three"})
	post(t, srv, d3.ID, "history", 2)
	h3 := start(t, srv, []string{d1.ID, d2.ID, d3.ID}, withCPs)
	h3.waitReady()
	fresh := post(t, srv, d3.ID, "new", 2)
	h3.waitMessages(d3.ID, len(fresh))
	h3.waitReady()
	exactlyOnce(t, h3.rec.all(), d3.ID, fresh)
	exactlyOnce(t, h3.rec.all(), d1.ID, nil)
}
