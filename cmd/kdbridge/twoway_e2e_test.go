package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// The two-way tests run `run` in-process against the Kinetic simulator and the Slack fake,
// whose Socket Mode endpoint slack-go's own socketmode client talks to over loopback: a
// person "types" in the fake (UserPosts, UserEdits, UserDeletes), the fake sends the events
// over Socket Mode, and the test reads the discussion in the simulator.

const (
	twoWayChannel = "C0OPS0001"
	slackAlice    = "U0ALICE01"
	slackBob      = "U0BOB0001"
	appToken      = "xapp-1-A0FAKEAPP-4242-e2eAppTokenThatMustNeverBeLogged"
)

// twoWay is a running two-way bridge of one discussion into #ops, with a first Kinetic
// message mirrored so that the discussion's thread exists in Slack.
type twoWay struct {
	*slackRig
	d      *slackDaemon
	cfg    string
	disc   string
	addr   string
	parent string // ts of the discussion's thread parent in Slack
}

func startTwoWay(t *testing.T, threads string) *twoWay {
	t.Helper()
	r := newSlackRig(t, slacktest.Options{
		AppToken: appToken,
		Channels: []slacktest.Channel{{ID: twoWayChannel, Name: "ops"}, {ID: "C0OTHER01", Name: "random"}},
		Users: []slacktest.User{{ID: slackAlice, Email: "alice@slack.example", Name: "Alice Slack"},
			{ID: slackBob, Email: "bob@slack.example", Name: "Bob"}},
	})
	ids := r.discussions("Incident")
	addr := freeAddr(t)
	cfg := r.config(t, addr, ids, fmt.Sprintf(`
  - name: ops-slack
    type: slack
    token: {token}
    app_token: %s
    api_url: {api}
    channel: %s
    threads: %s`, appToken, twoWayChannel, threads), `
  - name: all
    to: [{sink: ops-slack, reply: true}]`)
	d := r.start(t, cfg, 1)
	w := &twoWay{slackRig: r, d: d, cfg: cfg, disc: ids[0], addr: addr}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log (end):\n%s", tail(d.log.String()))
		}
	})
	waitFor(t, "a Socket Mode connection", 20*time.Second, func() bool { return r.slack.SocketStats().Connections >= 1 })
	r.post(t, w.disc, "hello from Kinetic")
	posts := 2 // the thread parent and the message
	if threads != "discussion" {
		posts = 1
	}
	waitFor(t, "the first message in Slack", 20*time.Second, func() bool { return len(posted(r.slack, twoWayChannel)) >= posts })
	w.parent = posted(r.slack, twoWayChannel)[0].TS
	return w
}

// userMessages are the discussion's user (not system) messages, oldest first.
func (w *twoWay) userMessages() []kinetictest.Message {
	var out []kinetictest.Message
	for _, m := range w.sim.Messages(w.disc) {
		if m.Type == "User" {
			out = append(out, m)
		}
	}
	return out
}

func (w *twoWay) kineticTexts() []string {
	var out []string
	for _, m := range w.userMessages() {
		out = append(out, m.Text())
	}
	return out
}

// settle posts a marker into Kinetic and waits for its Slack copy: everything the Kinetic
// source received before it has been routed (or skipped) by then.
func (w *twoWay) settle(t *testing.T, marker string) {
	t.Helper()
	w.post(t, w.disc, marker)
	waitFor(t, "the marker "+marker+" in Slack", 20*time.Second, func() bool {
		return slices.ContainsFunc(w.slack.Messages(twoWayChannel), func(m slacktest.Message) bool { return m.Text == marker })
	})
}

func (w *twoWay) metric(t *testing.T, series string) float64 {
	t.Helper()
	return scrapeValue(t, w.addr, series)
}

