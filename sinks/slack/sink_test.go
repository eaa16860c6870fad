package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

func TestThreadsDiscussion(t *testing.T) {
	f := newFake(t)
	s := newSink(t, baseConfig(f), newMemKV())

	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "first"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "m2", "m1", "second"), "")
	deliver(t, s, event(bridge.MessageCreated, "d2", "m3", "", "other discussion"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "m4", "", "third"), "")
	// The same discussion through a target that overrides the channel gets its own thread.
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "first"), "C0000DEV2")

	posts := f.CallsOf("chat.postMessage")
	type post struct{ ch, thread, text string }
	var got []post
	for _, c := range posts {
		got = append(got, post{c.Param("channel"), c.Param("thread_ts"), c.Param("text")})
	}
	ts := func(i int) string { return fmt.Sprintf("1700000000.%06d", i) }
	want := []post{
		{"C0000OPS1", "", "*<https://acme.kinops.io/#/discussions/d1|Incident d1>*"},
		{"C0000OPS1", ts(1), "first"},
		{"C0000OPS1", ts(1), "second"},
		{"C0000OPS1", "", "*<https://acme.kinops.io/#/discussions/d2|Incident d2>*"},
		{"C0000OPS1", ts(4), "other discussion"},
		{"C0000OPS1", ts(1), "third"},
		{"C0000DEV2", "", "*<https://acme.kinops.io/#/discussions/d1|Incident d1>*"},
		{"C0000DEV2", ts(7), "first"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("posts:\n got %v\nwant %v", got, want)
	}
	for _, c := range posts {
		for k, v := range map[string]string{"parse": "none", "link_names": "false", "unfurl_links": "false", "unfurl_media": "false"} {
			if c.Param(k) != v {
				t.Errorf("%s = %q, want %q", k, c.Param(k), v)
			}
		}
	}
}

func TestThreadHeaderWithoutURL(t *testing.T) {
	d := bridge.Discussion{ID: "d1", Title: "Q3 <!channel> plan"}
	if got := threadHeader(d); got != "*Q3 &lt;!channel&gt; plan*" {
		t.Errorf("header = %q", got)
	}
	if got := threadHeader(bridge.Discussion{ID: "d9", URL: "javascript:alert(1)"}); got != "*Discussion d9*" {
		t.Errorf("header = %q", got)
	}
}

func TestThreadsReplies(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsReplies
	s := newSink(t, cfg, newMemKV())

	deliver(t, s, event(bridge.MessageCreated, "d1", "root", "", "root"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "r1", "root", "reply"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "r2", "r1", "reply to reply"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "top", "", "top-level"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "orphan", "never-seen", "orphan"), "")

	var got []string
	for _, c := range f.CallsOf("chat.postMessage") {
		got = append(got, c.Param("text")+"@"+c.Param("thread_ts"))
	}
	want := "[root@ reply@1700000000.000001 reply to reply@1700000000.000001 top-level@ orphan@]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v\nwant %s", got, want)
	}
}

func TestThreadsNone(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())
	deliver(t, s, event(bridge.MessageCreated, "d1", "a", "", "a"), "")
	deliver(t, s, event(bridge.MessageCreated, "d1", "b", "a", "b"), "")
	for _, c := range f.CallsOf("chat.postMessage") {
		if c.Param("thread_ts") != "" {
			t.Errorf("threaded post in none mode: %v", c.Params)
		}
	}
	if n := len(f.CallsOf("chat.postMessage")); n != 2 {
		t.Errorf("%d posts, want 2 (no thread parent)", n)
	}
}

