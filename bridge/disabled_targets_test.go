package bridge_test

import (
	"context"
	"errors"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// TestDisabledTargetsCounted: a target that answers 410 is counted as disabled for its
// sink (the other sink lists 0), and a replay of its dead letters brings the count back to 0.
func TestDisabledTargetsCounted(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var gone atomic.Bool
	gone.Store(true)
	sink := newSink("hook", func(bridge.Delivery) error {
		if gone.Load() {
			return bridge.Gone(errors.New("410 Gone"))
		}
		return nil
	})
	other := newSink("other", nil)
	d, _ := running(t, st, routeAll("hook", "other"), bridge.SinkSpec{Sink: sink, Retry: fastRetry}, bridge.SinkSpec{Sink: other, Retry: fastRetry})
	if got, want := d.DisabledTargets(), map[string]int{"hook": 0, "other": 0}; !maps.Equal(got, want) {
		t.Errorf("before any delivery: DisabledTargets() = %v, want %v", got, want)
	}
	emitAll(t, d, []string{"a", "b"}, 2)
	waitUntil(t, "the hook target disabled", 10*time.Second, func() bool { return d.DisabledTargets()["hook"] == 1 })
	if got, want := d.DisabledTargets(), map[string]int{"hook": 1, "other": 0}; !maps.Equal(got, want) {
		t.Errorf("after a 410: DisabledTargets() = %v, want %v", got, want)
	}
	waitUntil(t, "all 4 dead-lettered", 10*time.Second, func() bool {
		dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{Sink: "hook"})
		return len(dls) == 4
	})
	gone.Store(false)
	if _, err := d.Replay(context.Background(), bridge.DeadLetterFilter{Sink: "hook"}); err != nil {
		t.Fatal(err)
	}
	if got := d.DisabledTargets()["hook"]; got != 0 {
		t.Errorf("after the replay: %d disabled targets for hook, want 0", got)
	}
	waitUntil(t, "the replayed 4 delivered", 10*time.Second, func() bool { return len(sink.delivered()) == 4 })
}
