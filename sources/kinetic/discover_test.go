package kinetic

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

func TestGlobLiteral(t *testing.T) {
	for pattern, want := range map[string]string{
		"Incident *":          "Incident",
		"*":                   "",
		"":                    "",
		"exact title":         "exact title",
		"a*longest part*b":    "longest part",
		"inc?dent [0-9]* ops": "dent",
		`100\% \*sure\*`:      `100% *sure*`,
		"[ab]cd[!x]efgh":      "efgh",
		`x[\]]yy`:             "yy",
		"Ops / Incident*":     "Ops / Incident",
		"  padded  *":         "padded",
	} {
		if got := globLiteral(pattern); got != want {
			t.Errorf("globLiteral(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestTitleMatches(t *testing.T) {
	tests := []struct {
		pattern, title string
		want           bool
	}{
		{"Incident *", "Incident 42", true},
		{"Incident *", "INCIDENT 42", true},
		{"incident *", "Incident 2024/05/01 db down", true}, // '/' is not special in titles
		{"Incident *", "Major Incident 42", false},
		{"Incident *", "Incident", false},
		{"*outage*", "Network OUTAGE east", true},
		{"Change [0-9]*", "Change 7: deploy", true},
		{"Change [0-9]*", "Change x", false},
		{"a/b", "A/B", true},
		{`a\/b`, "a/b", true},
		{"?", "é", true},
		{"*", "", true},
	}
	for _, tt := range tests {
		if got := bridge.TitleMatches(tt.pattern, tt.title); got != tt.want {
			t.Errorf("bridge.TitleMatches(%q, %q) = %t, want %t", tt.pattern, tt.title, got, tt.want)
		}
	}
}

func TestDiscoverQueries(t *testing.T) {
	rel := func(typ, key string) *bridge.RelatedItem { return &bridge.RelatedItem{Type: typ, Key: key} }
	tests := []struct {
		name  string
		rules []bridge.MatchRule
		want  []string // encoded queries, in order
	}{
		{"title literal", []bridge.MatchRule{{Title: "Incident *"}}, []string{"title=Incident"}},
		{"related", []bridge.MatchRule{{Related: rel("Submission", "")}, {Related: rel("Form", "services/it")}},
			[]string{"type=Submission", "key=services%2Fit&type=Form"}},
		{"both in one rule", []bridge.MatchRule{{Related: rel("Team", ""), Title: "*ops*"}}, []string{"title=ops&type=Team"}},
		{"identical merged", []bridge.MatchRule{{Title: "Incident *"}, {Title: "incident*"}, {Title: "Incident ?"}},
			[]string{"title=Incident", "title=incident"}},
		{"an unfiltered title rule serves all title rules", []bridge.MatchRule{{Title: "Incident *"}, {Title: "*"}, {Related: rel("Team", "")}},
			[]string{"", "type=Team"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc := DiscoverConfig{Match: tt.rules}
			var got []string
			n := 0
			for _, q := range dc.queries() {
				got = append(got, q.q.Encode())
				n += len(q.rules)
			}
			if !slices.Equal(got, tt.want) || n != len(tt.rules) {
				t.Errorf("queries = %q (%d rules), want %q (%d)", got, n, tt.want, len(tt.rules))
			}
		})
	}
}

func TestMatchRule(t *testing.T) {
	d := listedDiscussion{ID: "x", Title: "Incident 9", Related: []bridge.RelatedItem{{Type: "Submission", Key: "s-1"}}}
	for _, tt := range []struct {
		rule bridge.MatchRule
		d    listedDiscussion
		want bool
	}{
		{bridge.MatchRule{Title: "incident*"}, d, true},
		{bridge.MatchRule{Related: &bridge.RelatedItem{Type: "Submission"}}, d, true},
		{bridge.MatchRule{Related: &bridge.RelatedItem{Type: "Submission", Key: "s-1"}, Title: "Incident *"}, d, true},
		{bridge.MatchRule{Related: &bridge.RelatedItem{Type: "Submission", Key: "s-2"}}, d, false}, // a server that ignored key
		{bridge.MatchRule{Related: &bridge.RelatedItem{Type: "Team"}}, d, false},
		{bridge.MatchRule{Related: &bridge.RelatedItem{Type: "Team"}}, listedDiscussion{ID: "y"}, true}, // no relatedItems listed: the server's filter is trusted
		{bridge.MatchRule{Related: &bridge.RelatedItem{Type: "Submission"}, Title: "Change *"}, d, false},
	} {
		if got := matches(tt.rule, tt.d); got != tt.want {
			t.Errorf("%+v matches %+v = %t, want %t", tt.rule, tt.d, got, tt.want)
		}
	}
}

// withDiscover turns discovery on with rules, polling every 50 ms.
func withDiscover(dc DiscoverConfig) harnessOpt {
	return func(c *Config, o *Options, tm *timing) {
		c.Discover = &dc
		tm.discoverEvery = 50 * time.Millisecond
	}
}

// waitPolled waits for a successful poll that ended after the call, and for the clock to
// move past it (timestamps have millisecond precision).
func (h *harness) waitPolled() {
	h.t.Helper()
	since := time.Now()
	h.waitStatus("a discovery poll", func(st Status) bool {
		return st.LastDiscovery.After(since) && st.DiscoveryError == "" && time.Since(st.LastDiscovery) > 2*time.Millisecond
	})
}

// The discovery scenario: a discussion created while running is picked up, with the
// messages posted before the poll found it; archived and deleted ones are dropped, but not
// a configured one; none of it costs the connection.
func TestDiscoveryPicksUpAndDrops(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	incident := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 1"})
	change := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Change 7",
		Related: []kinetictest.RelatedItem{{Type: "Submission", Key: "sub-1"}}})
	srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Lunch"})
	static := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident static"})
	post(t, srv, incident.ID, "history", 3)
	post(t, srv, change.ID, "history", 2)

	h := start(t, srv, []string{static.ID}, withDiscover(DiscoverConfig{Match: []bridge.MatchRule{
		{Title: "incident *"},
		{Related: &bridge.RelatedItem{Type: "Submission"}},
	}}))
	st := h.waitStatus("the matches subscribed", func(st Status) bool {
		return st.Ready() && len(st.Discussions) == 3
	})
	// Configured first, then discovered (oldest first; these two may share a millisecond).
	if ids := statusIDs(st); ids[0] != static.ID || !slices.Contains(ids, incident.ID) || !slices.Contains(ids, change.ID) ||
		st.Discussions[0].Discovered || !st.Discussions[1].Discovered || !st.Discussions[2].Discovered || st.Discovered != 3 {
		t.Fatalf("status = %+v", st)
	}
	base := srv.Stats()
	h.waitPolled()

	// Created while running, with messages before the next poll: all of them arrive.
	fresh := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "INCIDENT 2/east"})
	wantFresh := post(t, srv, fresh.ID, "early", 4)
	h.waitStatus("the new discussion subscribed", func(st Status) bool {
		return st.Ready() && slices.Contains(statusIDs(st), fresh.ID)
	})
	wantFresh = append(wantFresh, post(t, srv, fresh.ID, "live", 2)...)
	wantIncident := post(t, srv, incident.ID, "live", 2)
	wantChange := post(t, srv, change.ID, "live", 2)
	wantStatic := post(t, srv, static.ID, "live", 2)
	h.waitMessages(fresh.ID, len(wantFresh))
	h.waitMessages(incident.ID, 2)
	h.waitMessages(change.ID, 2)
	h.waitMessages(static.ID, 2)

	// Archived and deleted: dropped. The configured one stays, archived or not.
	if err := srv.ArchiveDiscussion(change.ID); err != nil {
		t.Fatal(err)
	}
	if err := srv.DeleteDiscussion(incident.ID); err != nil {
		t.Fatal(err)
	}
	if err := srv.ArchiveDiscussion(static.ID); err != nil {
		t.Fatal(err)
	}
	st = h.waitStatus("archived and deleted dropped", func(st Status) bool {
		return slices.Equal(statusIDs(st), []string{static.ID, fresh.ID})
	})
	h.waitPolled()
	eventually(t, "the unsubscribe", func() bool { return len(h.logs.lines("kinetic: unsubscribed", "discussion="+change.ID)) == 1 })
	if st := srv.Stats(); st.Subscriptions != 2 || st.Unsubscribes != base.Unsubscribes+1 || st.ConnectionsTotal != base.ConnectionsTotal {
		// The deleted discussion needs no unsubscribe: the server ended it (`unsubscribed`).
		t.Errorf("subscriptions %d, unsubscribes %d→%d, connections %d→%d",
			st.Subscriptions, base.Unsubscribes, st.Unsubscribes, base.ConnectionsTotal, st.ConnectionsTotal)
	}
	for _, id := range []string{change.ID, incident.ID} {
		if n := len(h.logs.lines("kinetic: discussion no longer discovered", "discussion="+id)); n != 1 {
			t.Errorf("%d 'no longer discovered' lines for %s, want 1", n, id)
		}
	}
	if st := h.src.Status(); st.Discovered != 1 || st.LastDiscovery.IsZero() || st.DiscoveryError != "" {
		t.Errorf("discovery status: %d %s %q", st.Discovered, st.LastDiscovery, st.DiscoveryError)
	}

	wantFresh = append(wantFresh, post(t, srv, fresh.ID, "end", 1)...)
	h.waitMessages(fresh.ID, len(wantFresh))
	evs := h.rec.all()
	exactlyOnce(t, evs, fresh.ID, wantFresh)
	exactlyOnce(t, evs, incident.ID, wantIncident)
	exactlyOnce(t, evs, change.ID, wantChange)
	exactlyOnce(t, evs, static.ID, wantStatic)
	if n := len(h.logs.lines("kinetic: discussion discovered", "discussion="+fresh.ID, "history=\"all")); n != 1 {
		t.Errorf("%d 'discovered' lines for the new discussion with its history, want 1", n)
	}
}

