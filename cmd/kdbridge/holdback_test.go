package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestE2ECatchUpHeldBackBehindABacklog: a restart that finds a stored backlog of more than
// 2,048 deliveries for a webhook that is taking them (slowly: here not at all yet, without
// failing) holds the catch-ups of the messages it missed back — they stay in Kinetic, not in
// the store — stays ready, says so on /readyz, the console and in
// kdbridge_source_catchups_held_back_total, and once the webhook takes the backlog, catches
// up and delivers everything once, in order.
func TestE2ECatchUpHeldBackBehindABacklog(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	const (
		refusing = iota // 503: the first life stores a backlog it cannot deliver
		holding         // deliveries wait (in flight, not failing) until the mode changes
		passing
	)
	var mode atomic.Int32
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for range 600 { // at most 30 s; the webhook's own timeout is 15 s
			switch mode.Load() {
			case refusing:
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			case passing:
				recv.Config.Handler.ServeHTTP(w, req)
				return
			}
			select {
			case <-req.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer gate.Close()

	ids := []string{
		sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 1"}).ID,
		sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 2"}).ID,
	}
	state := t.TempDir()
	config := func(addr string) string {
		return writeConfig(t, listenAt(bridgeConfig(sim, "integration-secret", gate.URL, state, ids), addr))
	}
	want := map[string][]string{} // texts per discussion, in posting order
	postN := func(prefix string, n int) {
		for i := range n {
			for _, id := range ids {
				text := fmt.Sprintf("%s %d", prefix, i)
				if _, err := sim.PostMessage(id, alice, text); err != nil {
					t.Fatal(err)
				}
				want[id] = append(want[id], text)
			}
		}
	}
	const (
		depth  = `kdbridge_queue_depth{sink="hook"}`
		held   = `kdbridge_source_catchups_held_back_total{source="acme"}`
		stored = 2100 // above the default 2,048
		missed = 20
	)

	// First life: a backlog stored, not delivered.
	addr := freeAddr(t)
	d := startDaemon(t, "-config", config(addr))
	waitFor(t, "/readyz to say ready", 15*time.Second, func() bool { return httpGet(t, "http://"+addr+"/readyz") == "ready\n" })
	postN("stored", stored/len(ids))
	waitFor(t, "the backlog stored", 30*time.Second, func() bool { return scrapeValue(t, addr, depth) == stored })
	if err := d.stop(t); err != nil {
		t.Fatalf("run returned %v", err)
	}

	// Down: messages missed. Second life: the webhook takes deliveries but has not answered yet.
	postN("missed", missed/len(ids))
	mode.Store(holding)
	addr = freeAddr(t)
	d = startDaemon(t, "-config", config(addr))
	waitFor(t, "a catch-up held back", 15*time.Second, func() bool { return scrapeValue(t, addr, held) >= 1 })
	var ready string
	waitFor(t, "/readyz to say ready while held back", 15*time.Second, func() bool {
		ready = httpGet(t, "http://"+addr+"/readyz")
		return strings.HasPrefix(ready, "ready\n")
	})
	if !strings.Contains(ready, "discussion(s) to catch up once the sinks they go to have delivered more of their backlog") {
		t.Errorf("/readyz does not mention the held-back catch-ups:\n%s", ready)
	}
	if page := httpGet(t, "http://"+addr+"/discussions"); !strings.Contains(page, "catch-up held back") {
		t.Errorf("the console's discussions page does not show the held-back catch-up:\n%.2000s", page)
	}
	if v := scrapeValue(t, addr, depth); v != stored {
		t.Errorf("%s = %v while held back, want %d: the missed messages were read into the store", depth, v, stored)
	}

	mode.Store(passing)
	total := stored + missed
	waitFor(t, "every delivery", 60*time.Second, func() bool { return len(recv.deliveries()) >= total })
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return scrapeValue(t, addr, depth) == 0 })
	if err := d.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
	got := map[string][]string{}
	seen := map[string]bool{}
	for _, dl := range recv.deliveries() {
		if seen[dl.id] {
			t.Errorf("delivered twice: %s", dl.id)
			continue
		}
		seen[dl.id] = true
		if dl.envelope.Data.Message.Kind != "user" {
			continue
		}
		id := dl.envelope.Data.Discussion.ID
		got[id] = append(got[id], dl.envelope.Data.Message.Text)
	}
	for _, id := range ids {
		if g, w := got[id], want[id]; strings.Join(g, "|") != strings.Join(w, "|") {
			t.Errorf("discussion %s: %d deliveries, want %d in posting order", id, len(g), len(w))
		}
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(d.stderr.String()))
	}
}
