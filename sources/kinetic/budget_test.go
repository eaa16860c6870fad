package kinetic

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// gate is an emitter that, while shut, holds every Emit until it is opened again, then
// passes it on.
type gate struct {
	next   bridge.Emitter
	mu     sync.Mutex
	open   chan struct{} // closed while the gate is open
	inside int           // Emit calls waiting at the gate
}

func newGate(next bridge.Emitter) *gate {
	g := &gate{next: next, open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) Emit(ctx context.Context, evs ...bridge.Event) error {
	g.mu.Lock()
	open := g.open
	g.inside++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inside--
		g.mu.Unlock()
	}()
	select {
	case <-open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.next.Emit(ctx, evs...)
}

func (g *gate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inside
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *gate) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
}

// waitSettled waits, after start-up, until the source has handed over what start-up brought
// (catch-ups, and the live events that subscribing causes, which may come after the source
// is ready): nothing queued or counted, and nothing emitted for 200 ms. A test that then
// shuts its emitter sees only its own messages take the emit slots.
func waitSettled(t *testing.T, h *harness) {
	t.Helper()
	last, since := uint64(0), time.Now()
	eventually(t, "start-up's events handed over", func() bool {
		st := h.src.Status()
		for _, d := range st.Discussions {
			if d.Queued > 0 {
				return false
			}
		}
		if st.Emitted != last || liveHeld(h) != 0 {
			last, since = st.Emitted, time.Now()
			return false
		}
		return time.Since(since) >= 200*time.Millisecond
	})
}

// liveHeld is the live budget's count of the current Run (see fleet.liveBytes).
func liveHeld(h *harness) int64 {
	ws := h.src.workers.Load()
	if ws == nil {
		return 0
	}
	for _, w := range *ws {
		return w.f.liveBytes.Load()
	}
	return 0
}

// While the store takes nothing (every emit slot waits at the gate), the source reads live
// events only up to its budget, and waits; once the store takes events again, every
// message arrives once, in order, and the budget's count goes back to zero — also for the
// events of a discussion removed while they waited.
func TestLiveBudgetPacesReading(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	const discussions, perDiscussion = 6, 60
	const budget = 8 << 10
	var ids []string
	for i := range discussions {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	h := build(t, srv, ids, func(c *Config, o *Options, tm *timing) {
		tm.emits = 2
		c.ReadAhead = budget
		tm.liveWaitMax = waitLimit // no trickle: the budget is a hard bound here
	})
	g := newGate(h.rec)
	h.emit = g
	h.run()
	h.waitReady()
	waitSettled(t, h)
	g.shut()
	before := len(h.rec.all())

	// The store is stuck first: one message of each of two discussions takes both emit
	// slots. Until then the source has no reason to wait.
	want := make([][]string, discussions)
	for d := range 2 {
		want[d] = post(t, srv, ids[d], "first", 1)
	}
	eventually(t, "both emit slots to be taken", func() bool { return g.waiting() == 2 })
	// A discussion removed while events are queued behind its Emit call lets them go.
	post(t, srv, ids[0], "queued", 3)
	eventually(t, "events queued", func() bool { return liveHeld(h) > 0 })
	h.src.SetDiscussions(ids[1:])
	eventually(t, "the removed discussion's events let go", func() bool { return liveHeld(h) == 0 })

	// Its slot came free: another discussion takes it. Then 300 more events of ~1 KiB,
	// while the store still takes nothing.
	want[2] = post(t, srv, ids[2], "first", 1)
	eventually(t, "both emit slots to be taken again", func() bool { return g.waiting() == 2 })
	var wg sync.WaitGroup
	for d := 1; d < discussions; d++ {
		wg.Go(func() { want[d] = append(want[d], post(t, srv, ids[d], "m", perDiscussion)...) })
	}
	wg.Wait()
	eventually(t, "reading to wait for the store", func() bool { return h.src.Status().LiveWaits > 0 })
	// The source holds at most the budget and the one event
	// it admitted last (the batches given decoding slots are let go of: at most one per slot).
	maxCost := int64(0)
	for range 20 {
		held := liveHeld(h)
		if held > budget+2<<10 {
			t.Fatalf("the source holds %d bytes of live events, budget %d", held, budget)
		}
		maxCost = max(maxCost, held)
		time.Sleep(5 * time.Millisecond) // samples over 100 ms: the bound holds while reading waits
	}
	if maxCost == 0 {
		t.Fatal("the budget's count is zero while events wait")
	}
	if n := len(h.rec.all()) - before; n != 0 {
		t.Fatalf("%d events emitted through a shut gate", n)
	}

	g.reopen()
	for d := 1; d < discussions; d++ {
		h.waitMessages(ids[d], len(want[d]))
	}
	evs := h.rec.all()
	for d := 1; d < discussions; d++ {
		exactlyOnce(t, evs, ids[d], want[d])
	}
	eventually(t, "the budget's count back to zero", func() bool { return liveHeld(h) == 0 })
}

// Live events dropped when a discussion's queue overflows are let go of the budget too.
func TestLiveBudgetAfterOverflow(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	id := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
	h := build(t, srv, []string{id}, func(c *Config, o *Options, tm *timing) {
		tm.emits = 1
		tm.queueCap = 5
	})
	g := newGate(h.rec)
	h.emit = g
	h.run()
	h.waitReady()
	waitSettled(t, h)
	g.shut()
	want := post(t, srv, id, "first", 1)
	eventually(t, "the emit slot to be taken", func() bool { return g.waiting() == 1 })
	want = append(want, post(t, srv, id, "m", 12)...)
	eventually(t, "the queue to overflow", func() bool { return h.src.Status().Dropped > 0 })
	if held, most := liveHeld(h), int64(5*(2<<10)); held > most {
		t.Fatalf("the source holds %d bytes of live events after the overflow; its queue holds at most 5 (~%d bytes)", held, most)
	}
	g.reopen()
	exactlyOnce(t, h.waitMessages(id, len(want)), id, want)
	eventually(t, "the budget's count back to zero", func() bool { return liveHeld(h) == 0 })
}
