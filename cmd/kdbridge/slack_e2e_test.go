package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// The Slack end-to-end tests run the real `run` command in-process against the Kinetic
// simulator and the slacktest fake of the Slack Web API, both on loopback, and check what
// the fake received. They run in parallel with each other; the pacing test is the slow one
// (about 18 s: 21 posts at Slack's 1/s).

const slackToken = "xoxb-4242-4242-e2eTokenThatMustNeverBeLogged"

// wordJoiner is what the sink writes after the '@' of a broadcast word (@here) to defuse it.
const wordJoiner = "\u2060"

var alice = kinetictest.User{Username: "alice", DisplayName: "Alice Moreau", Email: "alice@example.com"}

// slackRig is one test's world: a Kinetic simulator, a Slack fake and a state directory.
type slackRig struct {
	sim   *kinetictest.Server
	slack *slacktest.Server
	state string
}

func newSlackRig(t *testing.T, opts slacktest.Options) *slackRig {
	t.Helper()
	sim := kinetictest.NewServer(kinetictest.Options{})
	t.Cleanup(sim.Close)
	if opts.Token == "" {
		opts.Token = slackToken
	}
	fake := slacktest.NewServer(opts)
	t.Cleanup(fake.Close)
	return &slackRig{sim: sim, slack: fake, state: t.TempDir()}
}

// discussions creates discussions with these titles and returns their ids.
func (r *slackRig) discussions(titles ...string) []string {
	var ids []string
	for _, title := range titles {
		ids = append(ids, r.sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: title}).ID)
	}
	return ids
}

// config writes a configuration that bridges the discussions ids to the sinks and routes
// given as YAML list items (indented by two spaces). In sinks, {api} is the fake's URL and
// {token} the token it accepts.
func (r *slackRig) config(t *testing.T, listen string, ids []string, sinks, routes string) string {
	t.Helper()
	sinks = strings.NewReplacer("{api}", r.slack.URL(), "{token}", r.slack.Token()).Replace(sinks)
	return writeConfig(t, fmt.Sprintf(`
log: {level: debug}
http: {listen: %q}
state: {dir: %q}
sources:
  - name: acme
    type: kinetic
    url: %s
    client_id: integration-user
    client_secret: integration-secret
    discussions: [%s]
sinks:
%s
routes:
%s
`, listen, r.state, r.sim.URL(), strings.Join(ids, ", "), sinks, routes))
}

// slackDaemon is kdbridge's `run` command running in-process until stopped.
type slackDaemon struct {
	log    syncBuffer // stdout and stderr
	done   chan error // receives run's result, once
	cancel context.CancelFunc
	err    error
	exited bool
}

// start runs the daemon and waits until it has subscribed to n more discussions than before.
// The test's cleanup stops it if the test does not.
func (r *slackRig) start(t *testing.T, cfg string, n int) *slackDaemon {
	t.Helper()
	before := r.sim.Stats().Subscribes
	ctx, cancel := context.WithCancel(context.Background())
	d := &slackDaemon{done: make(chan error, 1), cancel: cancel}
	go func() { d.done <- run(ctx, []string{"run", "-config", cfg}, &d.log, &d.log) }()
	t.Cleanup(func() { _ = d.stop(t) })
	waitFor(t, fmt.Sprintf("%d subscriptions", n), 15*time.Second, func() bool {
		select {
		case err := <-d.done:
			d.exited, d.err = true, err
			t.Fatalf("daemon exited: %v\n%s", err, tail(d.log.String()))
		default:
		}
		return r.sim.Stats().Subscribes >= before+int64(n)
	})
	return d
}

// stop cancels the daemon's context, as SIGTERM does, and returns what run returned.
func (d *slackDaemon) stop(t *testing.T) error {
	t.Helper()
	if d.exited {
		return d.err
	}
	d.cancel()
	select {
	case d.err = <-d.done:
		d.exited = true
		return d.err
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop within 20s; log:\n%s", tail(d.log.String()))
		return nil
	}
}

