package bridge_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// verifyingSink is a recordingSink with a credentials check.
type verifyingSink struct {
	*recordingSink
	verify func() error
	calls  atomic.Int32
}

func (s *verifyingSink) Verify(context.Context) error { s.calls.Add(1); return s.verify() }

// TestHaltedSinkWaitsWithoutDeadLetters: a sink whose credentials are refused halts as a
// whole: every queue waits, nothing is dead-lettered, no attempt is counted, and replacing
// the sink (a reload with a new token) delivers everything in order.
func TestHaltedSinkWaitsWithoutDeadLetters(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	refused := newSink("slack", func(bridge.Delivery) error { return bridge.Halt(errors.New("slack chat.postMessage: invalid_auth")) })
	const inFlight = 2
	d, _ := running(t, st, routeAll("slack"), bridge.SinkSpec{Sink: refused, MaxInFlight: inFlight, Retry: fastRetry})
	discs := []string{"a", "b", "c"}
	emitAll(t, d, discs, 5)
	waitUntil(t, "the sink to halt", 10*time.Second, func() bool { return strings.Contains(d.Halted()["slack"], "invalid_auth") })
	if b := d.Backlog(); len(b) != 1 || !b[0].Halted || b[0].Pending != 15 {
		t.Errorf("backlog while halted: %+v", b)
	}
	if dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{}); len(dls) != 0 {
		t.Errorf("a halted sink dead-lettered %d deliveries", len(dls))
	}

	good := newSink("slack", nil)
	if err := d.SetSinks(context.Background(), []bridge.SinkSpec{{Sink: good, MaxInFlight: inFlight, Retry: fastRetry}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "every delivery after the sink was replaced", 10*time.Second, func() bool { return len(good.delivered()) == 15 })
	checkOrder(t, good.delivered(), discs, 5)
	refused.mu.Lock()
	attempts := 0
	for _, n := range refused.hits {
		attempts += n
	}
	refused.mu.Unlock()
	if attempts > inFlight {
		t.Errorf("the halted sink was tried %d times, want at most one per worker (%d): its other queues should have waited", attempts, inFlight)
	}
	if len(d.Halted()) != 0 {
		t.Errorf("still halted after the sink was replaced: %v", d.Halted())
	}
	for _, g := range good.delivered() {
		if g.Attempt != 1 {
			t.Errorf("a halted attempt was counted: %+v", g.Attempt)
			break
		}
	}
}

// TestVerifierHaltsBeforeAnyDelivery: a sink that can check its credentials is checked at
// start; refused, it halts before any delivery is attempted. A check that could not tell (a
// network error) is asked again.
func TestVerifierHaltsBeforeAnyDelivery(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var n atomic.Int32
	sink := &verifyingSink{recordingSink: newSink("slack", nil), verify: func() error {
		if n.Add(1) < 3 {
			return errors.New("dial tcp: connection refused")
		}
		return bridge.Halt(errors.New("slack auth.test: invalid_auth"))
	}}
	d, _ := running(t, st, routeAll("slack"), bridge.SinkSpec{Sink: sink, Retry: fastRetry})
	waitUntil(t, "the sink to halt", 10*time.Second, func() bool { return d.Halted()["slack"] != "" })
	if c := sink.calls.Load(); c != 3 {
		t.Errorf("Verify called %d times, want 3 (two network errors, then the refusal)", c)
	}
	emitAll(t, d, []string{"a"}, 2)
	waitUntil(t, "2 pending", 10*time.Second, func() bool { b := d.Backlog(); return len(b) == 1 && b[0].Pending == 2 })
	sink.mu.Lock()
	hits := len(sink.hits)
	sink.mu.Unlock()
	if hits != 0 {
		t.Errorf("a sink halted at start was asked to deliver")
	}
}
