package main

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestBacklog100k measures what the README states about a large backlog: 100,000 events
// for a sink that is down are held in the store, not in memory, and drain when the sink
// returns. It takes about a minute, so it runs only when asked:
//
//	KDBRIDGE_BACKLOG_TEST=1 go test -run TestBacklog100k -v ./cmd/kdbridge
func TestBacklog100k(t *testing.T) {
	if os.Getenv("KDBRIDGE_BACKLOG_TEST") == "" {
		t.Skip("set KDBRIDGE_BACKLOG_TEST=1 to run the 100,000-event backlog measurement")
	}
	const total, discussions = 100_000, 200
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	var down atomic.Bool
	down.Store(true)
	var delivered atomic.Int64
	seen := sync.Map{}
	recv := newTestReceiver(t)
	recv.statusFn = func(int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	var ids []string
	for i := range discussions {
		ids = append(ids, sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	addr := freeAddr(t)
	cfg := writeConfig(t, strings.Replace(strings.Replace(bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), ids),
		`listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", addr), 1),
		"retry: {initial: 50ms, max_interval: 500ms}", "retry: {initial: 1s, max_interval: 2s}", 1))
	log := &syncBuffer{}
	proc := startChild(t, log, "run", "-config", cfg, "-log-level", "warn")
	waitFor(t, "subscriptions", 30*time.Second, func() bool { return sim.Stats().Subscriptions >= discussions })

	start := time.Now()
	u := kinetictest.User{Username: "alice", DisplayName: "Alice"}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < total; i += 4 {
				if _, err := sim.PostMessage(ids[i%discussions], u, fmt.Sprint("m", i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	received := regexp.MustCompile(`(?m)^kdbridge_events_received_total\{source="acme",type="message.created"\} (\d+)`)
	waitFor(t, "all events stored", 5*time.Minute, func() bool {
		m := received.FindStringSubmatch(httpGet(t, "http://"+addr+"/metrics"))
		if len(m) != 2 {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n >= total
	})
	stored := time.Since(start)
	rssBacklog, hwmBacklog := procMemory(t, proc.cmd.Process.Pid)

	down.Store(false)
	drainStart := time.Now()
	waitFor(t, "the backlog to drain", 10*time.Minute, func() bool {
		for _, d := range recv.deliveries()[delivered.Load():] {
			seen.Store(d.envelope.Data.Message.Text, true)
			delivered.Add(1)
		}
		n := 0
		seen.Range(func(any, any) bool { n++; return true })
		return n >= total
	})
	drained := time.Since(drainStart)
	rssAfter, hwmAfter := procMemory(t, proc.cmd.Process.Pid)
	proc.terminate(t)
	t.Logf("100,000 events across %d discussions stored in %s while the sink was down; RSS with the backlog %d MiB (peak %d MiB); drained in %s (%.0f events/s); RSS after %d MiB (peak %d MiB)",
		discussions, stored.Round(time.Millisecond), rssBacklog>>10, hwmBacklog>>10, drained.Round(time.Millisecond), float64(total)/drained.Seconds(), rssAfter>>10, hwmAfter>>10)
}

// procMemory reads VmRSS and VmHWM (KiB) of a process.
func procMemory(t *testing.T, pid int) (rss, hwm int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss = v
			case "VmHWM:":
				hwm = v
			}
		}
	}
	return rss, hwm
}