// TestE2ETwoWayReplyEditDelete: a reply typed in the mirrored thread lands in the discussion
// as the integration user with the author's name, its edit and delete follow, and nothing
// kdbridge posted on either side comes back (exact counts on both sides).
func TestE2ETwoWayReplyEditDelete(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "discussion")
	integration := w.sim.IntegrationUser().Username

	typed := time.Now()
	ts := w.slack.UserPosts(twoWayChannel, w.parent, slackAlice, "Thanks, <@"+slackBob+"> is on it &amp; so am I")
	want := "**Alice Slack (Slack)**: Thanks, @Bob is on it & so am I"
	waitFor(t, "the reply in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) >= 2 })
	t.Logf("typed in Slack → in the discussion: %s (loopback, polled every 10ms)", time.Since(typed).Round(time.Millisecond))
	got := w.userMessages()[1]
	if got.Text() != want || got.CreatedBy.Username != integration || got.ParentID != "" {
		t.Fatalf("reply in Kinetic = %q by %q (parent %q), want %q by %q, top-level", got.Text(), got.CreatedBy.Username, got.ParentID, want, integration)
	}

	if !w.slack.UserEdits(twoWayChannel, ts, "Thanks, fixed now") {
		t.Fatal("edit refused by the fake")
	}
	waitFor(t, "the edit in Kinetic", 20*time.Second, func() bool {
		ms := w.userMessages()
		return len(ms) == 2 && ms[1].Text() == "**Alice Slack (Slack)**: Thanks, fixed now"
	})
	if !w.slack.UserDeletes(twoWayChannel, ts) {
		t.Fatal("delete refused by the fake")
	}
	waitFor(t, "the delete in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) == 1 })

	w.settle(t, "marker")
	// Kinetic: the first message and the marker; the reply came and went; no copy of a
	// Slack post of kdbridge's own.
	if got, want := w.kineticTexts(), []string{"hello from Kinetic", "marker"}; !slices.Equal(got, want) {
		t.Errorf("Kinetic user messages = %q, want %q", got, want)
	}
	// Slack: the thread parent and the two Kinetic messages, posted once each; nothing
	// written by kdbridge in Kinetic was mirrored back, so no update or delete either.
	if n := len(posted(w.slack, twoWayChannel)); n != 3 {
		t.Errorf("%d posts in Slack, want 3 (parent, hello, marker)", n)
	}
	if n := len(w.slack.CallsOf("chat.update")) + len(w.slack.CallsOf("chat.delete")); n != 0 {
		t.Errorf("%d chat.update/chat.delete calls, want 0", n)
	}
	if texts := texts(w.slack.Messages(twoWayChannel)); len(texts) != 3 {
		t.Errorf("Slack channel shows %q, want 3 messages", texts)
	}
	waitFor(t, "the own posts counted", 10*time.Second, func() bool {
		return w.metric(t, `kdbridge_inbound_events_total{outcome="own",source="slack:ops-slack"}`) >= 3
	})
	if n := w.metric(t, `kdbridge_inbound_events_total{outcome="bridged",source="slack:ops-slack"}`); n != 3 {
		t.Errorf("%v events bridged, want 3 (reply, edit, delete)", n)
	}
	if n := w.metric(t, `kdbridge_deliveries_total{outcome="delivered",sink="kinetic"}`); n != 3 {
		t.Errorf("%v deliveries into Kinetic, want 3", n)
	}
	if body := httpGet(t, "http://"+w.addr+"/readyz"); !strings.Contains(body, "slack:ops-slack: Socket Mode connected") {
		t.Errorf("/readyz does not show the Socket Mode connection:\n%s", body)
	}
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayRepliesMode: with threads: replies, a Slack thread reply under a mirrored
// Kinetic message becomes a Kinetic reply to that message; a top-level Slack message and one
// in an unmirrored channel are ignored.
func TestE2ETwoWayRepliesMode(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "replies")
	// In replies mode there is no thread parent: the first post is the Kinetic message.
	first := w.userMessages()[0]
	root := posted(w.slack, twoWayChannel)[0].TS
	w.slack.UserPosts(twoWayChannel, "", slackAlice, "top-level chatter")
	w.slack.UserPosts("C0OTHER01", "", slackAlice, "another channel")
	w.slack.UserPosts(twoWayChannel, root, slackBob, "answering in the thread")
	waitFor(t, "the reply in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) >= 2 })
	got := w.userMessages()[1]
	if got.Text() != "**Bob (Slack)**: answering in the thread" || got.ParentID != first.ID {
		t.Errorf("reply = %q with parent %q, want Bob's answer under %s", got.Text(), got.ParentID, first.ID)
	}
	w.settle(t, "marker")
	if n := len(w.userMessages()); n != 3 {
		t.Errorf("%d Kinetic messages, want 3: %q", n, w.kineticTexts())
	}
	if n := w.metric(t, `kdbridge_inbound_events_total{outcome="unmirrored",source="slack:ops-slack"}`); n != 2 {
		t.Errorf("%v unmirrored events, want 2", n)
	}
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayDisconnectLosesNothing: replies typed while Slack asks for a reconnect
// (refresh_requested), while the socket is dropped, and sent twice by Slack all land in the
// discussion exactly once, in order.
func TestE2ETwoWayDisconnectLosesNothing(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "discussion")
	var want []string
	say := func(i int) {
		text := fmt.Sprintf("reply %02d", i)
		w.slack.UserPosts(twoWayChannel, w.parent, slackAlice, text)
		want = append(want, "**Alice Slack (Slack)**: "+text)
	}
	for i := 1; i <= 3; i++ {
		say(i)
	}
	w.slack.Disconnect()
	for i := 4; i <= 6; i++ {
		say(i)
	}
	waitFor(t, "a second connection", 20*time.Second, func() bool { return w.slack.SocketStats().Accepted >= 2 })
	w.slack.DropSockets()
	for i := 7; i <= 9; i++ {
		say(i)
	}
	waitFor(t, "a third connection", 20*time.Second, func() bool { return w.slack.SocketStats().Accepted >= 3 })
	// Slack re-sends: every envelope not acknowledged yet, and one event in a new envelope.
	w.slack.ResendUnacked()
	if !w.slack.Resend("Ev00000003") { // an early event: the store has it already
		t.Fatal("the fake does not know event Ev00000003")
	}
	waitFor(t, "9 replies in Kinetic", 30*time.Second, func() bool { return len(w.userMessages()) >= 10 })
	waitFor(t, "every envelope acknowledged", 20*time.Second, func() bool { return w.slack.SocketStats().Pending == 0 })
	w.settle(t, "marker")
	got := w.kineticTexts()
	want = append(append([]string{"hello from Kinetic"}, want...), "marker")
	if !slices.Equal(got, want) {
		t.Errorf("Kinetic messages =\n%q\nwant\n%q", got, want)
	}
	t.Logf("Socket Mode: %+v", w.slack.SocketStats())
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayKineticDown: Kinetic answers 503 to every REST call for 10 s; replies typed
// meanwhile are acknowledged to Slack (they are stored) and arrive after, in order.
func TestE2ETwoWayKineticDown(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "discussion")
	before := w.sim.Stats().RESTRequests
	w.sim.FailREST(1_000_000, 503)
	outageEnds := time.Now().Add(10 * time.Second)
	var want []string
	for i := 1; i <= 3; i++ {
		text := fmt.Sprintf("during the outage %d", i)
		w.slack.UserPosts(twoWayChannel, w.parent, slackAlice, text)
		want = append(want, "**Alice Slack (Slack)**: "+text)
	}
	waitFor(t, "the replies acknowledged to Slack", 20*time.Second, func() bool { return w.slack.SocketStats().Pending == 0 })
	waitFor(t, "a failed delivery into Kinetic", 20*time.Second, func() bool {
		return w.metric(t, `kdbridge_deliveries_total{outcome="retry",sink="kinetic"}`) >= 1
	})
	// The outage lasts its 10 s whatever the machine's speed; it defines the scenario, it
	// does not synchronise anything.
	time.Sleep(time.Until(outageEnds))
	w.sim.FailREST(0, 503)
	if n := len(w.userMessages()); n != 1 {
		t.Fatalf("%d messages in Kinetic during the outage, want 1", n)
	}
	waitFor(t, "the replies after the outage", 60*time.Second, func() bool { return len(w.userMessages()) >= 4 })
	got := w.kineticTexts()
	if !slices.Equal(got[1:], want) {
		t.Errorf("after the outage Kinetic has %q, want %q after the first", got, want)
	}
	if w.sim.Stats().RESTRequests-before < 4 {
		t.Errorf("only %d REST calls: the outage was not met", w.sim.Stats().RESTRequests-before)
	}
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayMentionInjection: broadcast and user mentions, links and entities typed in
// Slack reach Kinetic as plain text in one text token.
func TestE2ETwoWayMentionInjection(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "discussion")
	w.slack.UserPosts(twoWayChannel, w.parent, slackAlice,
		"<!channel> <!here|here> <!everyone> ping <@"+slackBob+"> and <@U0NOBODY1>, see <https://evil.example/x?a=1&amp;b=2|the fix> &lt;script&gt;")
	waitFor(t, "the reply in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) >= 2 })
	m := w.userMessages()[1]
	want := "**Alice Slack (Slack)**: @channel @here @everyone ping @Bob and @U0NOBODY1, see the fix (https://evil.example/x?a=1&b=2) <script>"
	if len(m.Content) != 1 || m.Content[0].Type != "text" || m.Text() != want {
		t.Errorf("content = %+v, want one text token %q", m.Content, want)
	}
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayBadInput: garbage frames, unknown envelope and event types, unsupported
// subtypes, another app's bot, files and an oversized message are each counted and logged
// (rate-limited) and disturb nothing: a reply after them is bridged.
func TestE2ETwoWayBadInput(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "discussion")
	w.slack.SendFrame([]byte("this is not JSON"))
	w.slack.SendFrame([]byte(`{"type":"something_new","envelope_id":"e-unknown"}`))
	w.slack.SendEvent(map[string]any{"type": "reaction_added", "user": slackAlice, "reaction": "tada"})
	w.slack.SendEvent(map[string]any{"type": "message", "subtype": "channel_join", "channel": twoWayChannel, "user": slackBob, "ts": "1700000001.000001", "thread_ts": w.parent})
	w.slack.UserPosts(twoWayChannel, w.parent, slackAlice, strings.Repeat("x", 70_000))
	w.slack.BotPosts(twoWayChannel, w.parent, "B0OTHERBOT", "a deploy bot says hi")
	w.slack.UserSharesFile(twoWayChannel, w.parent, slackBob, "the log", slacktest.File{Name: "app.log", MimeType: "text/plain", Size: 2048})
	w.slack.UserPosts(twoWayChannel, w.parent, slackAlice, "still working")
	waitFor(t, "three replies in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) >= 4 })
	got := w.kineticTexts()[1:]
	want := []string{
		"**B0OTHERBOT (Slack)**: a deploy bot says hi",
		"**Bob (Slack)**: the log\n📎 app.log (2.0 KB) https://kdbridge-test.slack.com/files/" + slackBob + "/F" + "",
		"**Alice Slack (Slack)**: still working",
	}
	if len(got) != 3 || got[0] != want[0] || !strings.HasPrefix(got[1], want[1]) || got[2] != want[2] {
		t.Errorf("Kinetic replies = %q, want %q", got, want)
	}
	for outcome, n := range map[string]float64{"malformed": 1, "unsupported": 3, "too_large": 1, "bridged": 3} {
		if got := w.metric(t, `kdbridge_inbound_events_total{outcome="`+outcome+`",source="slack:ops-slack"}`); got != n {
			t.Errorf("%s: %v, want %v", outcome, got, n)
		}
	}
	logs := w.d.log.String()
	for _, line := range []string{"an unreadable Socket Mode frame", "a Socket Mode envelope that is not bridged", "a Slack message too large for Kinetic"} {
		if strings.Count(logs, line) != 1 {
			t.Errorf("the log has %d lines %q, want 1", strings.Count(logs, line), line)
		}
	}
	waitFor(t, "every envelope acknowledged", 20*time.Second, func() bool { return w.slack.SocketStats().Pending == 0 })
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayEditAfterRestart: the Slack ts → Kinetic id map is in the store, so an edit
// and a delete typed after a restart reach the copy written before it.
func TestE2ETwoWayEditAfterRestart(t *testing.T) {
	t.Parallel()
	w := startTwoWay(t, "discussion")
	ts := w.slack.UserPosts(twoWayChannel, w.parent, slackAlice, "before the restart")
	waitFor(t, "the reply in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) >= 2 })
	stopAndCheckLogs(t, w.d, slackToken, appToken)

	w.d = w.start(t, w.cfg, 1)
	waitFor(t, "a new Socket Mode connection", 20*time.Second, func() bool { return w.slack.SocketStats().Accepted >= 2 })
	w.slack.UserEdits(twoWayChannel, ts, "edited after the restart")
	waitFor(t, "the edit in Kinetic", 20*time.Second, func() bool {
		ms := w.userMessages()
		return len(ms) == 2 && ms[1].Text() == "**Alice Slack (Slack)**: edited after the restart"
	})
	w.slack.UserDeletes(twoWayChannel, ts)
	waitFor(t, "the delete in Kinetic", 20*time.Second, func() bool { return len(w.userMessages()) == 1 })
	w.settle(t, "marker")
	if got, want := w.kineticTexts(), []string{"hello from Kinetic", "marker"}; !slices.Equal(got, want) {
		t.Errorf("Kinetic user messages = %q, want %q", got, want)
	}
	stopAndCheckLogs(t, w.d, slackToken, appToken)
}

// TestE2ETwoWayReload: turning reply on for a route with a reload starts the Socket Mode
// source without a restart, and threads mirrored before the reload take replies; turning it
// off again stops it.
func TestE2ETwoWayReload(t *testing.T) {
	t.Parallel()
	r := newSlackRig(t, slacktest.Options{AppToken: appToken, Channels: []slacktest.Channel{{ID: twoWayChannel, Name: "ops"}},
		Users: []slacktest.User{{ID: slackAlice, Email: "alice@slack.example", Name: "Alice Slack"}}})
	ids := r.discussions("Incident")
	addr := freeAddr(t)
	sinks := fmt.Sprintf(`
  - name: ops-slack
    type: slack
    token: {token}
    app_token: %s
    api_url: {api}
    channel: %s`, appToken, twoWayChannel)
	oneWay, twoWay := `
  - name: all
    to: [ops-slack]`, `
  - name: all
    to: [{sink: ops-slack, reply: true}]`
	cfg := r.config(t, addr, ids, sinks, oneWay)
	d := r.start(t, cfg, 1)
	r.post(t, ids[0], "before the reload")
	waitFor(t, "the message in Slack", 20*time.Second, func() bool { return len(posted(r.slack, twoWayChannel)) >= 2 })
	parent := posted(r.slack, twoWayChannel)[0].TS
	if n := r.slack.SocketStats().Opens; n != 0 {
		t.Fatalf("one-way opened Socket Mode %d times", n)
	}

	if err := os.WriteFile(cfg, []byte(readFile(t, r.config(t, addr, ids, sinks, twoWay))), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, addr); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	waitFor(t, "a Socket Mode connection", 20*time.Second, func() bool { return r.slack.SocketStats().Connections == 1 })
	r.slack.UserPosts(twoWayChannel, parent, slackAlice, "after the reload")
	waitFor(t, "the reply in Kinetic", 20*time.Second, func() bool {
		ms := r.sim.Messages(ids[0])
		return slices.ContainsFunc(ms, func(m kinetictest.Message) bool { return m.Text() == "**Alice Slack (Slack)**: after the reload" })
	})

	if err := os.WriteFile(cfg, []byte(readFile(t, r.config(t, addr, ids, sinks, oneWay))), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, addr); code != 200 {
		t.Fatalf("reload back: %d %s", code, body)
	}
	waitFor(t, "the Socket Mode connection closed", 20*time.Second, func() bool { return r.slack.SocketStats().Connections == 0 })
	stopAndCheckLogs(t, d, slackToken, appToken)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
