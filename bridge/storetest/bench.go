package storetest

import (
	"strconv"
	"sync"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
)

// BenchAppend measures Append in batches of 1, 64 and 512 events with one target, as the
// sources make them, on a fresh store per sub-benchmark.
func BenchAppend(b *testing.B, open func(b *testing.B) bridge.Store) {
	for _, size := range []int{1, 64, 512} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			s := open(b)
			n := 0
			recs := make([]bridge.Record, size)
			for b.Loop() {
				for i := range recs {
					recs[i] = rec(Ev("d"+strconv.Itoa(n%16), n), tgt("hook"))
					n++
				}
				if _, err := s.Append(bg, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchHeadDone measures delivering a backlog: each worker drains its own queue with Head
// and Done, as the dispatcher's workers do (1 and 8 workers).
func BenchHeadDone(b *testing.B, open func(b *testing.B) bridge.Store) {
	for _, workers := range []int{1, 8} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			s := open(b)
			var recs []bridge.Record
			for i := range b.N {
				recs = append(recs, rec(Ev("d"+strconv.Itoa(i%workers), i), tgt("hook")))
				if len(recs) == 512 || i == b.N-1 {
					if _, err := s.Append(bg, recs); err != nil {
						b.Fatal(err)
					}
					recs = recs[:0]
				}
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				q := bridge.Queue{Target: tgt("hook"), Discussion: "d" + strconv.Itoa(w)}
				wg.Go(func() {
					for range b.N + 1 {
						p, ok, err := s.Head(bg, q)
						if err != nil {
							b.Error(err)
							return
						}
						if !ok {
							return
						}
						if err := s.Done(bg, p); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