// A poll that fails keeps the current set; one line says so, and one that it recovered.
func TestDiscoveryFailureKeepsSet(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 1"})
	h := start(t, srv, nil, withDiscover(DiscoverConfig{Match: []bridge.MatchRule{{Title: "Incident*"}}}))
	h.waitStatus("discovered", func(st Status) bool { return st.Ready() && len(st.Discussions) == 1 })

	srv.FailREST(1<<30, http.StatusServiceUnavailable)
	h.waitStatus("polls failing", func(st Status) bool { return st.DiscoveryError != "" })
	eventually(t, "several failed polls", func() bool {
		return len(h.logs.lines("level=DEBUG", "kinetic: discovery failed")) >= 2
	})
	if st := h.src.Status(); !st.Ready() || !slices.Equal(statusIDs(st), []string{d.ID}) {
		t.Errorf("status while failing = %+v", st)
	}
	if n := len(h.logs.lines("level=WARN", "kinetic: discovery failed, keeping the current discussions", "503")); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
	srv.FailREST(0, 0)
	h.waitStatus("recovered", func(st Status) bool { return st.DiscoveryError == "" })
	eventually(t, "the recovery line", func() bool { return len(h.logs.lines("kinetic: discovery recovered")) == 1 })
	want := post(t, srv, d.ID, "m", 2)
	h.waitMessages(d.ID, 2)
	exactlyOnce(t, h.rec.all(), d.ID, want)
	if n := srv.Stats().Unsubscribes; n != 0 {
		t.Errorf("%d unsubscribes", n)
	}
}

