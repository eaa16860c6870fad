package bridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// TestBehindOnlyWhenEverySinkIsFullAndDelivering: Behind advises holding back a catch-up
// only when each sink its events go to has HoldBackAt deliveries waiting and is delivering
// them — never for a discussion that also goes to a sink with room, to a failing sink or to
// a halted one, never for events no route selects, and never while the dispatcher is not
// running (nothing would drain). Once the slow sink catches up, the advice ends.
func TestBehindOnlyWhenEverySinkIsFullAndDelivering(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()

	gate := make(chan struct{})
	var closeGate sync.Once
	defer closeGate.Do(func() { close(gate) })
	slow := newSink("slow", func(d bridge.Delivery) error {
		<-gate // delivering, one at a time, but not done yet
		return nil
	})
	fast := newSink("fast", nil)
	failing := newSink("failing", func(bridge.Delivery) error { return errors.New("503 from the far side") })
	halted := newSink("halted", func(bridge.Delivery) error { return bridge.Halt(errors.New("invalid_auth")) })

	routes := []bridge.RouteConfig{
		{Name: "slow-only", Discussions: []string{"a"}, To: []bridge.TargetConfig{{Sink: "slow"}}},
		{Name: "slow-and-fast", Discussions: []string{"b"}, To: []bridge.TargetConfig{{Sink: "slow"}, {Sink: "fast"}}},
		{Name: "slow-and-failing", Discussions: []string{"c"}, To: []bridge.TargetConfig{{Sink: "slow"}, {Sink: "failing"}}},
		{Name: "halted", Discussions: []string{"h"}, To: []bridge.TargetConfig{{Sink: "halted"}}},
	}
	const at = 5
	d := bridge.NewDispatcher(st, bridge.NewRouter(routes, nil), []bridge.SinkSpec{
		{Sink: slow, MaxInFlight: 1, Retry: fastRetry},
		{Sink: fast, Retry: fastRetry},
		{Sink: failing, Retry: fastRetry},
		{Sink: halted, Retry: fastRetry},
	}, bridge.DispatcherOptions{Grace: time.Second, HoldBackAt: at})
	probe := func(disc string) bridge.Event {
		return bridge.Event{Source: "src", Type: bridge.MessageCreated, Discussion: bridge.Discussion{ID: disc}}
	}
	ctx := context.Background()
	for i := range 2 * at {
		for _, disc := range []string{"a", "c", "h"} {
			if err := d.Emit(ctx, event(disc, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d.Behind(probe("a")) {
		t.Error("Behind before Run: nothing drains the backlog, holding back would wait for ever")
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		closeGate.Do(func() { close(gate) })
		stop()
		<-done
	}()
	waitUntil(t, "the failing sink to fail and the halted one to halt", 10*time.Second, func() bool {
		failing.mu.Lock()
		n := len(failing.hits)
		failing.mu.Unlock()
		return n > 0 && d.Halted()["halted"] != ""
	})
	waitUntil(t, "Behind for the slow sink's discussion", 10*time.Second, func() bool { return d.Behind(probe("a")) })

	for _, c := range []struct {
		disc, why string
	}{
		{"b", "the fast sink has room: a slow sink must not hold back another's events"},
		{"c", "the failing sink cannot take its events: they belong in our store"},
		{"h", "the halted sink is not delivering"},
		{"z", "no route selects the discussion"},
	} {
		if d.Behind(probe(c.disc)) {
			t.Errorf("Behind(%s) = true, want false: %s", c.disc, c.why)
		}
	}
	if !d.Behind(probe("z"), probe("a")) {
		t.Error("Behind(z, a) = false: a's sink is full and z goes nowhere")
	}

	closeGate.Do(func() { close(gate) })
	waitUntil(t, "the slow sink to catch up", 10*time.Second, func() bool { return !d.Behind(probe("a")) })
	waitUntil(t, "every delivery of a", 10*time.Second, func() bool { return len(slow.delivered()) >= 2*at*2 })
}