func (r *slackRig) post(t *testing.T, discussion, text string) kinetictest.Message {
	t.Helper()
	m, err := r.sim.PostMessage(discussion, alice, text)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stopAndCheckLogs stops the daemon and fails the test if its log holds a secret.
func stopAndCheckLogs(t *testing.T, d *slackDaemon, secrets ...string) {
	t.Helper()
	if err := d.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
	logs := d.log.String()
	if !strings.Contains(logs, "kdbridge started") {
		t.Errorf("the daemon log is not what the test expects:\n%s", tail(logs))
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the daemon's log contains a Slack token")
		}
	}
	if t.Failed() {
		t.Logf("daemon log (end):\n%s", tail(logs))
	}
}

func tail(s string) string {
	const n = 12_000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// posted returns the successful chat.postMessage calls to channel, in order of arrival.
func posted(f *slacktest.Server, channel string) []slacktest.Call {
	var out []slacktest.Call
	for _, c := range f.CallsOf("chat.postMessage") {
		if c.OK() && c.Channel() == channel {
			out = append(out, c)
		}
	}
	return out
}

// thread is a channel as a reader sees it: top-level messages with their replies.
type thread struct {
	parent  slacktest.Message
	replies []slacktest.Message
}

func threads(f *slacktest.Server, channel string) []thread {
	var out []thread
	at := map[string]int{}
	for _, m := range f.Messages(channel) {
		if m.ThreadTS == "" {
			at[m.TS] = len(out)
			out = append(out, thread{parent: m})
			continue
		}
		if i, ok := at[m.ThreadTS]; ok {
			out[i].replies = append(out[i].replies, m)
		}
	}
	return out
}

func texts(ms []slacktest.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// headerOf matches the thread parent the sink posts for a discussion: "*<url|title>*".
func headerOf(id, escapedTitle string) *regexp.Regexp {
	return regexp.MustCompile(`^\*<http://127\.0\.0\.1:\d+/#/discussions/` + regexp.QuoteMeta(id) + `\|` + regexp.QuoteMeta(escapedTitle) + `>\*$`)
}

// TestSlackThreadsPerDiscussion: each discussion gets one thread parent in the channel and
// its messages as replies under it (threads: discussion); with threads: replies, a Kinetic
// reply becomes a Slack thread reply to its parent's copy.
func TestSlackThreadsPerDiscussion(t *testing.T) {
	t.Parallel()
	r := newSlackRig(t, slacktest.Options{Channels: []slacktest.Channel{{ID: "C0OPS0001", Name: "ops"}, {ID: "C0REPLY01", Name: "replies"}}})
	ids := r.discussions("Incident A", "Incident B")
	cfg := r.config(t, "127.0.0.1:0", ids, `
  - name: ops-slack
    type: slack
    token: {token}
    api_url: {api}
    channel: C0OPS0001
  - name: reply-slack
    type: slack
    token: {token}
    api_url: {api}
    channel: "#replies"
    threads: replies`, `
  - name: all
    to: [ops-slack, reply-slack]`)
	d := r.start(t, cfg, 2)

	a, b := ids[0], ids[1]
	r.post(t, a, "a1")
	b1 := r.post(t, b, "b1")
	r.post(t, a, "a2")
	if _, err := r.sim.PostReply(b, b1.ID, alice, "b2 answers b1"); err != nil {
		t.Fatal(err)
	}
	r.post(t, a, "a3")
	waitFor(t, "7 posts in #ops and 5 in #replies", 20*time.Second, func() bool {
		return len(posted(r.slack, "C0OPS0001")) >= 7 && len(posted(r.slack, "C0REPLY01")) >= 5
	})

	ops := threads(r.slack, "C0OPS0001")
	if len(ops) != 2 {
		t.Fatalf("#ops has %d top-level messages, want 2 thread parents: %+v", len(ops), r.slack.Messages("C0OPS0001"))
	}
	// The two discussions are delivered concurrently: either parent may come first.
	for _, want := range []struct {
		id, title string
		replies   []string
	}{{a, "Incident A", []string{"a1", "a2", "a3"}}, {b, "Incident B", []string{"b1", "b2 answers b1"}}} {
		i := slices.IndexFunc(ops, func(x thread) bool { return headerOf(want.id, want.title).MatchString(x.parent.Text) })
		if i < 0 {
			t.Errorf("no thread parent for %q among %+v", want.title, ops)
			continue
		}
		th := ops[i]
		if th.parent.Username != "" {
			t.Errorf("thread parent %q posted as %q, want the bot", th.parent.Text, th.parent.Username)
		}
		if got := texts(th.replies); !slices.Equal(got, want.replies) {
			t.Errorf("replies under %q = %q, want %q", want.title, got, want.replies)
		}
		for _, m := range th.replies {
			if m.Username != "Alice Moreau" {
				t.Errorf("reply %q posted as %q, want the author's name", m.Text, m.Username)
			}
		}
	}
	if n := len(posted(r.slack, "C0OPS0001")); n != 7 {
		t.Errorf("%d posts in #ops, want 7 (each once)", n)
	}

	// threads: replies — only the Kinetic reply is threaded, under b1's copy.
	rep := r.slack.Messages("C0REPLY01")
	byText := map[string]slacktest.Message{}
	for _, m := range rep {
		byText[m.Text] = m
	}
	if len(rep) != 5 || byText["b2 answers b1"].ThreadTS != byText["b1"].TS || byText["b1"].TS == "" {
		t.Errorf("#replies = %+v", rep)
	}
	for _, txt := range []string{"a1", "b1", "a2", "a3"} {
		if byText[txt].ThreadTS != "" {
			t.Errorf("%q threaded in replies mode", txt)
		}
	}
	// The channel given by name was resolved once.
	if n := len(r.slack.CallsOf("conversations.list")); n != 1 {
		t.Errorf("%d conversations.list calls, want 1", n)
	}
	stopAndCheckLogs(t, d, slackToken)
}

// TestSlackEditDeleteAcrossRestart: edits and deletes hit the ts of the message's copy, also
// after the daemon restarts on the same state directory, and so does a rename of the thread
// parent; new messages after the restart join the existing thread.
func TestSlackEditDeleteAcrossRestart(t *testing.T) {
	t.Parallel()
	const ch = "C0OPS0001"
	r := newSlackRig(t, slacktest.Options{Channels: []slacktest.Channel{{ID: ch, Name: "ops"}}})
	ids := r.discussions("Outage")
	disc := ids[0]
	cfg := r.config(t, "127.0.0.1:0", ids, `
  - name: ops-slack
    type: slack
    token: {token}
    api_url: {api}
    channel: C0OPS0001`, `
  - name: all
    events: ["message.*", discussion.updated]
    to: [ops-slack]`)
	first := r.start(t, cfg, 1)

	var ms []kinetictest.Message
	for i := 1; i <= 4; i++ {
		ms = append(ms, r.post(t, disc, fmt.Sprintf("m%d", i)))
	}
	waitFor(t, "the parent and 4 replies", 15*time.Second, func() bool { return len(posted(r.slack, ch)) >= 5 })
	posts := posted(r.slack, ch)
	parentTS := posts[0].TS
	tsOf := map[string]string{}
	for _, c := range posts[1:] {
		tsOf[c.Param("text")] = c.TS
	}

	// Before the restart.
	if _, err := r.sim.UpdateMessage(disc, ms[0].ID, "m1 edited"); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.DeleteMessage(disc, ms[1].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an update and a delete", 15*time.Second, func() bool {
		return len(r.slack.CallsOf("chat.update")) >= 1 && len(r.slack.CallsOf("chat.delete")) >= 1
	})
	stopAndCheckLogs(t, first, slackToken)

	// After the restart, on messages and a parent posted before it.
	second := r.start(t, cfg, 1)
	if _, err := r.sim.UpdateMessage(disc, ms[2].ID, "m3 edited after the restart"); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.DeleteMessage(disc, ms[3].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.sim.UpdateDiscussion(disc, map[string]any{"title": "Outage (resolved)"}); err != nil {
		t.Fatal(err)
	}
	r.post(t, disc, "m5")
	waitFor(t, "3 updates, 2 deletes and m5", 15*time.Second, func() bool {
		return len(r.slack.CallsOf("chat.update")) >= 3 && len(r.slack.CallsOf("chat.delete")) >= 2 && len(posted(r.slack, ch)) >= 6
	})
	stopAndCheckLogs(t, second, slackToken)

	type call struct{ ts, text string }
	var updates, deletes []call
	for _, c := range r.slack.CallsOf("chat.update") {
		if c.Channel() != ch || !c.OK() {
			t.Errorf("chat.update %+v", c)
		}
		updates = append(updates, call{c.Param("ts"), c.Param("text")})
	}
	for _, c := range r.slack.CallsOf("chat.delete") {
		if c.Channel() != ch || !c.OK() {
			t.Errorf("chat.delete %+v", c)
		}
		deletes = append(deletes, call{c.Param("ts"), ""})
	}
	if len(updates) != 3 || updates[0] != (call{tsOf["m1"], "m1 edited"}) || updates[1] != (call{tsOf["m3"], "m3 edited after the restart"}) ||
		updates[2].ts != parentTS || !headerOf(disc, "Outage (resolved)").MatchString(updates[2].text) {
		t.Errorf("chat.update calls = %q\nwant m1 at %s, m3 at %s, the parent at %s", updates, tsOf["m1"], tsOf["m3"], parentTS)
	}
	if len(deletes) != 2 || deletes[0].ts != tsOf["m2"] || deletes[1].ts != tsOf["m4"] {
		t.Errorf("chat.delete calls = %q, want m2 at %s, then m4 at %s", deletes, tsOf["m2"], tsOf["m4"])
	}
	th := threads(r.slack, ch)
	if len(th) != 1 || th[0].parent.TS != parentTS || !slices.Equal(texts(th[0].replies), []string{"m1 edited", "m3 edited after the restart", "m5"}) {
		t.Errorf("the channel shows %+v", th)
	}
	if n := len(r.slack.CallsOf("chat.postMessage")); n != 6 {
		t.Errorf("%d chat.postMessage calls, want 6 (no second parent, nothing reposted)", n)
	}
}

// TestSlackHostileTextIsInert: text that would broadcast, mention or format in Slack arrives
// as the same words, escaped and inert; only the sink's own link and a looked-up mention are
// control sequences.
func TestSlackHostileTextIsInert(t *testing.T) {
	t.Parallel()
	const ch = "C0OPS0001"
	r := newSlackRig(t, slacktest.Options{
		Channels: []slacktest.Channel{{ID: ch, Name: "ops"}},
		Users:    []slacktest.User{{ID: "U0BOB0001", Email: "bob@example.com", Name: "bob"}},
	})
	ids := r.discussions("Q3 <!here> & plans")
	cfg := r.config(t, "127.0.0.1:0", ids, `
  - name: ops-slack
    type: slack
    token: {token}
    api_url: {api}
    channel: C0OPS0001
    mention_users: email`, `
  - name: all
    to: [ops-slack]`)
	d := r.start(t, cfg, 1)

	r.post(t, ids[0], "<!channel> @here & <b>hi</b>")
	if _, err := r.sim.PostContent(ids[0], alice, "", kinetictest.TextToken("ping"),
		kinetictest.UserToken("", kinetictest.User{Username: "bob", DisplayName: "Bob", Email: "BOB@example.com"}),
		kinetictest.TextToken("and"), kinetictest.UserToken("", kinetictest.User{Username: "here", DisplayName: "here"})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the parent and 2 messages", 15*time.Second, func() bool { return len(posted(r.slack, ch)) >= 3 })
	stopAndCheckLogs(t, d, slackToken)

	posts := posted(r.slack, ch)
	if !headerOf(ids[0], "Q3 &lt;!here&gt; &amp; plans").MatchString(posts[0].Param("text")) {
		t.Errorf("thread parent = %q", posts[0].Param("text"))
	}
	for i, want := range []string{
		"&lt;!channel&gt; @" + wordJoiner + "here &amp; &lt;b&gt;hi&lt;/b&gt;",
		"ping <@U0BOB0001> and @" + wordJoiner + "here",
	} {
		c := posts[i+1]
		if got := c.Param("text"); got != want {
			t.Errorf("message %d arrived as %q, want %q", i, got, want)
		}
		for k, v := range map[string]string{"parse": "none", "link_names": "false", "unfurl_links": "false", "unfurl_media": "false", "thread_ts": posts[0].TS} {
			if c.Param(k) != v {
				t.Errorf("message %d: %s = %q, want %q", i, k, c.Param(k), v)
			}
		}
	}
}

// TestSlackRateLimitedChannelDoesNotDelayOthers: Slack answers the first write to channel A
// with 429 and Retry-After: 2. Six discussions are routed to A and to B, so that A's queues
// outnumber the sink's workers: B's messages must still arrive within a second of being
// posted, A's after the pause, and every message exactly once on both.
func TestSlackRateLimitedChannelDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	const chA, chB = "C0AAAAAA1", "C0BBBBBB2"
	r := newSlackRig(t, slacktest.Options{Channels: []slacktest.Channel{{ID: chA, Name: "a"}, {ID: chB, Name: "b"}}})
	var titles []string
	for i := range 6 {
		titles = append(titles, fmt.Sprintf("D%d", i))
	}
	ids := r.discussions(titles...)
	// The sink's own pacing is set out of the way: this test is about Slack's 429.
	addr := freeAddr(t)
	cfg := r.config(t, addr, ids, `
  - name: ops-slack
    type: slack
    token: {token}
    api_url: {api}
    rate: 50
    burst: 50
    retry: {initial: 50ms, max_interval: 500ms}`, `
  - name: to-a
    to: [{sink: ops-slack, channel: C0AAAAAA1}]
  - name: to-b
    to: [{sink: ops-slack, channel: C0BBBBBB2}]`)
	d := r.start(t, cfg, len(ids))

	r.slack.RateLimitOnce(chA, 2*time.Second)
	const rounds = 3
	postedAt := map[string]time.Time{}
	for round := range rounds {
		var want []string
		for i, id := range ids {
			text := fmt.Sprintf("r%d-d%d", round, i)
			postedAt[text] = time.Now()
			r.post(t, id, text)
			want = append(want, text)
		}
		// The next round is posted while A is still paused.
		waitFor(t, fmt.Sprintf("round %d in B", round), 10*time.Second, func() bool {
			got := map[string]bool{}
			for _, c := range posted(r.slack, chB) {
				got[c.Param("text")] = true
			}
			return !slices.ContainsFunc(want, func(s string) bool { return !got[s] })
		})
	}
	total := len(ids) * (rounds + 1) // a parent per discussion, then the messages
	waitFor(t, "everything in A", 20*time.Second, func() bool { return len(posted(r.slack, chA)) >= total })
	// The 429s and the deliveries they held back are counted; the queue ends empty.
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return scrapeValue(t, addr, `kdbridge_queue_depth{sink="ops-slack"}`) == 0 })
	scrape := httpGet(t, "http://"+addr+"/metrics")
	if v, _ := metricValue(scrape, `kdbridge_slack_rate_limited_total{sink="ops-slack"}`); v < 1 || v != float64(r.slack.RateLimited(chA)+r.slack.RateLimited(chB)) {
		t.Errorf("kdbridge_slack_rate_limited_total = %v, the fake answered %d 429s", v, r.slack.RateLimited(chA)+r.slack.RateLimited(chB))
	}
	for _, series := range []string{`kdbridge_slack_pacing_deferred_total{reason="paused",sink="ops-slack"}`, `kdbridge_deliveries_total{outcome="paused",sink="ops-slack"}`} {
		if v, _ := metricValue(scrape, series); v < 1 {
			t.Errorf("%s = %v, want the deliveries held back while A was paused", series, v)
		}
	}
	stopAndCheckLogs(t, d, slackToken)

	var slowest time.Duration
	for _, c := range posted(r.slack, chB) {
		if at, ok := postedAt[c.Param("text")]; ok {
			slowest = max(slowest, c.At.Sub(at))
		}
	}
	t.Logf("slowest message to B: %v after posting", slowest.Round(time.Millisecond))
	if slowest > time.Second {
		t.Errorf("a message to B arrived %v after it was posted, more than a second", slowest)
	}

	// A honoured the Retry-After: apart from writes already in flight when the 429 came,
	// nothing reached A for two seconds.
	var first429 time.Time
	var aCalls []slacktest.Call
	for _, c := range r.slack.CallsOf("chat.postMessage") {
		if c.Channel() != chA {
			continue
		}
		aCalls = append(aCalls, c)
		if c.Status == 429 && first429.IsZero() {
			first429 = c.At
		}
	}
	if first429.IsZero() {
		t.Fatal("the fake never answered 429")
	}
	for _, c := range aCalls {
		if since := c.At.Sub(first429); since > 250*time.Millisecond && since < 2*time.Second {
			t.Errorf("a write to A %v after the 429, before Retry-After passed: %s %q", since, c.Error, c.Param("text"))
		}
	}
	if n := r.slack.RateLimited(chB); n != 0 {
		t.Errorf("B was rate-limited %d times", n)
	}

	// Every message exactly once, in order, in its discussion's thread, on both channels.
	for _, ch := range []string{chA, chB} {
		if n := len(posted(r.slack, ch)); n != total {
			t.Errorf("%s: %d posts, want %d (each once)", ch, n, total)
		}
		th := threads(r.slack, ch)
		if len(th) != len(ids) {
			t.Errorf("%s: %d threads, want %d", ch, len(th), len(ids))
			continue
		}
		for _, x := range th {
			i := slices.IndexFunc(ids, func(id string) bool { return strings.Contains(x.parent.Text, id) })
			want := []string{fmt.Sprintf("r0-d%d", i), fmt.Sprintf("r1-d%d", i), fmt.Sprintf("r2-d%d", i)}
			if got := texts(x.replies); !slices.Equal(got, want) {
				t.Errorf("%s: thread of D%d holds %q, want %q", ch, i, got, want)
			}
		}
	}
}

