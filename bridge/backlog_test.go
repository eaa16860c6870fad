package bridge_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

func backlogOf(d *bridge.Dispatcher, sink string) (bridge.SinkBacklog, bool) {
	for _, b := range d.Backlog() {
		if b.Sink == sink {
			return b, true
		}
	}
	return bridge.SinkBacklog{}, false
}

// TestBacklogFollowsFailuresRestartsAndDeadLetters: the counts build while a sink fails, are
// the store's own after a restart, and go back to zero as deliveries are made or
// dead-lettered, replays included.
func TestBacklogFollowsFailuresRestartsAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	var failing atomic.Bool
	failing.Store(true)
	sink := newSink("hook", func(d bridge.Delivery) error {
		switch {
		case d.Event.Message.Text == "3" && d.Event.Discussion.ID == "b":
			return bridge.Permanent(errors.New("400"))
		case failing.Load():
			return errors.New("503")
		}
		return nil
	})
	spec := bridge.SinkSpec{Sink: sink, MaxInFlight: 2, Retry: fastRetry}
	d, stop := running(t, st, routeAll("hook"), spec)
	if b, ok := backlogOf(d, "hook"); !ok || b.Pending != 0 || !b.OldestAt.IsZero() {
		t.Errorf("before any event: %+v, %t", b, ok)
	}
	before := time.Now()
	emitAll(t, d, []string{"a", "b"}, 5)
	waitUntil(t, "10 pending", 5*time.Second, func() bool { b, _ := backlogOf(d, "hook"); return b.Pending == 10 })
	b, _ := backlogOf(d, "hook")
	if b.OldestAt.Before(before.Add(-time.Second)) || b.OldestAt.After(time.Now()) {
		t.Errorf("oldest stored at %v, want about %v", b.OldestAt, before)
	}
	stop()
	st.Close()

	// After a restart the count comes from the store.
	st = openStore(t, dir)
	defer st.Close()
	d, _ = running(t, st, routeAll("hook"), spec)
	waitUntil(t, "the store's count of 10", 5*time.Second, func() bool { b, _ := backlogOf(d, "hook"); return b.Pending == 10 })
	if b, _ := backlogOf(d, "hook"); b.OldestAt.Before(before.Add(-time.Second)) || b.OldestAt.After(time.Now()) {
		t.Errorf("after restart: oldest stored at %v, want about %v", b.OldestAt, before)
	}
	failing.Store(false)
	waitUntil(t, "9 deliveries", 10*time.Second, func() bool { return len(sink.delivered()) == 9 })
	waitUntil(t, "an empty backlog", 5*time.Second, func() bool {
		b, _ := backlogOf(d, "hook")
		return b.Pending == 0 && b.OldestAt.IsZero()
	})

	// A replayed dead letter is pending again until it is delivered.
	sink.mu.Lock()
	sink.fail = func(bridge.Delivery) error { return errors.New("503") }
	sink.mu.Unlock()
	if _, err := d.Replay(context.Background(), bridge.DeadLetterFilter{Sink: "hook"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replayed delivery pending", 5*time.Second, func() bool {
		b, _ := backlogOf(d, "hook")
		return b.Pending == 1 && !b.OldestAt.IsZero()
	})
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	waitUntil(t, "the replayed delivery made", 5*time.Second, func() bool { b, _ := backlogOf(d, "hook"); return b.Pending == 0 })
}
