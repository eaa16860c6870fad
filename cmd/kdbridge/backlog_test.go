package main

import (
	"context"
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

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
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
	const discussions = 200
	total := 100_000
	if n, err := strconv.Atoi(os.Getenv("KDBRIDGE_BACKLOG_TEST")); err == nil && n > 1 {
		total = n // a smaller run for a quick look
	}
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
	stDir := t.TempDir()
	cfg := writeConfig(t, strings.Replace(listenAt(bridgeConfig(sim, "integration-secret", recv.URL, stDir, ids), addr),
		"retry: {initial: 50ms, max_interval: 500ms}", "retry: {initial: 1s, max_interval: 2s}", 1))
	log := &syncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("metrics:\n%s", grepLines(httpGet(t, "http://"+addr+"/metrics"), "kdbridge_"))
			t.Logf("kdbridge log (tail):\n%s", lastLines(log.String(), 40))
			if f := os.Getenv("KDBRIDGE_BACKLOG_LOG"); f != "" {
				_ = os.WriteFile(f, []byte(log.String()), 0o600)
			}
		}
	}()
	level := os.Getenv("KDBRIDGE_BACKLOG_LOGLEVEL")
	if level == "" {
		level = "info"
	}
	proc := startChild(t, log, "run", "-config", cfg, "-log-level", level)
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
	defer func() {
		if t.Failed() && os.Getenv("KDBRIDGE_BACKLOG_GAPS") != "" {
			proc.kill(t)
			reportGaps(t, stDir, sim, ids)
		}
	}()
	waitFor(t, "all events stored", 40*time.Second, func() bool {
		m := received.FindStringSubmatch(httpGet(t, "http://"+addr+"/metrics"))
		if len(m) != 2 {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n >= total
	})
	stored := time.Since(start)
	// The backlog metrics come from counters, not from the store: a scrape stays cheap.
	// (Events are counted as received just before they are stored.)
	waitFor(t, "the whole backlog queued", 30*time.Second, func() bool {
		return scrapeValue(t, addr, `kdbridge_queue_depth{sink="hook"}`) == float64(total)
	})
	scrapeStart := time.Now()
	scrape := httpGet(t, "http://"+addr+"/metrics")
	scrapeTook := time.Since(scrapeStart)
	depth, _ := metricValue(scrape, `kdbridge_queue_depth{sink="hook"}`)
	oldest, _ := metricValue(scrape, `kdbridge_oldest_undelivered_seconds{sink="hook"}`)
	t.Logf("/metrics with the backlog pending: %s; queue depth %v, oldest undelivered %.1fs", scrapeTook.Round(time.Microsecond), depth, oldest)
	if depth != float64(total) || oldest <= 0 || oldest > time.Since(start).Seconds() {
		t.Errorf("queue depth %v (want %d), oldest undelivered %vs (want up to %v)", depth, total, oldest, time.Since(start))
	}
	peakRSS, _ := procMemory(t, proc.cmd.Process.Pid)
	// Let the burst's garbage be collected (the retries of the failing sink keep allocating,
	// so the collector runs): what matters is what the backlog itself holds.
	time.Sleep(10 * time.Second)
	rssBacklog, hwmBacklog := procMemory(t, proc.cmd.Process.Pid)
	if f := os.Getenv("KDBRIDGE_BACKLOG_HEAP"); f != "" {
		_ = os.WriteFile(f, []byte(httpGet(t, "http://"+addr+"/debug/pprof/heap?gc=1")), 0o600)
	}
	t.Logf("Go memory with the backlog:\n%s", grepLines(httpGet(t, "http://"+addr+"/metrics"), "go_memstats_heap_inuse_bytes")+"\n"+grepLines(httpGet(t, "http://"+addr+"/metrics"), "go_memstats_heap_alloc_bytes")+"\n"+
		grepLines(httpGet(t, "http://"+addr+"/metrics"), "go_memstats_sys_bytes"))

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
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return scrapeValue(t, addr, `kdbridge_queue_depth{sink="hook"}`) == 0 })
	rssAfter, hwmAfter := procMemory(t, proc.cmd.Process.Pid)
	proc.terminate(t)
	t.Logf("%d events across %d discussions stored in %s while the sink was down; RSS right after the burst %d MiB, with the backlog 10 s later %d MiB (peak %d MiB); drained in %s (%.0f events/s); RSS after %d MiB (peak %d MiB)",
		total, discussions, stored.Round(time.Millisecond), peakRSS>>10, rssBacklog>>10, hwmBacklog>>10, drained.Round(time.Millisecond), float64(total)/drained.Seconds(), rssAfter>>10, hwmAfter>>10)
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func lastLines(text string, n int) string {
	lines := strings.Split(text, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
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

// reportGaps drains the stored queue of each discussion (the daemon is stopped) and
// reports which of the server's messages are missing: a diagnosis for a failed run.
func reportGaps(t *testing.T, dir string, sim *kinetictest.Server, ids []string) {
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Log(err)
		return
	}
	defer st.Close()
	ctx := context.Background()
	full := 0
	for _, d := range ids {
		got := map[string]bool{}
		q := bridge.Queue{Target: bridge.Target{Route: "all", Sink: "hook"}, Discussion: d}
		p, ok, _ := st.Head(ctx, q)
		n := 0
		for ok && n < 100000 {
			got[p.Event.Message.ID] = true
			_ = st.Done(ctx, p)
			p, ok, _ = st.Head(ctx, q)
			n++
		}
		var line string
		for _, m := range sim.Messages(d) {
			if m.Type != kinetictest.MessageTypeUser {
				continue
			}
			if got[m.ID] {
				line += "+"
			} else {
				line += "-"
			}
		}
		if strings.Contains(line, "-") {
			ms := sim.Messages(d)
			var users []kinetictest.Message
			for _, m := range ms {
				if m.Type == kinetictest.MessageTypeUser {
					users = append(users, m)
				}
			}
			first, last := "", ""
			if n < len(users) {
				first = users[n].CreatedAt
				if n > 0 {
					last = users[n-1].CreatedAt
				}
			}
			t.Logf("%s %d: last stored %s first missing %s end %s", d[:8], n, last, first, users[len(users)-1].CreatedAt)
		} else {
			full++
		}
	}
	t.Logf("%d discussions complete", full)
}
