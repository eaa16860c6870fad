package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

func dlqCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"dlq"}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestDeadLetterListReplayDrop(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	broken := true
	recv.statusFn = func(int) int {
		if broken {
			return http.StatusBadRequest
		}
		return 0
	}
	disc := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Refunds"})
	state := t.TempDir()
	// A fixed loopback port is needed so that `dlq` finds the running daemon from the config.
	cfgText := listenAt(bridgeConfig(sim, "integration-secret", recv.URL, state, []string{disc.ID}), freeAddr(t))
	cfg := writeConfig(t, cfgText)
	d := startDaemon(t, "-config", cfg)
	waitFor(t, "the subscription", 15*time.Second, func() bool { return sim.Stats().Subscriptions >= 1 })
	alice := kinetictest.User{Username: "alice", DisplayName: "Alice"}
	if _, err := sim.PostMessage(disc.ID, alice, "rejected by the receiver"); err != nil {
		t.Fatal(err)
	}

	// While the daemon runs, dlq talks to it over the loopback listener.
	var listed string
	waitFor(t, "the dead letter", 15*time.Second, func() bool {
		out, err := dlqCmd(t, "list", "-config", cfg)
		listed = out
		return err == nil && strings.Contains(out, "400")
	})
	if !strings.Contains(listed, "message.created") || !strings.Contains(listed, "permanent") {
		t.Errorf("dlq list does not show the event and error:\n%s", listed)
	}
	recv.mu.Lock()
	if recv.requests != 1 {
		t.Errorf("a 400 was retried: %d requests", recv.requests)
	}
	recv.mu.Unlock()
	out, err := dlqCmd(t, "list", "-config", cfg, "-json")
	var views []deadLetterView
	if err != nil || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 || views[0].Attempts != 1 || views[0].Sink != "hook" {
		t.Fatalf("dlq list -json: %v\n%s", err, out)
	}

	recv.mu.Lock()
	broken = false
	recv.mu.Unlock()
	if out, err := dlqCmd(t, "replay", "-config", cfg, views[0].ID); err != nil || !strings.Contains(out, "replayed 1") {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	waitFor(t, "the replayed delivery", 10*time.Second, func() bool { return len(recv.deliveries()) == 1 })
	if out, _ := dlqCmd(t, "list", "-config", cfg); !strings.Contains(out, "no dead letters") {
		t.Errorf("dead letter still listed after replay:\n%s", out)
	}

	// With the daemon stopped, dlq opens the store itself.
	recv.mu.Lock()
	broken = true
	recv.mu.Unlock()
	if _, err := sim.PostMessage(disc.ID, alice, "second"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second dead letter", 15*time.Second, func() bool {
		out, _ := dlqCmd(t, "list", "-config", cfg)
		return strings.Contains(out, "400")
	})
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	if out, err := dlqCmd(t, "drop", "-config", cfg); err == nil {
		t.Errorf("drop without a filter was accepted:\n%s", out)
	}
	if out, err := dlqCmd(t, "drop", "-config", cfg, "-sink", "hook"); err != nil || !strings.Contains(out, "dropped 1") {
		t.Fatalf("offline dlq drop: %v\n%s", err, out)
	}
	if len(recv.deliveries()) != 1 {
		t.Errorf("deliveries = %d, want exactly the one replay", len(recv.deliveries()))
	}
}