// TestSlackBurstIsPaced: 20 messages posted at once to one channel reach a fake that
// enforces Slack's 1 post per second with bursts of 3, with the sink at its defaults (the
// same numbers): not a single 429, every message once and in order. It takes about 18 s of
// wall time (the thread parent and 20 messages at 1/s after a burst of 3).
func TestSlackBurstIsPaced(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 18 s: Slack's real pace")
	}
	t.Parallel()
	const ch = "C0OPS0001"
	// The tolerance absorbs the scheduling jitter of a loaded machine between the sink's clock
	// and the fake's; a sink that did not pace would meet 17 429s.
	r := newSlackRig(t, slacktest.Options{Channels: []slacktest.Channel{{ID: ch, Name: "ops"}}, RateTolerance: 200 * time.Millisecond})
	r.slack.EnforceRate(1, 3)
	ids := r.discussions("Busy")
	addr := freeAddr(t)
	cfg := r.config(t, addr, ids, `
  - name: ops-slack
    type: slack
    token: {token}
    api_url: {api}
    channel: C0OPS0001`, `
  - name: all
    to: [ops-slack]`)
	d := r.start(t, cfg, 1)

	var want []string
	start := time.Now()
	for i := range 20 {
		text := fmt.Sprintf("burst %02d", i)
		r.post(t, ids[0], text)
		want = append(want, text)
	}
	waitFor(t, "21 posts", 45*time.Second, func() bool { return len(posted(r.slack, ch)) >= 21 })
	took := time.Since(start)
	// The pace is the sink's own waits: about one second before each post past the burst.
	scrape := httpGet(t, "http://"+addr+"/metrics")
	waits, _ := metricValue(scrape, `kdbridge_slack_pacing_waits_total{sink="ops-slack"}`)
	waited, _ := metricValue(scrape, `kdbridge_slack_pacing_wait_seconds_total{sink="ops-slack"}`)
	t.Logf("%v pacing waits, %.1fs in all", waits, waited)
	if waits < 10 || waited < 10 || waited > took.Seconds() {
		t.Errorf("pacing: %v waits of %vs in all, want most of the 18 posts past the burst to wait about a second", waits, waited)
	}
	stopAndCheckLogs(t, d, slackToken)

	t.Logf("21 posts in %v", took.Round(time.Millisecond))
	if n := r.slack.RateLimited(ch); n != 0 {
		t.Errorf("the fake answered %d 429s", n)
	}
	th := threads(r.slack, ch)
	if len(th) != 1 || !slices.Equal(texts(th[0].replies), want) {
		t.Errorf("the channel shows %+v", th)
	}
	if n := len(r.slack.CallsOf("chat.postMessage")); n != 21 {
		t.Errorf("%d chat.postMessage calls, want 21", n)
	}
	// Paced, not merely lucky: 18 posts beyond the burst need 18 s at 1/s.
	posts := posted(r.slack, ch)
	if span := posts[len(posts)-1].At.Sub(posts[0].At); span < 17*time.Second {
		t.Errorf("21 posts within %v", span)
	}
}

