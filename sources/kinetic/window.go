package kinetic

import "time"

// initialWindow is the subscribes a connection may have awaiting their ack before any
// ack has said how fast the server answers (issue 17's fixed pacing).
const initialWindow = 16

// subscribeWindow paces the subscribes of one connection like a congestion window driven by
// ack latency. A real subscribe does database work; the server answers the subscribes of a
// connection one after another, so the more are awaiting their ack, the later the last is
// answered. The window starts at initialWindow and grows by one per ack that came back
// within target (a tenth of ack_timeout) — doubling per round trip — until the first slow
// ack; then it halves, and grows by one per window's worth of fast acks (one per round
// trip). A slow ack or a timeout halves it again, at most once per round trip: the acks of
// the subscribes that were in flight when it shrank say nothing about the smaller window.
// It never exceeds limit (subscribes_in_flight) and never goes below one.
//
// Against a server that answers at once the window opens to limit in a few round trips;
// against one that takes 50 ms per subscribe it stays near target/50 ms, so acks come back
// in about a tenth of ack_timeout, far from a timeout.
type subscribeWindow struct {
	limit  int
	target time.Duration
	size   int
	thresh int // above it, growth is one per window's worth of fast acks
	credit int // fast acks toward the next growth above thresh
	// recover is the newest subscribe sent when the window last shrank: answers to it and to
	// older ones do not shrink it again.
	recover uint64
	// Observations, for Status and logs.
	peak   int
	shrunk int
}

func newSubscribeWindow(limit int, ackTimeout time.Duration) subscribeWindow {
	size := max(min(initialWindow, limit), 1)
	return subscribeWindow{limit: max(limit, 1), target: ackTimeout / 10, size: size, thresh: max(limit, 1), peak: size}
}

// answered records the answer (ack-ok or ack-error) to subscribe number seq, latency after
// it was sent; newest is the number of the latest subscribe sent.
func (w *subscribeWindow) answered(seq uint64, latency time.Duration, newest uint64) {
	if latency > w.target {
		w.shrink(seq, newest)
		return
	}
	if w.size >= w.limit {
		return
	}
	if w.size < w.thresh {
		w.size++
	} else if w.credit++; w.credit >= w.size {
		w.credit = 0
		w.size++
	}
	w.peak = max(w.peak, w.size)
}

// timedOut records that subscribe number seq was not answered within ack_timeout.
func (w *subscribeWindow) timedOut(seq uint64, newest uint64) { w.shrink(seq, newest) }

func (w *subscribeWindow) shrink(seq, newest uint64) {
	if seq <= w.recover {
		return // in flight when the window last shrank
	}
	w.size = max(w.size/2, 1)
	w.thresh = w.size
	w.credit = 0
	w.recover = newest
	w.shrunk++
}
