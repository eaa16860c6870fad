package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestMetricsTargetDisabled: a webhook that answers 410 Gone is disabled, and /metrics
// says so (kdbridge_targets_disabled{sink="hook"} 1): what the KdbridgeTargetDisabled alert
// fires on.
func TestMetricsTargetDisabled(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	recv.statusFn = func(int) int { return http.StatusGone }
	id := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 1"}).ID
	addr := freeAddr(t)
	cfg := writeConfig(t, listenAt(bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), []string{id}), addr))
	d := startDaemon(t, "-config", cfg)
	const series = `kdbridge_targets_disabled{sink="hook"}`
	waitFor(t, "/readyz to say ready", 15*time.Second, func() bool { return httpGet(t, "http://"+addr+"/readyz") == "ready\n" })
	if v := scrapeValue(t, addr, series); v != 0 {
		t.Errorf("before any delivery %s = %v, want 0", series, v)
	}
	if _, err := sim.PostMessage(id, alice, "to a gone endpoint"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, series+" 1", 15*time.Second, func() bool { return scrapeValue(t, addr, series) == 1 })
	if err := d.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(d.stderr.String()))
	}
}
