package bridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// TestEnableTargetWithoutReplay disables a target with a 410, lists it, re-enables it (the
// console's button) and sees a new event delivered while the old dead letter stays.
func TestEnableTargetWithoutReplay(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	gone := true
	sink := newSink("hook", func(bridge.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return bridge.Gone(errors.New("410 Gone"))
		}
		return nil
	})
	d, _ := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, Retry: fastRetry})
	emitAll(t, d, []string{"a"}, 1)
	var dis []bridge.DisabledTarget
	waitUntil(t, "the target disabled", 10*time.Second, func() bool { dis = d.ListDisabledTargets(); return len(dis) == 1 })
	if dis[0].Target != (bridge.Target{Route: "all", Sink: "hook"}) || dis[0].Reason == "" {
		t.Fatalf("ListDisabledTargets = %+v", dis)
	}
	mu.Lock()
	gone = false
	mu.Unlock()
	if err := d.EnableTarget(context.Background(), dis[0].Target); err != nil {
		t.Fatal(err)
	}
	if got := d.ListDisabledTargets(); len(got) != 0 {
		t.Fatalf("still disabled: %+v", got)
	}
	if err := d.Emit(context.Background(), event("a", 1)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the new event delivered", 10*time.Second, func() bool { return len(sink.delivered()) == 1 })
	if dls, err := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{}); err != nil || len(dls) != 1 {
		t.Fatalf("dead letters after enabling: %d, %v (want the old one kept)", len(dls), err)
	}
}