// Every page is read, with the server doing the related-item filtering.
func TestDiscoveryPaging(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	var want []string
	for i := range 7 {
		d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("request ", i),
			Related: []kinetictest.RelatedItem{{Type: "Submission", Key: fmt.Sprint("s", i)}}})
		want = append(want, d.ID)
		srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("team ", i),
			Related: []kinetictest.RelatedItem{{Type: "Team", Key: "ops"}}})
	}
	h := start(t, srv, nil, withDiscover(DiscoverConfig{Match: []bridge.MatchRule{{Related: &bridge.RelatedItem{Type: "Submission"}}}}),
		func(c *Config, o *Options, tm *timing) { c.PageSize = 2 })
	st := h.waitStatus("all pages", func(st Status) bool { return st.Ready() && len(st.Discussions) == 7 })
	if ids := statusIDs(st); !slices.Equal(ids, want) {
		t.Errorf("discovered %v, want %v", ids, want)
	}
}

// A discovered discussion refused by the server is retried on the slow schedule, and one
// ended by the server stays removed while discovery keeps listing it, until a reload; both
// are counted, like a configured one.
func TestDiscoveredRefusedAndEvicted(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 1"})
	h := start(t, srv, nil, withDiscover(DiscoverConfig{Match: []bridge.MatchRule{{Title: "Incident*"}}}),
		func(c *Config, o *Options, tm *timing) { tm.discoverEvery = time.Hour }) // one poll only: Forbid hides it from the list
	h.waitStatus("discovered", func(st Status) bool { return st.Ready() && len(st.Discussions) == 1 })
	want := post(t, srv, d.ID, "m", 1)
	h.waitMessages(d.ID, 1)

	srv.Unsubscribe(d.ID)
	h.waitStatus("evicted", func(st Status) bool { return st.Evictions == 1 && st.Discussions[0].State == StateRemoved })
	want = append(want, post(t, srv, d.ID, "gap", 2)...)
	h.src.RetryRemoved()
	h.waitReady()
	h.waitMessages(d.ID, len(want))

	srv.Forbid(testClientID, d.ID)
	srv.DropConnections()
	h.waitStatus("refused twice", func(st Status) bool {
		return st.Refusals >= 2 && len(st.Discussions) == 1 && st.Discussions[0].State == StateRefused
	})
	if n := len(h.logs.lines("level=WARN", "kinetic: subscribe refused", "discussion="+d.ID)); n != 1 {
		t.Errorf("%d refusal warnings, want 1", n)
	}
	srv.Allow(testClientID, d.ID)
	want = append(want, post(t, srv, d.ID, "after", 2)...)
	h.waitReady()
	h.waitMessages(d.ID, len(want))
	exactlyOnce(t, h.rec.all(), d.ID, want)
}

