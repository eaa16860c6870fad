package console

import (
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// rates counts deliveries per sink over the last minute, in one-second buckets: memory is
// fixed per sink, and observe is a map lookup and an increment.
type rates struct {
	now   func() time.Time
	mu    sync.Mutex
	sinks map[string]*window
}

const buckets = 60

type window struct {
	sec       [buckets]int64 // the second each bucket counts
	delivered [buckets]int
	failed    [buckets]int
}

func newRates(now func() time.Time) *rates { return &rates{now: now, sinks: map[string]*window{}} }

func (r *rates) observe(o bridge.Outcome) {
	s := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.sinks[o.Delivery.Target.Sink]
	if w == nil {
		w = &window{}
		r.sinks[o.Delivery.Target.Sink] = w
	}
	i := s % buckets
	if w.sec[i] != s {
		w.sec[i], w.delivered[i], w.failed[i] = s, 0, 0
	}
	if o.Err == nil {
		w.delivered[i]++
	} else {
		w.failed[i]++
	}
}

// lastMinute returns a sink's deliveries and failed attempts of the last 60 seconds.
func (r *rates) lastMinute(sink string) (delivered, failed int) {
	s := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.sinks[sink]
	if w == nil {
		return 0, 0
	}
	for i := range buckets {
		if s-w.sec[i] < buckets {
			delivered += w.delivered[i]
			failed += w.failed[i]
		}
	}
	return delivered, failed
}
