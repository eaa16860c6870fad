package kinetic

import (
	"context"
	"strings"
	"testing"
	"time"
)

// queueWorker is a worker whose fleet has ended, so that queueing starts no goroutine: the
// queue alone is exercised.
func queueWorker(t testing.TB) *worker {
	s := &Source{t: defaultTiming()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.newWorker(&fleet{s: s, ctx: ctx, drained: make(chan struct{}, 1)}, "d1")
}

// A queued live event allocates nothing but its payload (made by the frame scanner, before
// the queue): queueing a batch's worth and taking it costs the queue's growth and the batch,
// not an allocation per event. Each event cost two (its decoded form and its lazy wrapper)
// before they were queued by value.
func TestLiveQueueAllocatesPerBatch(t *testing.T) {
	w := queueWorker(t)
	l := lazyEvent{name: "message:created", payload: []byte(`{"id":"m1"}`), received: time.Now()}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(20, func() {
		for range maxBatch {
			w.live(l)
		}
		if _, evs, ok := w.next(ctx); !ok || len(evs) != maxBatch {
			t.Fatalf("next took %d events (ok %v), want %d", len(evs), ok, maxBatch)
		}
	})
	if most := float64(maxBatch / 16); allocs > most {
		t.Errorf("%v allocations to queue and take %d live events, want at most %v", allocs, maxBatch, most)
	}
	if got, want := w.f.liveBytes.Load(), int64(21*maxBatch)*liveCost(&l); got != want {
		t.Errorf("live bytes %d after 21 batches queued (none released), want %d", got, want)
	}
}

// A queued live event keeps its name, payload and arrival through the queue, in order, and
// a catch-up between events splits the batches.
func TestLiveQueueKeepsEvents(t *testing.T) {
	w := queueWorker(t)
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ev := func(i int) lazyEvent {
		return lazyEvent{name: "message:created", payload: []byte(`{"id":"m` + strings.Repeat("x", i) + `"}`), received: at.Add(time.Duration(i))}
	}
	w.live(ev(1))
	w.live(ev(2))
	w.mu.Lock()
	w.queueCatchUpLocked()
	w.mu.Unlock()
	w.live(ev(3))
	ctx := context.Background()
	for _, want := range [][]int{{1, 2}, nil, {3}} {
		catchUp, evs, ok := w.next(ctx)
		if !ok || catchUp != (want == nil) || len(evs) != len(want) {
			t.Fatalf("next: catch-up %v, %d events, ok %v; want %v", catchUp, len(evs), ok, want)
		}
		for i, n := range want {
			if e := ev(n); evs[i].name != e.name || string(evs[i].payload) != string(e.payload) || !evs[i].received.Equal(e.received) {
				t.Errorf("event %d: %+v, want %+v", i, evs[i], e)
			}
		}
	}
	if w.queued() != 0 || w.pendingCatchUp() {
		t.Errorf("queue not empty: %d events, catch-up %v", w.queued(), w.pendingCatchUp())
	}
}

// BenchmarkLiveQueue queues a batch's worth of live events and takes them (the connection's
// goroutine and a worker's, without the locking contention).
func BenchmarkLiveQueue(b *testing.B) {
	w := queueWorker(b)
	l := lazyEvent{name: "message:created", payload: []byte(`{"id":"m1"}`), received: time.Now()}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for range maxBatch {
			w.live(l)
		}
		w.next(ctx)
		w.f.releaseLive(int64(maxBatch) * liveCost(&l))
	}
}
