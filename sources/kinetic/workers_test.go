package kinetic

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// At most timing.catchUps catch-ups run at once, and live events that arrive while a
// discussion's catch-up waits for its turn are handed over after it, in order, once.
func TestCatchUpsBounded(t *testing.T) {
	srv := newSim(t, kinetictest.Options{ListDelay: 20 * time.Millisecond})
	const discussions, perDiscussion, slots = 30, 5, 3
	var ids []string
	for i := range discussions {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) { tm.catchUps = slots })
	// Posted once the server has the subscriptions, while most catch-ups still wait for a
	// slot (30 × 20 ms in 3 slots is ~200 ms): news, some of it live, some caught up.
	eventually(t, "the subscriptions", func() bool { return srv.Stats().Subscriptions == discussions })
	want := make([][]string, discussions)
	var wg sync.WaitGroup
	for d := range discussions {
		wg.Go(func() { want[d] = post(t, srv, ids[d], "m", perDiscussion) })
	}
	wg.Wait()
	for d, id := range ids {
		h.waitMessages(id, len(want[d]))
	}
	h.waitReady()
	evs := h.rec.all()
	for d, id := range ids {
		exactlyOnce(t, evs, id, want[d])
	}
	st := srv.Stats()
	if st.MaxListings > slots || st.MaxListings < 2 {
		t.Errorf("at most %d message listings at once, want 2..%d", st.MaxListings, slots)
	}
}

// A catch-up waiting for a slot stops when its discussion is no longer wanted, and Run
// stops while catch-ups wait (goleak, in TestMain, checks that nothing is left behind).
func TestWaitingCatchUpStopsOnRemoval(t *testing.T) {
	srv := newSim(t, kinetictest.Options{ListDelay: 100 * time.Millisecond})
	const discussions = 10
	var ids []string
	for i := range discussions {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) { tm.catchUps = 1 })
	eventually(t, "the first listing", func() bool { return srv.Stats().MaxListings > 0 })
	// Nine catch-ups wait behind one slot (~1 s of listings); keep one discussion only.
	h.src.SetDiscussions(ids[:1])
	requests := srv.Stats().RESTRequests
	h.waitReady()
	// The kept discussion's catch-up (a title and a listing, and at worst a retry) and
	// nothing of the nine removed ones, which would be two requests each.
	if n := srv.Stats().RESTRequests - requests; n > 4 {
		t.Errorf("%d REST requests after the removal: removed discussions' catch-ups still ran", n)
	}
	h.src.SetDiscussions(ids)
	eventually(t, "the discussions wanted again", func() bool {
		st := h.src.Status()
		return len(st.Discussions) == discussions && st.Discussions[discussions-1].State == StateSubscribed
	})
	h.stop() // with catch-ups waiting again
}

// A quiet discussion has no goroutine: after its catch-up, its worker's goroutine ends, and
// the next live event starts one again.
func TestIdleWorkersHaveNoGoroutine(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	const discussions = 200
	var ids []string
	for i := range discussions {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	before := runtime.NumGoroutine()
	h := start(t, srv, ids)
	h.waitReady()
	// Run, the connection, discovery-free background work and idle HTTP connections (on
	// both sides of the loopback) stay; one goroutine per discussion would be 200 more.
	eventually(t, "idle workers to end", func() bool { return runtime.NumGoroutine()-before < discussions/4 })
	// Start-up's catch-ups are over: their memory goes back to the OS, once.
	eventually(t, "start-up memory returned", func() bool { return h.src.returned.Load() })
	for _, id := range ids[:3] {
		want := post(t, srv, id, "after-idle", 2)
		exactlyOnce(t, h.waitMessages(id, 2), id, want)
	}
	eventually(t, "idle workers to end again", func() bool { return runtime.NumGoroutine()-before < discussions/4 })
}
