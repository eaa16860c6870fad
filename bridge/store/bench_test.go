package store

// Figures from `go test -run '^$' -bench . -count=3` (medians) on a shared 2-vCPU VM whose
// fsync takes ~0.1ms; bbolt needs two per commit. They decided the design of commit.go and
// Done:
//
//	                         committer,     committer,     bbolt DB.Batch
//	                         async Done     sync Done      (10ms delay)
//	Append batch=1           1,960 ev/s     2,590 ev/s         92 ev/s
//	Append batch=64         22,100 ev/s    30,300 ev/s      4,940 ev/s
//	Append batch=512        32,300 ev/s    49,800 ev/s     21,000 ev/s
//	Append batch=1, 8 wr.    6,010 ev/s     6,300 ev/s        690 ev/s
//	Done, 1 worker         431,000 /s       2,960 /s           91 /s
//	Done, 8 workers        113,000 /s       8,270 /s          710 /s
//	Head+Done, 1 worker     52,500 /s       2,590 /s           91 /s
//	Head+Done, 4 workers    52,500 /s       4,010 /s          360 /s
//
// The two committer columns run the same Append code; their difference is the noise of the
// machine between runs.

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
)

// BenchmarkAppend measures the group commit from one writer at a time: each op is one
// Append call of the given batch size; events/s is the figure that matters.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 64, 512} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{})
			n := 0
			recs := make([]bridge.Record, size)
			for b.Loop() {
				for i := range recs {
					recs[i] = rec(ev("d"+strconv.Itoa(n%16), n), tgt("hook"))
					n++
				}
				if _, err := s.Append(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
	// Eight sources emitting one event at a time: their Appends share commits.
	b.Run("batch=1/writers=8", func(b *testing.B) {
		s := openT(b, b.TempDir(), Options{})
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < b.N; i += 8 {
					n.Add(1)
					if _, err := s.Append(context.Background(), []bridge.Record{rec(ev("d"+strconv.Itoa(w), i), tgt("hook"))}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkDone measures marking deliveries done, from one worker and from eight workers on
// eight queues (a sink's workers), up to the commit of the last one. The queues are filled
// before the timer starts.
func BenchmarkDone(b *testing.B) {
	for _, workers := range []int{1, 8} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{})
			ps := fill(b, s, b.N, workers)
			b.ResetTimer()
			done := make(chan error, workers)
			for w := range workers {
				go func() {
					for _, p := range ps[w] {
						if err := s.Done(context.Background(), p); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
			}
			for range workers {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			flush(b, s)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dones/s")
		})
	}
}

// fill appends n events spread over queues queues and returns each queue's pending
// deliveries, in order.
func fill(b testing.TB, s *Bolt, n, queues int) [][]bridge.Pending {
	ps := make([][]bridge.Pending, queues)
	var recs []bridge.Record
	for i := range n {
		recs = append(recs, rec(ev("d"+strconv.Itoa(i%queues), i), tgt("hook")))
		if len(recs) == 512 || i == n-1 {
			mustAppend(b, s, recs...)
			recs = recs[:0]
		}
	}
	for q := range queues {
		queue := bridge.Queue{Target: tgt("hook"), Discussion: "d" + strconv.Itoa(q)}
		// Sequence numbers are the append order, so they can be computed without reading.
		for i := q; i < n; i += queues {
			ps[q] = append(ps[q], bridge.Pending{Seq: uint64(i + 1), Queue: queue})
		}
	}
	return ps
}

// BenchmarkDrain measures the dispatcher's loop without a sink: Head, then Done, by workers
// that each own queues, until the last Done is committed.
func BenchmarkDrain(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{})
			fill(b, s, b.N, workers)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				q := bridge.Queue{Target: tgt("hook"), Discussion: "d" + strconv.Itoa(w)}
				wg.Go(func() {
					for {
						p, ok, err := s.Head(context.Background(), q)
						if err != nil || !ok {
							return
						}
						if err := s.Done(context.Background(), p); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			flush(b, s)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkBurstShape is the store's share of the bench's burst: each op appends a group of
// 64 events with hash IDs (as bridge.EventID makes them) across 200 discussions, one target
// each, and delivers 64 others (Head, then Done, from the queues in turn), as the workers
// would, keeping about 2,000 pending. The store starts with 20,000 delivered events whose
// IDs are still kept for de-duplication.
func BenchmarkBurstShape(b *testing.B) {
	const group, discussions, backlog = 64, 200, 2048
	s := openT(b, b.TempDir(), Options{})
	n, turn := 0, 0
	appendGroup := func() {
		recs := make([]bridge.Record, group)
		for i := range recs {
			e := ev("d"+strconv.Itoa(n%discussions), n)
			e.ID = bridge.EventID("bench", e.Discussion.ID, strconv.Itoa(n), "1", "Created")
			recs[i] = rec(e, tgt("hook"))
			n++
		}
		mustAppend(b, s, recs...)
	}
	deliverGroup := func() {
		for range group {
			q := bridge.Queue{Target: tgt("hook"), Discussion: "d" + strconv.Itoa(turn%discussions)}
			turn++
			if p, ok := mustHead(b, s, q); ok {
				mustDone(b, s, p)
			}
		}
	}
	for range 20000 / group {
		appendGroup()
		deliverGroup()
	}
	for range backlog / group {
		appendGroup()
	}
	flush(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		appendGroup()
		deliverGroup()
	}
	flush(b, s)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*group), "µs/event")
}