func TestChannelNames(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Channel = "#secret-room" // on the second page of the listing
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())

	for i := range 5 {
		deliver(t, s, event(bridge.MessageCreated, "d1", fmt.Sprint("m", i), "", "hi"), "")
	}
	deliver(t, s, event(bridge.MessageCreated, "d1", "x", "", "hi"), "ops")
	deliver(t, s, event(bridge.MessageCreated, "d1", "y", "", "hi"), "#DEV")

	lists := f.CallsOf("conversations.list")
	if len(lists) != 2 || lists[0].Param("cursor") != "" || lists[1].Param("cursor") == "" || lists[0].Param("types") != "public_channel,private_channel" {
		t.Errorf("conversations.list calls = %v, want one listing of two pages", lists)
	}
	var chans []string
	for _, c := range f.CallsOf("chat.postMessage") {
		chans = append(chans, c.Param("channel"))
	}
	if want := "[G0000SEC3 G0000SEC3 G0000SEC3 G0000SEC3 G0000SEC3 C0000OPS1 C0000DEV2]"; fmt.Sprint(chans) != want {
		t.Errorf("channels = %v, want %s", chans, want)
	}

	err := s.Deliver(context.Background(), bridge.Delivery{Event: event(bridge.MessageCreated, "d1", "z", "", "hi"),
		Target: bridge.Target{Channel: "#nope"}})
	if !bridge.IsPermanent(err) || errorCode(err) != "channel_not_found" {
		t.Errorf("unknown channel: %v", err)
	}
	// A name missing from a fresh listing is not listed again at once: no new calls above.
	if n := len(f.CallsOf("conversations.list")); n != 2 {
		t.Errorf("%d conversations.list calls, want 2", n)
	}
	// Once the listing is old, an unknown name is looked for again (the channel may be new).
	f.AddChannel(slacktest.Channel{ID: "C0000NEW4", Name: "nope"})
	s.channels.mu.Lock()
	s.channels.listedAt = s.channels.listedAt.Add(-2 * unknownNameTTL)
	s.channels.mu.Unlock()
	deliver(t, s, event(bridge.MessageCreated, "d1", "z", "", "hi"), "#nope")
	if n := len(f.CallsOf("conversations.list")); n != 4 {
		t.Errorf("%d conversations.list calls, want 4 (a second listing of two pages)", n)
	}
}

func TestNoChannel(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Channel = ""
	s := newSink(t, cfg, newMemKV())
	err := s.Deliver(context.Background(), bridge.Delivery{Event: event(bridge.MessageCreated, "d1", "m", "", "x")})
	if !bridge.IsPermanent(err) {
		t.Errorf("no channel: %v", err)
	}
}

func TestIdentity(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	cfg.IconURL = "https://www.gravatar.com/avatar/{{ md5 .Email }}?d=identicon&s=64"
	s := newSink(t, cfg, newMemKV())
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "hello"), "")

	cfg.Identity, cfg.IconURL = IdentityBot, ""
	bot := newSink(t, cfg, newMemKV())
	deliver(t, bot, event(bridge.MessageCreated, "d1", "m2", "", "hello"), "")

	posts := f.CallsOf("chat.postMessage")
	if len(posts) != 2 {
		t.Fatalf("%d posts", len(posts))
	}
	// md5("alice@example.com"): the email is trimmed and lowercased first.
	if p := posts[0]; p.Param("username") != "Alice Doe" || p.Param("text") != "hello" ||
		p.Param("icon_url") != "https://www.gravatar.com/avatar/c160f8cc69a4f0bf2b0362752353d060?d=identicon&s=64" {
		t.Errorf("author identity: %v", p.Params)
	}
	if p := posts[1]; p.Param("username") != "" || p.Param("icon_url") != "" || p.Param("text") != "*Alice Doe*: hello" {
		t.Errorf("bot identity: %v", p.Params)
	}
}

func TestUpdateDeleteAcrossRestart(t *testing.T) {
	f := newFake(t)
	kv := newMemKV()
	cfg := baseConfig(f)
	first := newSink(t, cfg, kv)
	deliver(t, first, event(bridge.MessageCreated, "d1", "m1", "", "original"), "")
	deliver(t, first, event(bridge.MessageCreated, "d1", "m2", "", "to delete"), "")
	deliver(t, first, event(bridge.MessageCreated, "d1", "m1", "", "original"), "C0000DEV2")
	posts := f.CallsOf("chat.postMessage")
	m1, m2, m1dev := posts[1].TS, posts[2].TS, posts[4].TS

	// A new instance over the same store, as after a restart.
	second := newSink(t, cfg, kv)
	// A redelivered create is not posted twice.
	deliver(t, second, event(bridge.MessageCreated, "d1", "m1", "", "original"), "")
	if n := len(f.CallsOf("chat.postMessage")); n != 5 {
		t.Errorf("redelivered create posted again: %d posts", n)
	}
	deliver(t, second, event(bridge.MessageUpdated, "d1", "m1", "", "edited <!here>"), "")
	deliver(t, second, event(bridge.MessageDeleted, "d1", "m2", "", ""), "")

	upd := f.CallsOf("chat.update")
	if len(upd) != 1 || upd[0].Param("channel") != "C0000OPS1" || upd[0].Param("ts") != m1 ||
		upd[0].Param("text") != "edited &lt;!here&gt;" || upd[0].Param("parse") != "none" {
		t.Errorf("chat.update calls = %v (m1 is %s)", upd, m1)
	}
	del := f.CallsOf("chat.delete")
	if len(del) != 1 || del[0].Param("channel") != "C0000OPS1" || del[0].Param("ts") != m2 {
		t.Errorf("chat.delete calls = %v (m2 is %s)", del, m2)
	}
	if m, _ := f.Message("C0000OPS1", m1); m.Text != "edited &lt;!here&gt;" {
		t.Errorf("message after update: %+v", m)
	}

	// A redelivered delete, or one of a message deleted by hand in Slack, is done already.
	deliver(t, second, event(bridge.MessageDeleted, "d1", "m2", "", ""), "")
	f.DeleteMessage("C0000DEV2", m1dev)
	deliver(t, second, event(bridge.MessageDeleted, "d1", "m1", "", ""), "C0000DEV2")
	if n := len(f.CallsOf("chat.delete")); n != 2 {
		t.Errorf("%d chat.delete calls, want 2", n)
	}
	// An edit of a deleted message does not bring it back.
	deliver(t, second, event(bridge.MessageUpdated, "d1", "m2", "", "late edit"), "")
	if n := len(f.CallsOf("chat.update")) + len(f.CallsOf("chat.postMessage")); n != 1+5 {
		t.Errorf("edit of a deleted message was sent: %d calls", n)
	}

	// Never mirrored: an update is posted as new (and remembered), a delete needs nothing.
	deliver(t, second, event(bridge.MessageUpdated, "d1", "m9", "", "edited before we saw it"), "")
	deliver(t, second, event(bridge.MessageDeleted, "d1", "m8", "", ""), "")
	posts = f.CallsOf("chat.postMessage")
	if last := posts[len(posts)-1]; len(posts) != 6 || last.Param("text") != "edited before we saw it" || last.Param("thread_ts") != posts[0].TS {
		t.Errorf("unmirrored update: %v", posts)
	}
	deliver(t, second, event(bridge.MessageUpdated, "d1", "m9", "", "edited again"), "")
	if upd := f.CallsOf("chat.update"); len(upd) != 2 || upd[1].Param("ts") != posts[5].TS {
		t.Errorf("second edit of the unmirrored message: %v", upd)
	}
	if n := len(f.CallsOf("chat.delete")); n != 2 {
		t.Errorf("delete of an unmirrored message called Slack")
	}
}