// TestSlackPermanentErrorsAreDeadLettered: every kind of permanent Slack error lands in the
// dead letters after one attempt, with Slack's error string in the reason. Some come from the
// fake's real state (unknown, private, archived channels, a channel without the bot, a
// message deleted by hand), the others are injected. (A refused token halts the sink instead:
// TestSlackBadTokenHaltsTheSink.)
func TestSlackPermanentErrorsAreDeadLettered(t *testing.T) {
	t.Parallel()
	const ok = "C0OK00001"
	injected := []string{"msg_too_long", "missing_scope", "no_permission", "restricted_action"}
	channels := []slacktest.Channel{
		{ID: ok, Name: "ok"},
		{ID: "C0OUT0001", Name: "outside", NotMember: true},
		{ID: "C0ARCH001", Name: "archive", Archived: true},
		{ID: "G0PRIV001", Name: "private", Private: true, NotMember: true},
	}
	r := newSlackRig(t, slacktest.Options{Channels: channels})

	type failure struct{ route, channel, method, code string }
	want := []failure{
		{"r-gone", "C0GONE001", "chat.postMessage", "channel_not_found"},
		{"r-private", "G0PRIV001", "chat.postMessage", "channel_not_found"},
		{"r-by-name", "#nowhere", "conversations.list", "channel_not_found"},
		{"r-outside", "C0OUT0001", "chat.postMessage", "not_in_channel"},
		{"r-archived", "C0ARCH001", "chat.postMessage", "is_archived"},
	}
	routes := ""
	for i, code := range injected {
		ch := fmt.Sprintf("C0INJ%04d", i)
		r.slack.AddChannel(slacktest.Channel{ID: ch, Name: strings.ReplaceAll(code, "_", "-")})
		r.slack.FailAlways("chat.postMessage", ch, code)
		want = append(want, failure{"r-" + code, ch, "chat.postMessage", code})
	}
	// One discussion for the posts that fail, one for the edits that do.
	ids := r.discussions("Errors", "Edits")
	for _, f := range want {
		routes += fmt.Sprintf("  - {name: %s, discussions: [%s], to: [{sink: ops-slack, channel: %q}]}\n", f.route, ids[0], f.channel)
	}
	routes += fmt.Sprintf("  - {name: r-ok, discussions: [%s], to: [{sink: ops-slack, channel: %s}]}", ids[1], ok)
	addr := freeAddr(t) // dlq asks the running daemon here
	cfg := r.config(t, addr, ids, `
  - name: ops-slack
    type: slack
    token: {token}
    api_url: {api}
    retry: {initial: 50ms, max_interval: 500ms}`, routes)
	d := r.start(t, cfg, 2)

	r.post(t, ids[0], "refused everywhere")
	m1 := r.post(t, ids[1], "m1")
	m2 := r.post(t, ids[1], "m2")
	waitFor(t, "the parent, m1 and m2 in the good channel", 15*time.Second, func() bool { return len(posted(r.slack, ok)) >= 3 })
	// Edits Slack refuses: a message it will not let the bot change, one deleted by hand.
	r.slack.FailNext("chat.update", "cant_update_message")
	r.slack.DeleteMessage(ok, posted(r.slack, ok)[2].TS)
	if _, err := r.sim.UpdateMessage(ids[1], m1.ID, "m1 edited"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.sim.UpdateMessage(ids[1], m2.ID, "m2 edited"); err != nil {
		t.Fatal(err)
	}
	want = append(want, failure{"r-ok", ok, "chat.update", "cant_update_message"}, failure{"r-ok", ok, "chat.update", "message_not_found"})

	var views []deadLetterView
	waitFor(t, fmt.Sprintf("%d dead letters", len(want)), 20*time.Second, func() bool {
		out, err := dlqCmd(t, "list", "-config", cfg, "-json")
		views = nil
		return err == nil && json.Unmarshal([]byte(out), &views) == nil && len(views) >= len(want)
	})
	stopAndCheckLogs(t, d, slackToken)

	if len(views) != len(want) {
		t.Errorf("%d dead letters, want %d", len(views), len(want))
	}
	for _, f := range want {
		i := slices.IndexFunc(views, func(v deadLetterView) bool {
			return v.Route == f.route && strings.Contains(v.Reason, f.method+" "+f.channel+": "+f.code)
		})
		if i < 0 {
			t.Errorf("no dead letter of route %s with %q", f.route, f.method+" "+f.channel+": "+f.code)
			continue
		}
		v := views[i]
		disc := ids[0]
		if f.route == "r-ok" {
			disc = ids[1]
		}
		if v.Attempts != 1 || !strings.HasPrefix(v.Reason, "permanent failure: ") || v.Discussion != disc {
			t.Errorf("dead letter %+v", v)
		}
		if f.method == "chat.update" && v.EventType != "message.updated" || f.method != "chat.update" && v.EventType != "message.created" {
			t.Errorf("%s: event type %s", f.code, v.EventType)
		}
		if strings.Contains(v.Reason, slackToken) {
			t.Errorf("the token is in a dead letter's reason")
		}
		if strings.Contains(v.Reason, "permanent: ") {
			t.Errorf("the reason says permanent twice: %q", v.Reason)
		}
	}
	// One attempt each: permanent errors are not retried. (The unknown name is the sink's
	// finding, from one listing that Slack answered; it is not listed again for a minute.)
	if n := len(r.slack.CallsOf("conversations.list")); n != 1 {
		t.Errorf("%d conversations.list calls, want 1", n)
	}
	for _, f := range want {
		if f.method == "conversations.list" {
			continue
		}
		n := 0
		for _, c := range r.slack.CallsOf(f.method) {
			if c.Error == f.code && c.Channel() == f.channel {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s on %s: %d calls answered %s, want 1", f.method, f.channel, n, f.code)
		}
	}
}
