package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// With state.attempts.record: failures the daemon's history keeps the receiver's 503 and
// not the deliveries that succeeded (the first message's second try, the second message).
func TestAttemptsRecordFailures(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	recv.statusFn = func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	disc := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Refunds"})
	dir := t.TempDir()
	cfgText := bridgeConfig(sim, "integration-secret", recv.URL, dir, []string{disc.ID})
	if !strings.Contains(cfgText, "state: {dir: ") {
		t.Fatal("the test configuration changed shape")
	}
	cfg := writeConfig(t, strings.Replace(cfgText, "state: {dir: ", "state: {attempts: {record: failures}, dir: ", 1))
	d := startDaemon(t, "-config", cfg)
	waitFor(t, "the subscription", 15*time.Second, func() bool { return sim.Stats().Subscriptions >= 1 })
	alice := kinetictest.User{Username: "alice", DisplayName: "Alice"}
	for _, text := range []string{"first, refused once", "second"} {
		if _, err := sim.PostMessage(disc.ID, alice, text); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both deliveries", 20*time.Second, func() bool { return len(recv.deliveries()) == 2 })
	if err := d.stop(t); err != nil { // the history writer flushes as the daemon stops
		t.Fatal(err)
	}

	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Attempts(context.Background(), bridge.AttemptFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Outcome != bridge.OutcomeRetry || recs[0].Status != "503" {
		t.Fatalf("history = %+v, want the one 503", recs)
	}
}

// A replica that does not lead (no dispatcher) still tells the console how the leader's
// history is kept.
func TestAttemptHistoryWithoutADispatcher(t *testing.T) {
	for record, want := range map[string]bool{recordAll: false, recordFailures: true} {
		d := &daemon{cfg: &Config{State: stateConfig{Attempts: attemptsConfig{Record: record}}}}
		if h := d.attemptHistory(); h.FailedOnly != want || h.Enabled {
			t.Errorf("record %s: %+v, want failed only %v and not enabled here", record, h, want)
		}
	}
}
