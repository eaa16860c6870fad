package store

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
)

// Writers and delivery workers share the store: every event is delivered once, in order per
// queue, while appends, dones, attempts and dedupe hits interleave (run with -race).
func TestConcurrentAppendAndDone(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir(), Options{})
	const (
		writers   = 4
		perWriter = 300
		batch     = 7
	)
	targets := []bridge.Target{tgt("a"), tgt("b")}
	var wg sync.WaitGroup
	var stored atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 1024)

	// wake[w] tells the workers of discussion w that it has new work, as the dispatcher's
	// notify does; buffered so that a wake-up sent while a worker is busy is not lost.
	wake := make([][]chan struct{}, writers)
	for w := range wake {
		for range targets {
			wake[w] = append(wake[w], make(chan struct{}, 1))
		}
	}

	// Each writer owns a discussion; it appends every batch twice (the second time from a
	// racing goroutine of its own) so that dedupe runs under contention.
	for w := range writers {
		disc := "d" + strconv.Itoa(w)
		wg.Go(func() {
			for i := 0; i < perWriter; i += batch {
				var recs []bridge.Record
				for j := i; j < min(i+batch, perWriter); j++ {
					recs = append(recs, rec(ev(disc, j), targets...))
				}
				var inner sync.WaitGroup
				for range 2 {
					inner.Go(func() {
						got, err := s.Append(ctx, recs)
						if err != nil {
							errs <- err
						}
						stored.Add(int64(len(got)))
					})
				}
				inner.Wait()
				for _, c := range wake[w] {
					select {
					case c <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	// One worker per (target, discussion) queue, as the dispatcher guarantees.
	var delivered atomic.Int64
	var workers sync.WaitGroup
	for ti, target := range targets {
		for w := range writers {
			q := bridge.Queue{Target: target, Discussion: "d" + strconv.Itoa(w)}
			workers.Go(func() {
				next := 0
				stopping := false
				for {
					p, ok, err := s.Head(ctx, q)
					if err != nil {
						errs <- err
						return
					}
					if !ok {
						if stopping {
							return // the writers are done and the queue is empty
						}
						select {
						case <-wake[w][ti]:
						case <-stop:
							stopping = true
						}
						continue
					}
					if p.Event.Message.Text != strconv.Itoa(next) {
						errs <- &orderError{q: q, got: p.Event.Message.Text, want: next}
						return
					}
					if next%10 == 3 && p.Attempts == 0 {
						p.Attempts, p.LastError = 1, "flaky"
						if err := s.Attempted(ctx, p); err != nil {
							errs <- err
							return
						}
						continue
					}
					next++
					if err := s.Done(ctx, p); err != nil {
						errs <- err
						return
					}
					delivered.Add(1)
				}
			})
		}
	}
	wg.Wait()
	close(stop)
	workers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if stored.Load() != writers*perWriter {
		t.Fatalf("Append stored %d events, want %d (each once)", stored.Load(), writers*perWriter)
	}
	if want := int64(writers * perWriter * len(targets)); delivered.Load() != want {
		t.Fatalf("delivered %d, want %d", delivered.Load(), want)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d event bodies left", n)
	}
}