// The watermark survives a restart: a matching discussion created while kdbridge was down
// has its whole history emitted; one that existed before discovery started does not.
func TestDiscoveryAfterRestart(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	old := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident old"})
	post(t, srv, old.ID, "history", 2)
	lunch := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Lunch"})
	cps := &MemoryCheckpoints{}
	opts := []harnessOpt{
		withDiscover(DiscoverConfig{Match: []bridge.MatchRule{{Title: "Incident*"}}}),
		func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps },
	}
	h1 := start(t, srv, nil, opts...)
	h1.waitStatus("discovered", func(st Status) bool { return st.Ready() && len(st.Discussions) == 1 })
	h1.waitPolled()
	h1.stop()

	down := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident new"})
	want := post(t, srv, down.ID, "while-down", 3)
	// A discussion that existed before discovery started and matches only now: from now.
	if _, err := srv.UpdateDiscussion(lunch.ID, map[string]any{"title": "Incident at lunch"}); err != nil {
		t.Fatal(err)
	}
	post(t, srv, lunch.ID, "while-down", 2)

	h2 := start(t, srv, nil, opts...)
	h2.waitStatus("all three discovered", func(st Status) bool { return st.Ready() && len(st.Discussions) == 3 })
	wantLunch := post(t, srv, lunch.ID, "live", 1)
	h2.waitMessages(down.ID, 3)
	h2.waitMessages(lunch.ID, 1)
	exactlyOnce(t, h2.rec.all(), down.ID, want)
	exactlyOnce(t, h2.rec.all(), lunch.ID, wantLunch)
	exactlyOnce(t, h2.rec.all(), old.ID, nil)
	if cp, ok, _ := cps.Checkpoint(t.Context(), "acme", watermarkKey); !ok || cp.CreatedAt.After(h1.src.Status().LastDiscovery) {
		t.Errorf("watermark %+v, %t", cp, ok)
	}
}

