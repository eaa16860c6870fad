package kinetic

import "sync/atomic"

// Live events read from the Topic Hub wait in their discussions' queues until the emitter
// (the store) takes them. When the connection delivers faster than events can be made
// durable for long, every frame read ahead is heap: without a bound, a burst of 100,000
// messages would be read into memory whole. So the reader stops reading once liveHigh events
// wait, and goes on once they are down to liveLow: the rest waits in the socket's buffers
// and, past them, in the server's send queue (TCP flow control), where it would wait anyway.
// A stop lasts as long as the store needs for liveHigh-liveLow events (about a second).
//
// The bound is high enough not to engage in the bench's burst of 20,000: queues of a few
// events per discussion make the emitter's batches, and so the store's commits, smaller,
// which costs CPU per event (with 4,096, single runs on a busy machine showed the burst 10-20 %
// slower, for 12-15 MB less peak RSS; docs/performance.md).
//
// Events held while a subscribe awaits its ack do not count: the ack that releases them may
// be behind the frames the reader would stop at. (timing.liveHigh and liveLow; tests lower
// them.)
const (
	liveHigh = 16384
	liveLow  = 8192
)

// liveBacklog counts the live events waiting in the queues of one fleet's workers.
type liveBacklog struct {
	n         atomic.Int64
	high, low int64
	room      chan struct{} // 1-buffered: the count fell to low or below
}

func newLiveBacklog(high, low int) *liveBacklog {
	return &liveBacklog{high: int64(high), low: int64(low), room: make(chan struct{}, 1)}
}

func (b *liveBacklog) add(k int) { b.n.Add(int64(k)) }

// take counts k events out of the queues (emitted or dropped).
func (b *liveBacklog) take(k int) {
	if k == 0 {
		return
	}
	if n := b.n.Add(-int64(k)); n <= b.low && n+int64(k) > b.low {
		select {
		case b.room <- struct{}{}:
		default:
		}
	}
}

// wait returns at once while fewer than high events wait; otherwise once they are down to
// low (true), or when done closes (false). It reports whether it waited in waited.
func (b *liveBacklog) wait(done <-chan struct{}) (ok, waited bool) {
	if b == nil || b.n.Load() < b.high {
		return true, false
	}
	for b.n.Load() > b.low {
		select {
		case <-b.room:
		case <-done:
			return false, true
		}
	}
	return true, true
}