func TestUpdateErrorsArePermanent(t *testing.T) {
	f := newFake(t)
	s := newSink(t, baseConfig(f), newMemKV())
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "x"), "")
	for _, code := range []string{"message_not_found", "cant_update_message"} {
		f.FailNextWith("chat.update", slacktest.Fault{Error: code})
		err := s.Deliver(context.Background(), bridge.Delivery{Event: event(bridge.MessageUpdated, "d1", "m1", "", "y")})
		if !bridge.IsPermanent(err) || errorCode(err) != code {
			t.Errorf("%s: %v", code, err)
		}
	}
	deliver(t, s, event(bridge.MessageCreated, "d1", "m2", "", "x"), "")
	for _, code := range []string{"cant_delete_message", "compliance_exports_prevent_deletion"} {
		f.FailNextWith("chat.delete", slacktest.Fault{Error: code})
		err := s.Deliver(context.Background(), bridge.Delivery{Event: event(bridge.MessageDeleted, "d1", "m2", "", "")})
		if !bridge.IsPermanent(err) || errorCode(err) != code {
			t.Errorf("%s: %v", code, err)
		}
	}
}

func TestNonMessageEvents(t *testing.T) {
	f := newFake(t)
	s := newSink(t, baseConfig(f), newMemKV())
	ev := func(typ, raw string) bridge.Event {
		return bridge.Event{ID: "evt_" + strings.ReplaceAll(typ, ".", "_"), Type: typ, Source: "acme",
			Discussion: bridge.Discussion{ID: "d1", Title: "Incident d1"}, Raw: json.RawMessage(raw)}
	}
	del := func(e bridge.Event) error {
		return s.Deliver(context.Background(), bridge.Delivery{Event: e})
	}
	for _, e := range []bridge.Event{
		ev(bridge.ParticipantCreated, `{"user":{"username":"bob","displayName":"Bob <!channel>"}}`),
		ev(bridge.ParticipantCreated, `{"user":{"username":"bob","displayName":"Bob <!channel>"}}`), // redelivery
		ev(bridge.ParticipantDeleted, `{"username":"carol"}`),
		ev(bridge.InvitationCreated, `{"email":"dave@example.com"}`),
		ev(bridge.RelatedItemCreated, `{"type":"Form","key":"k/f"}`),
		ev(bridge.ParticipantUpdated, `{"user":"bob"}`),
		ev(bridge.InvitationDeleted, `{"email":"dave@example.com"}`),
	} {
		if err := del(e); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}
	var got []string
	for _, c := range f.CallsOf("chat.postMessage") {
		got = append(got, c.Param("text")+"@"+c.Param("thread_ts"))
	}
	want := "[*Incident d1*@ _Bob &lt;!channel&gt; joined the discussion_@1700000000.000001 " +
		"_carol left the discussion_@1700000000.000001 _dave@example.com was invited to the discussion_@1700000000.000001]"
	if fmt.Sprint(got) != want {
		t.Errorf("got  %v\nwant %s", got, want)
	}

	// A renamed discussion renames its thread parent, once.
	renamed := ev(bridge.DiscussionUpdated, `{}`)
	renamed.Discussion.Title = "Incident d1 (resolved)"
	for range 2 {
		if err := del(renamed); err != nil {
			t.Fatal(err)
		}
	}
	if upd := f.CallsOf("chat.update"); len(upd) != 1 || upd[0].Param("ts") != "1700000000.000001" || upd[0].Param("text") != "*Incident d1 (resolved)*" {
		t.Errorf("rename: %v", upd)
	}
	// A message event without a message cannot be delivered.
	if err := del(ev(bridge.MessageCreated, `{}`)); !bridge.IsPermanent(err) {
		t.Errorf("message event without message: %v", err)
	}
}

