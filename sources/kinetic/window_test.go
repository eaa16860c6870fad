package kinetic

import (
	"testing"
	"time"
)

// The window's rules, step by step: slow start from 16, at most subscribes_in_flight, one
// halving per round trip, then one more per window's worth of fast acks.
func TestSubscribeWindowRules(t *testing.T) {
	const fast, slow = time.Millisecond, 2 * time.Second // target: a tenth of 10 s
	w := newSubscribeWindow(100, 10*time.Second)
	if w.size != initialWindow {
		t.Fatalf("starts at %d, want %d", w.size, initialWindow)
	}
	seq := uint64(0)
	for range 200 { // fast acks: +1 each, up to the ceiling
		seq++
		w.answered(seq, fast, seq+uint64(w.size))
	}
	if w.size != 100 || w.peak != 100 {
		t.Fatalf("after 200 fast acks: size %d, peak %d; want the ceiling, 100", w.size, w.peak)
	}
	newest := seq + 100
	seq++
	w.answered(seq, slow, newest) // slow: halves
	if w.size != 50 {
		t.Fatalf("after a slow ack: %d, want 50", w.size)
	}
	for range 10 { // the others in flight then, slow or timed out: no further halving
		seq++
		w.answered(seq, slow, newest+1)
		w.timedOut(seq, newest+1)
	}
	if w.size != 50 || w.shrunk != 1 {
		t.Fatalf("after slow acks of the same round trip: size %d, shrunk %d times; want 50, once", w.size, w.shrunk)
	}
	for range 50 { // above the threshold: one per window's worth
		w.answered(newest+1, fast, newest+1)
	}
	if w.size != 51 {
		t.Fatalf("after 50 fast acks at 50: %d, want 51", w.size)
	}
	w.timedOut(newest+2, newest+200) // a later subscribe timing out halves again
	if w.size != 25 {
		t.Fatalf("after a timeout: %d, want 25", w.size)
	}
	for i := range 20 {
		w.timedOut(newest+201+uint64(i), newest+202+uint64(i)) // each its own round trip
	}
	if w.size != 1 {
		t.Fatalf("after many timeouts: %d, want 1 (never below)", w.size)
	}
	if small := newSubscribeWindow(4, time.Second); small.size != 4 {
		t.Fatalf("subscribes_in_flight 4: starts at %d, want 4", small.size)
	}
}