// The title filter sent to the server is the glob's literal; the glob is applied here.
func TestDiscoveryTitleQuery(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	match := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 12 db"})
	srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Post-incident review"}) // has the literal, fails the glob
	h := start(t, srv, nil, withDiscover(DiscoverConfig{Match: []bridge.MatchRule{{Title: "incident [0-9]*"}}}))
	st := h.waitStatus("discovered", func(st Status) bool { return st.Ready() && st.Discovered > 0 })
	if ids := statusIDs(st); !slices.Equal(ids, []string{match.ID}) {
		t.Errorf("discovered %v, want only %s", ids, match.ID)
	}
	dc := DiscoverConfig{Match: []bridge.MatchRule{{Title: "incident [0-9]*"}}}
	q := dc.queries()
	if len(q) != 1 || q[0].q.Encode() != (url.Values{"title": {"incident"}}).Encode() {
		t.Errorf("queries %+v", q)
	}
}

// TestEventsCarryRelatedItems: every event names what its discussion is about, as read at
// subscribe and kept current by relatedItem events, so that routes can select by it.
func TestEventsCarryRelatedItems(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	sub := kinetictest.RelatedItem{Type: "Submission", Key: "s-42"}
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 42", Related: []kinetictest.RelatedItem{sub}})
	h := start(t, srv, []string{d.ID})
	h.waitReady()

	post(t, srv, d.ID, "before", 1)
	first := h.waitMessages(d.ID, 1)[0]
	want := []bridge.RelatedItem{{Type: "Submission", Key: "s-42"}}
	if first.Discussion.Title != "Incident 42" || !slices.Equal(first.Discussion.Related, want) {
		t.Fatalf("discussion of the first event = %+v, want title Incident 42 and %v", first.Discussion, want)
	}

	team := kinetictest.RelatedItem{Type: "Team", Key: "ops"}
	if err := srv.AddRelatedItem(d.ID, team); err != nil {
		t.Fatal(err)
	}
	post(t, srv, d.ID, "after", 1)
	second := h.waitMessages(d.ID, 2)[1]
	want = append(want, bridge.RelatedItem{Type: "Team", Key: "ops"})
	if !slices.Equal(second.Discussion.Related, want) {
		t.Errorf("related items after relatedItem.created = %v, want %v", second.Discussion.Related, want)
	}
	if len(first.Discussion.Related) != 1 {
		t.Errorf("an event already handed over changed: %v", first.Discussion.Related)
	}
}

// Issue 17.6: a discovery that finds nothing says so once, with the likely reason (the list
// may hold only the discussions the user is involved in), and again only after it found
// something in between.
func TestDiscoveryFindsNoneWarns(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	h := start(t, srv, nil, withDiscover(DiscoverConfig{Match: []bridge.MatchRule{{Title: "Incident*"}}}))
	const warning = "kinetic: discovery found no matching discussion"
	h.waitStatus("a few polls", func(st Status) bool { return !st.LastDiscovery.IsZero() })
	eventually(t, "three more polls", func() bool { return len(h.logs.lines("kinetic: discovery poll")) >= 4 })
	lines := h.logs.lines("level=WARN", warning, "involved in", "user="+testClientID)
	if len(lines) != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", len(lines), h.logs.String())
	}

	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 9"})
	h.waitStatus("the discussion discovered", func(st Status) bool { return st.Ready() && len(st.Discussions) == 1 })
	if err := srv.DeleteDiscussion(d.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second warning", func() bool { return len(h.logs.lines("level=WARN", warning)) == 2 })
}