func TestMentionUsersByEmail(t *testing.T) {
	f := newFake(t)
	f.AddUser(slacktest.User{ID: "U0ALICE01", Email: "alice@example.com"})
	cfg := baseConfig(f)
	cfg.MentionUsers = MentionEmail
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())

	content := func(tokens ...string) bridge.Event {
		e := event(bridge.MessageCreated, "d1", fmt.Sprint("m", len(f.CallsOf("chat.postMessage"))), "", "")
		e.Message.Content = nil
		for _, tk := range tokens {
			var tok bridge.Token
			if err := json.Unmarshal([]byte(tk), &tok); err != nil {
				t.Fatal(err)
			}
			e.Message.Content = append(e.Message.Content, tok)
		}
		return e
	}
	alice := `{"type":"user","value":{"username":"alice","displayName":"Alice","email":"ALICE@example.com"}}`
	ghost := `{"type":"user","value":{"username":"ghost","displayName":"Ghost","email":"ghost@example.com"}}`
	for range 3 {
		deliver(t, s, content(`{"type":"text","value":"ping"}`, alice, `{"type":"text","value":"and"}`, ghost), "")
	}
	for _, c := range f.CallsOf("chat.postMessage") {
		if got := c.Param("text"); got != "ping <@U0ALICE01> and @Ghost" {
			t.Errorf("text = %q", got)
		}
	}
	if n := len(f.CallsOf("users.lookupByEmail")); n != 2 {
		t.Errorf("%d lookups, want 2 (one hit, one miss, both cached)", n)
	}

	// A failing lookup costs the mention, not the message.
	f.FailNextWith("users.lookupByEmail", slacktest.Fault{Error: "missing_scope"})
	bob := `{"type":"user","value":{"displayName":"Bob","email":"bob@example.com"}}`
	deliver(t, s, content(bob), "")
	posts := f.CallsOf("chat.postMessage")
	if got := posts[len(posts)-1].Param("text"); got != "@Bob" {
		t.Errorf("fallback text = %q", got)
	}
}

func TestConcurrentDiscussionsOneParentEach(t *testing.T) {
	f := newFake(t)
	s := newSink(t, baseConfig(f), newMemKV())
	var wg sync.WaitGroup
	errs := make(chan error, 4*2*5)
	for d := range 4 {
		for route := range 2 { // two routes to the same channel may overlap for one discussion
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 5 {
					e := event(bridge.MessageCreated, fmt.Sprint("d", d), fmt.Sprintf("d%d-m%d", d, i), "", "x")
					errs <- s.Deliver(context.Background(), bridge.Delivery{Event: e, Target: bridge.Target{Route: fmt.Sprint(route)}})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	parents := map[string]int{}
	threads := map[string]int{}
	for _, c := range f.CallsOf("chat.postMessage") {
		if c.Param("thread_ts") == "" {
			parents[c.Param("text")]++
		} else {
			threads[c.Param("thread_ts")]++
		}
	}
	if len(parents) != 4 || len(threads) != 4 {
		t.Errorf("parents %v, threads %v", parents, threads)
	}
	for p, n := range parents {
		if n != 1 {
			t.Errorf("parent %q posted %d times", p, n)
		}
	}
	for ts, n := range threads {
		if n != 5 {
			t.Errorf("thread %s has %d replies, want 5 (each message once)", ts, n)
		}
	}
}

func TestNewNeedsKV(t *testing.T) {
	f := newFake(t)
	if _, err := New("x", baseConfig(f), Options{}); err == nil {
		t.Error("New without KV succeeded")
	}
	if _, err := New("x", Config{}, Options{KV: newMemKV()}); err == nil {
		t.Error("New with an invalid configuration succeeded")
	}
}
