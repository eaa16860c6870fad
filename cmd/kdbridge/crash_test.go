package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// child is kdbridge running as a real process (the test binary re-executed as main).
type child struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func startChild(t *testing.T, log *syncBuffer, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KDBRIDGE_TEST_CHILD=1")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.kill(t) })
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("child did not die after SIGKILL")
	}
}

func (c *child) terminate(t *testing.T) int {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatal("child did not stop after SIGTERM")
	}
	return c.cmd.ProcessState.ExitCode()
}

// TestCrashSafety posts 1,000 messages while kdbridge is SIGKILLed twice and a receiver fails
// about 30% of requests with 503: every message must arrive, duplicates only under the same
// webhook-id, and first deliveries in order per discussion.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs child processes")
	}
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	rng := rand.New(rand.NewPCG(7, 11))
	recv.statusFn = func(int) int {
		if rng.Float64() < 0.3 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	var ids []string
	for i := range 4 {
		ids = append(ids, sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprintf("Crash %d", i)}).ID)
	}
	cfg := writeConfig(t, bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), ids))
	log := &syncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("kdbridge log:\n%s", log.String())
		}
	}()
	proc := startChild(t, log, "run", "-config", cfg, "-log-level", "info")
	waitFor(t, "4 subscriptions", 20*time.Second, func() bool { return sim.Stats().Subscriptions >= 4 })

	const total = 1000
	type posted struct{ disc, id, text string }
	var (
		mu   sync.Mutex
		sent []posted
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sent) }
	postDone := make(chan struct{})
	go func() {
		defer close(postDone)
		u := kinetictest.User{Username: "alice", DisplayName: "Alice"}
		for i := range total {
			disc := ids[i%len(ids)]
			text := fmt.Sprintf("crash %04d", i)
			m, err := sim.PostMessage(disc, u, text)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sent = append(sent, posted{disc, m.ID, text})
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // a steady stream, so the kills land mid-stream
		}
	}()
	for _, at := range []int{300, 650} {
		waitFor(t, fmt.Sprintf("%d messages posted", at), 30*time.Second, func() bool { return count() >= at })
		proc.kill(t)
		proc = startChild(t, log, "run", "-config", cfg, "-log-level", "info")
	}
	<-postDone

	byText := map[string]posted{}
	for _, p := range sent {
		byText[p.text] = p
	}
	firstSeen := func() map[string]delivery {
		out := map[string]delivery{}
		for _, d := range recv.deliveries() {
			if _, ok := out[d.envelope.Data.Message.Text]; !ok {
				out[d.envelope.Data.Message.Text] = d
			}
		}
		return out
	}
	waitFor(t, "every message delivered", 60*time.Second, func() bool { return len(firstSeen()) >= total })
	if code := proc.terminate(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}

	idsOf := map[string]map[string]bool{}
	next := map[string]int{}
	order := map[string][]string{}
	for _, p := range sent {
		order[p.disc] = append(order[p.disc], p.text)
	}
	seen := map[string]bool{}
	dups := 0
	for _, d := range recv.deliveries() {
		text := d.envelope.Data.Message.Text
		p, ok := byText[text]
		if !ok {
			t.Errorf("delivered a message never posted: %q", text)
			continue
		}
		if idsOf[text] == nil {
			idsOf[text] = map[string]bool{}
		}
		idsOf[text][d.id] = true
		if seen[text] {
			dups++
			continue
		}
		seen[text] = true
		if want := order[p.disc][next[p.disc]]; text != want {
			t.Errorf("discussion %s: first delivery %q, want %q", p.disc, text, want)
		}
		next[p.disc]++
	}
	for text, set := range idsOf {
		if len(set) != 1 {
			t.Errorf("%q delivered under %d different webhook-ids", text, len(set))
		}
	}
	if len(seen) != total {
		t.Errorf("%d of %d messages delivered", len(seen), total)
	}
	recv.mu.Lock()
	requests := recv.requests
	recv.mu.Unlock()
	t.Logf("%d messages, %d deliveries (%d redeliveries with the same webhook-id), %d receiver requests", total, len(recv.deliveries()), dups, requests)
}
