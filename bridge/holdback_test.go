package bridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// TestBehindOnlyWhenEveryTargetIsFullAndDelivering: Behind advises holding back a catch-up
// only when each target its events go to has HoldBackAt deliveries waiting and is taking
// them — never for a discussion that also goes to a sink with room, to a failing sink or
// target, to a halted sink, or to a channel with room whose sink has a failing channel with
// a backlog; never for events no route selects, and never while the dispatcher is not
// running (nothing would drain). Once the slow sink catches up, the advice ends.
func TestBehindOnlyWhenEveryTargetIsFullAndDelivering(t *testing.T) {
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
	// Two channels of one sink: one failing with a backlog, one taking everything.
	channels := newSink("channels", func(d bridge.Delivery) error {
		if d.Target.Channel == "#broken" {
			return errors.New("500 from the far side")
		}
		return nil
	})

	routes := []bridge.RouteConfig{
		{Name: "slow-only", Discussions: []string{"a"}, To: []bridge.TargetConfig{{Sink: "slow"}}},
		{Name: "slow-and-fast", Discussions: []string{"b"}, To: []bridge.TargetConfig{{Sink: "slow"}, {Sink: "fast"}}},
		{Name: "slow-and-failing", Discussions: []string{"c"}, To: []bridge.TargetConfig{{Sink: "slow"}, {Sink: "failing"}}},
		{Name: "halted", Discussions: []string{"h"}, To: []bridge.TargetConfig{{Sink: "halted"}}},
		{Name: "broken-channel", Discussions: []string{"x"}, To: []bridge.TargetConfig{{Sink: "channels", Channel: "#broken"}}},
		{Name: "good-channel", Discussions: []string{"y"}, To: []bridge.TargetConfig{{Sink: "channels", Channel: "#good"}}},
	}
	const at = 5
	d := bridge.NewDispatcher(st, bridge.NewRouter(routes, nil), []bridge.SinkSpec{
		{Sink: slow, MaxInFlight: 1, Retry: fastRetry},
		{Sink: fast, Retry: fastRetry},
		{Sink: failing, Retry: fastRetry},
		{Sink: halted, Retry: fastRetry},
		// Retried only after the test: its failure stays the last word on #broken, while
		// #good's delivery below is the sink's last attempt.
		{Sink: channels, Retry: bridge.RetryConfig{Initial: config.Duration(time.Hour), MaxInterval: config.Duration(time.Hour), MaxAge: config.Duration(2 * time.Hour)}},
	}, bridge.DispatcherOptions{Grace: time.Second, HoldBackAt: at})
	probe := func(disc string) bridge.Event {
		return bridge.Event{Source: "src", Type: bridge.MessageCreated, Discussion: bridge.Discussion{ID: disc}}
	}
	ctx := context.Background()
	for i := range 2 * at {
		for _, disc := range []string{"a", "c", "h", "x"} {
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
	// The good channel takes a delivery after the broken one's failure, as a sink's other
	// channels do all the time: a sink-wide "last attempt" would now say delivering, and the
	// sink has the broken channel's backlog waiting.
	waitUntil(t, "the broken channel's first failure", 10*time.Second, func() bool {
		channels.mu.Lock()
		defer channels.mu.Unlock()
		return len(channels.hits) > 0
	})
	if err := d.Emit(ctx, event("y", 0)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the good channel's delivery", 10*time.Second, func() bool { return len(channels.delivered()) == 1 })

	for _, c := range []struct {
		disc, why string
	}{
		{"b", "the fast sink has room: a slow sink must not hold back another's events"},
		{"c", "the failing sink cannot take its events: they belong in our store"},
		{"h", "the halted sink is not delivering"},
		{"z", "no route selects the discussion"},
		{"x", "the failing channel cannot take its events"},
		{"y", "another channel of the same sink failing with a backlog must not hold back this one, which has room"},
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
