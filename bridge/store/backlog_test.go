package store

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// A long sink outage must cost disk, not memory: the store holds no per-delivery state in
// the heap, so appending a large backlog and draining it leaves the heap where it was.
func TestBacklogMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("appends and drains 100,000 deliveries")
	}
	const (
		total = 100_000
		batch = 500
		discs = 48      // a multiple of appenders
		slack = 4 << 20 // a few MB of noise: GC timing, pools, bbolt's per-tx structures
	)
	ctx := context.Background()
	s := openT(t, t.TempDir(), Options{})
	before := heapInUse()
	start := time.Now()

	// A few sources append at once, each owning some discussions, as the daemon's would:
	// encoding overlaps with commits, and each discussion's events are appended in order.
	const appenders = 4
	var wg sync.WaitGroup
	appendErrs := make(chan error, appenders)
	for a := range appenders {
		wg.Go(func() {
			recs := make([]bridge.Record, 0, batch)
			for i := range total / appenders {
				// Appender a owns the discussions d ≡ a (mod appenders).
				d := a + appenders*(i%(discs/appenders))
				n := i / (discs / appenders)
				recs = append(recs, rec(ev("d"+strconv.Itoa(d), n), tgt("hook")))
				if len(recs) == batch || i == total/appenders-1 {
					got, err := s.Append(ctx, recs)
					if err == nil && len(got) != len(recs) {
						err = fmt.Errorf("stored %d of %d", len(got), len(recs))
					}
					if err != nil {
						appendErrs <- err
						return
					}
					recs = recs[:0]
				}
			}
		})
	}
	wg.Wait()
	close(appendErrs)
	for err := range appendErrs {
		t.Fatal(err)
	}
	appended := heapInUse()
	t.Logf("appended %d in %s; heap in use %d KiB before, %d KiB after", total, time.Since(start).Round(time.Millisecond), before>>10, appended>>10)
	if appended > before+slack {
		t.Fatalf("heap grew by %d KiB with a backlog of %d deliveries", (appended-before)>>10, total)
	}

	qs, err := s.Queues(ctx)
	if err != nil || len(qs) != discs {
		t.Fatalf("Queues = %d queues, %v; want %d", len(qs), err, discs)
	}
	// Drain like the dispatcher does, concurrently across discussions and in order within
	// each, so that the workers' Done calls share commits.
	start = time.Now()
	var delivered atomic.Int64
	work := make(chan bridge.Queue, len(qs))
	for _, q := range qs {
		work <- q
	}
	close(work)
	errs := make(chan error, discs)
	for range discs {
		wg.Go(func() {
			for q := range work {
				if err := drainInOrder(ctx, s, q, &delivered); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	drained := heapInUse()
	t.Logf("drained %d in %s; heap in use %d KiB", delivered.Load(), time.Since(start).Round(time.Millisecond), drained>>10)
	if delivered.Load() != total {
		t.Fatalf("delivered %d, want %d", delivered.Load(), total)
	}
	if drained > before+slack {
		t.Fatalf("heap grew by %d KiB over append and drain", (drained-before)>>10)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d event bodies left after the drain", n)
	}
}

// drainInOrder delivers q to the end, checking that its messages come in append order.
func drainInOrder(ctx context.Context, s *Bolt, q bridge.Queue, delivered *atomic.Int64) error {
	next := 0
	for {
		p, ok, err := s.Head(ctx, q)
		if err != nil || !ok {
			return err
		}
		if p.Event.Message.Text != strconv.Itoa(next) {
			return &orderError{q: q, got: p.Event.Message.Text, want: next}
		}
		next++
		if err := s.Done(ctx, p); err != nil {
			return err
		}
		delivered.Add(1)
	}
}

type orderError struct {
	q    bridge.Queue
	got  string
	want int
}

func (e *orderError) Error() string {
	return "queue " + e.q.Discussion + ": got message " + e.got + ", want " + strconv.Itoa(e.want)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
