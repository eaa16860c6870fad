package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sources/kinetic"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// metricValue finds one series, written as /metrics shows it (`name{a="x",b="y"}`), in a
// scrape.
func metricValue(scrape, series string) (float64, bool) {
	for line := range strings.SplitSeq(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// scrapeValue scrapes addr's /metrics and returns one series' value, -1 when it is missing.
func scrapeValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	if v, ok := metricValue(httpGet(t, "http://"+addr+"/metrics"), series); ok {
		return v
	}
	return -1
}

// TestMetricsBacklogCatchUpAndTokens drives the issue 7 metrics through real parts: a token
// endpoint that fails once, a webhook receiver that fails (the queue builds, with its age),
// a restart with messages missed meanwhile (the queue is counted from the store, the missed
// messages are caught up), a token renewed on a reconnect, and the receiver recovering (the
// queue drains to zero).
func TestMetricsBacklogCatchUpAndTokens(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	var failing atomic.Bool
	failing.Store(true)
	recv.statusFn = func(int) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	ids := []string{
		sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 1"}).ID,
		sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 2"}).ID,
	}
	state := t.TempDir()
	config := func(addr string) string {
		return writeConfig(t, listenAt(bridgeConfig(sim, "integration-secret", recv.URL, state, ids), addr))
	}
	postN := func(prefix string, n int) {
		for i := range n {
			for _, id := range ids {
				if _, err := sim.PostMessage(id, alice, fmt.Sprintf("%s %d", prefix, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	const (
		depth  = `kdbridge_queue_depth{sink="hook"}`
		oldest = `kdbridge_oldest_undelivered_seconds{sink="hook"}`
		tokOK  = `kdbridge_source_token_refreshes_total{result="ok",source="acme"}`
		tokErr = `kdbridge_source_token_refreshes_total{result="error",source="acme"}`
		caught = `kdbridge_source_catchup_messages_total{source="acme"}`
		retry  = `kdbridge_deliveries_total{outcome="retry",sink="hook"}`
	)

	// First life: the token endpoint fails once, then the receiver fails.
	sim.FailTokens(1, http.StatusServiceUnavailable)
	addr := freeAddr(t)
	d := startDaemon(t, "-config", config(addr))
	waitFor(t, "/readyz to say ready", 15*time.Second, func() bool { return httpGet(t, "http://"+addr+"/readyz") == "ready\n" })
	if got := httpGet(t, "http://"+addr+"/metrics"); !strings.Contains(got, depth+" 0\n") || !strings.Contains(got, oldest+" 0\n") {
		t.Errorf("before any message, /metrics lacks %s 0 and %s 0:\n%s", depth, oldest, grepLines(got, "kdbridge_"))
	}
	if v, w := scrapeValue(t, addr, tokOK), scrapeValue(t, addr, tokErr); v != 1 || w != 1 {
		t.Errorf("token requests: %v ok, %v error; want 1 and 1", v, w)
	}
	firstPost := time.Now()
	postN("first", 5)
	waitFor(t, "10 deliveries queued", 15*time.Second, func() bool { return scrapeValue(t, addr, depth) == 10 })
	waitFor(t, "the oldest to age", 5*time.Second, func() bool { return scrapeValue(t, addr, oldest) > 0 })
	if v := scrapeValue(t, addr, oldest); v > time.Since(firstPost).Seconds()+1 {
		t.Errorf("oldest undelivered %vs, but the first message was posted %v ago", v, time.Since(firstPost))
	}
	if v := scrapeValue(t, addr, retry); v < 1 {
		t.Errorf("%s = %v, want retries counted", retry, v)
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("run returned %v", err)
	}

	// Down: more messages. Second life: its first scrape counts the stored backlog, the
	// missed messages are caught up and join it.
	postN("missed", 2)
	sim.SetTokenLifetime(time.Second)
	addr = freeAddr(t)
	d = startDaemon(t, "-config", config(addr))
	waitFor(t, "/readyz to say ready", 15*time.Second, func() bool { return httpGet(t, "http://"+addr+"/readyz") == "ready\n" })
	waitFor(t, "14 deliveries queued", 15*time.Second, func() bool { return scrapeValue(t, addr, depth) == 14 })
	if v := scrapeValue(t, addr, caught); v < 4 {
		t.Errorf("%s = %v, want the 4 missed messages at least", caught, v)
	}
	// The oldest was stored just after the first message was posted.
	age0 := time.Since(firstPost).Seconds()
	v := scrapeValue(t, addr, oldest)
	if age1 := time.Since(firstPost).Seconds(); v < age0-2 || v > age1 {
		t.Errorf("after the restart the oldest is %vs old, want about %vs: the first message's age", v, age1)
	}

	// A reconnect after the 1 s token's early expiry needs a new token.
	tokens := scrapeValue(t, addr, tokOK)
	lastDrop := time.Time{}
	waitFor(t, "a renewed token", 15*time.Second, func() bool {
		if scrapeValue(t, addr, tokOK) > tokens {
			return true
		}
		if time.Since(lastDrop) > time.Second {
			sim.DropConnections()
			lastDrop = time.Now()
		}
		return false
	})

	// The receiver recovers: everything is delivered and the queue is empty.
	failing.Store(false)
	waitFor(t, "14 deliveries", 30*time.Second, func() bool { return len(recv.deliveries()) >= 14 })
	waitFor(t, "an empty queue", 10*time.Second, func() bool {
		return scrapeValue(t, addr, depth) == 0 && scrapeValue(t, addr, oldest) == 0
	})
	// The store's commits: every event and Done went through one, each writing pages; the
	// attempt history was written too (once a second).
	commits := `kdbridge_store_commit_duration_seconds_count{file="kdbridge.db"}`
	pages := `kdbridge_store_pages_written_total{file="kdbridge.db"}`
	if c, p := scrapeValue(t, addr, commits), scrapeValue(t, addr, pages); c < 1 || p < c {
		t.Errorf("%s = %v, %s = %v: want commits, each writing a page or more", commits, c, pages, p)
	}
	waitFor(t, "a history commit", 5*time.Second, func() bool {
		return scrapeValue(t, addr, `kdbridge_store_commit_duration_seconds_count{file="history.db"}`) >= 1
	})
	if err := d.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(d.stderr.String()))
	}
}

// pacedStub is a sink with flow-control stats, as the Slack sink has.
type pacedStub struct{}

func (pacedStub) Name() string                                   { return "ops-slack" }
func (pacedStub) Deliver(context.Context, bridge.Delivery) error { return nil }
func (pacedStub) Stats() slack.Stats                             { return slack.Stats{PacingWaits: 1} }

var readmeRow = regexp.MustCompile("(?m)^\\| `(kdbridge_[a-z_]+)` \\| ([a-z]+) \\| ([a-z, ]*) \\| .+ \\|$")

// TestREADMEListsEveryMetric: the README's metrics table names every kdbridge_ metric the
// daemon registers, with its type and labels, and nothing that is not registered.
func TestREADMEListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ typ, labels string }
	documented := map[string]row{}
	for _, m := range readmeRow.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = row{m[2], m[3]}
	}

	// Every collector, with a series in every vector and every source and sink kind, so that
	// a scrape shows each metric's type.
	src, err := kinetic.New("acme", kinetic.Config{
		URL: "http://127.0.0.1:1", ClientID: "u", ClientSecret: config.Secret("s"), Discussions: []string{"9fa2b330-fa5e-11e8-88ef-7bbe80231820"},
		Discover: &kinetic.DiscoverConfig{Match: []bridge.MatchRule{{Title: "x*"}}},
	}, kinetic.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(func() []bridge.Source { return []bridge.Source{src} },
		func() []bridge.Sink { return []bridge.Sink{pacedStub{}} },
		func() []bridge.SinkBacklog { return []bridge.SinkBacklog{{Sink: "hook"}} })
	m.registerDisabled(func() map[string]int { return map[string]int{"hook": 0} })
	e := bridge.Event{Type: bridge.MessageCreated, Source: "acme", Time: time.Now()}
	_ = countingEmitter{next: bridge.EmitterFunc(func(context.Context, ...bridge.Event) error { return nil }), m: m}.Emit(t.Context(), e)
	m.observe(bridge.Outcome{Delivery: bridge.Delivery{Event: e, Target: bridge.Target{Sink: "hook"}}})
	m.observe(bridge.Outcome{Delivery: bridge.Delivery{Event: e, Target: bridge.Target{Sink: "hook"}}, Err: errors.New("x"), Dead: true})
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, f := range families {
		types[f.GetName()] = strings.ToLower(f.GetType().String())
	}

	// Names and labels come from the descriptions, which list every metric, with a series
	// or not.
	descs := make(chan *prometheus.Desc, 100)
	for _, c := range m.own {
		c.Describe(descs)
	}
	close(descs)
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	registered := map[string]bool{}
	for d := range descs {
		parts := descRE.FindStringSubmatch(d.String())
		if parts == nil {
			t.Fatalf("cannot read the description %s", d)
		}
		name, labels := parts[1], strings.Split(parts[2], ",")
		registered[name] = true
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s is registered but not in the README's metrics table", name)
			continue
		}
		docLabels := strings.Split(strings.ReplaceAll(doc.labels, " ", ""), ",")
		slices.Sort(labels)
		slices.Sort(docLabels)
		if !slices.Equal(labels, docLabels) {
			t.Errorf("%s: labels %v, the README says %v", name, labels, docLabels)
		}
		if typ, ok := types[name]; ok && typ != doc.typ {
			t.Errorf("%s is a %s, the README says %s", name, typ, doc.typ)
		}
	}
	for name := range documented {
		if !registered[name] {
			t.Errorf("the README documents %s, which is not registered", name)
		}
	}
	if len(documented) < 20 {
		t.Errorf("read only %d rows of the README's metrics table: has its layout changed?", len(documented))
	}
}

// Issue 17.3: a discussion the server removed kdbridge from is shown as removed on /readyz
// (still ready: it is someone's decision, not a fault) and in the subscriptions metric, and
// a reload subscribes it again.
func TestRemovedDiscussionShown(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	t.Cleanup(sim.Close)
	recv := newTestReceiver(t)
	ids := []string{
		sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"}).ID,
		sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"}).ID,
	}
	addr := freeAddr(t)
	cfg := writeConfig(t, listenAt(bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), ids), addr))
	d := startDaemon(t, "-config", cfg)
	base := "http://" + addr
	waitFor(t, "/readyz to say ready", 15*time.Second, func() bool { return httpGet(t, base+"/readyz") == "ready\n" })

	sim.Unsubscribe(ids[0])
	removed := `kdbridge_source_subscriptions{source="acme",state="removed"}`
	waitFor(t, "the removal in the metric", 15*time.Second, func() bool { return scrapeValue(t, addr, removed) == 1 })
	body := httpGet(t, base+"/readyz")
	if !strings.HasPrefix(body, "ready\n") || !strings.Contains(body, "discussion "+ids[0]+": removed") {
		t.Errorf("/readyz after the removal:\n%s", body)
	}
	resp, err := http.Post(base+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "subscribed again after the reload", 15*time.Second, func() bool {
		return scrapeValue(t, addr, removed) == 0 && httpGet(t, base+"/readyz") == "ready\n"
	})
	if err := d.stop(t); err != nil {
		t.Fatalf("run returned %v", err)
	}
}
