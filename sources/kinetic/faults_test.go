package kinetic

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// Messages posted while connections drop over and over all arrive: the catch-up covers
// every gap, nothing is emitted twice under two ids, and each discussion stays in order.
func TestDropsLoseNothing(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"})
	h := start(t, srv, []string{a.ID, b.ID})
	h.waitReady()

	const total = 240
	want := map[string][]string{}
	var dropped int64 // connections opened up to the last drop
	for i := range total {
		d := a.ID
		if i%3 == 0 {
			d = b.ID
		}
		m, err := srv.PostMessage(d, kinetictest.Alice, fmt.Sprintf("msg-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want[d] = append(want[d], m.ID)
		switch i % 20 {
		case 7, 17:
			// Drop a connection that is identified and subscribed.
			eventually(t, "a new identified connection", func() bool {
				return srv.Stats().ConnectionsTotal > dropped && h.src.Status().Identified
			})
			dropped = srv.Stats().ConnectionsTotal
			srv.DropConnections()
		case 9:
			// Drop the next connection as soon as it opens: while the source identifies,
			// subscribes or catches up.
			eventually(t, "a new connection", func() bool { return srv.Stats().ConnectionsTotal > dropped })
			dropped = srv.Stats().ConnectionsTotal
			srv.DropConnections()
		}
	}
	for _, d := range []string{a.ID, b.ID} {
		got := h.waitMessages(d, len(want[d]))
		if ids := messageIDs(got); !slices.Equal(ids, want[d]) {
			t.Errorf("discussion %s: %d messages, order or content differs:\n got %v\nwant %v", d, len(ids), ids, want[d])
		}
	}
	// Dedupe by id leaves exactly one event per message: no message under two ids.
	perMessage := map[string]map[string]bool{}
	for _, e := range h.rec.all() {
		if e.Type != bridge.MessageCreated {
			continue
		}
		if perMessage[e.Message.ID] == nil {
			perMessage[e.Message.ID] = map[string]bool{}
		}
		perMessage[e.Message.ID][e.ID] = true
	}
	for mid, ids := range perMessage {
		if len(ids) != 1 {
			t.Errorf("message %s emitted under %d ids", mid, len(ids))
		}
	}
	_, dupsA := h.rec.userMessages(a.ID)
	_, dupsB := h.rec.userMessages(b.ID)
	t.Logf("%d connections, %d redeliveries with the same id", srv.Stats().ConnectionsTotal, dupsA+dupsB)
	if srv.Stats().ConnectionsTotal < 20 {
		t.Errorf("only %d connections: the drops did not happen", srv.Stats().ConnectionsTotal)
	}
}

// A restart with the same checkpoints emits exactly the messages posted while it was down.
func TestRestartCatchesUpExactlyMissed(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	cps := &MemoryCheckpoints{}
	withCPs := func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps; c.PageSize = 3 } // several pages

	h1 := start(t, srv, []string{d.ID}, withCPs)
	h1.waitReady()
	before := post(t, srv, d.ID, "before", 5)
	h1.waitMessages(d.ID, 5)
	h1.stop()

	missed := post(t, srv, d.ID, "missed", 7)

	h2 := start(t, srv, []string{d.ID}, withCPs)
	h2.waitReady()
	h2.waitMessages(d.ID, 7)
	after := post(t, srv, d.ID, "after", 2)
	got := h2.waitMessages(d.ID, 9)
	if ids := messageIDs(got); !slices.Equal(ids, append(slices.Clone(missed), after...)) {
		t.Fatalf("after restart got %v\nwant missed %v then %v (before: %v)", ids, missed, after, before)
	}
	for _, e := range h2.rec.all() {
		if e.Type == bridge.MessageCreated && slices.Contains(before, e.Message.ID) {
			t.Errorf("message %s from before the restart emitted again", e.Message.ID)
		}
	}
	cp, ok, _ := cps.Checkpoint(t.Context(), "acme", d.ID)
	if !ok || cp.MessageID != after[1] {
		t.Errorf("checkpoint = %+v, want %s", cp, after[1])
	}
	if n := h2.src.Status().CatchUpEvents; n != 7 {
		t.Errorf("%d events caught up, want the 7 missed", n)
	}
}

// A long catch-up is handed over in batches of at most catchUpBatch messages (each stays
// decoded in memory until the store has it), all of them, in order.
func TestCatchUpHandsOverInBoundedBatches(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	cps := &MemoryCheckpoints{}
	withCPs := func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps; c.PageSize = 100 }

	h1 := start(t, srv, []string{d.ID}, withCPs)
	h1.waitReady()
	post(t, srv, d.ID, "before", 1)
	h1.waitMessages(d.ID, 1)
	h1.stop()

	missed := post(t, srv, d.ID, "missed", 3*catchUpBatch+5)
	h2 := start(t, srv, []string{d.ID}, withCPs)
	h2.waitReady()
	got := h2.waitMessages(d.ID, len(missed))
	if ids := messageIDs(got); !slices.Equal(ids, missed) {
		t.Fatalf("caught up %d messages, not the %d missed in order", len(ids), len(missed))
	}
	if n := h2.rec.largestEmit(); n > catchUpBatch || n == 0 {
		t.Errorf("the largest Emit carried %d events, want 1 to %d", n, catchUpBatch)
	}
}

// An edit made while the source was down becomes message.updated after the restart.
func TestRestartCatchesUpEdits(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	cps := &MemoryCheckpoints{}
	withCPs := func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps }
	h1 := start(t, srv, []string{d.ID}, withCPs)
	h1.waitReady()
	ids := post(t, srv, d.ID, "m", 3)
	h1.waitMessages(d.ID, 3)
	h1.stop()

	// The edit must be later than the checkpoint's creation time (millisecond timestamps).
	eventually(t, "the clock to move", func() bool {
		return time.Since(h1.src.Status().Discussions[0].CheckedAt) > 2*time.Millisecond
	})
	upd, err := srv.UpdateMessage(d.ID, ids[0], "m-0 edited")
	if err != nil {
		t.Fatal(err)
	}
	h2 := start(t, srv, []string{d.ID}, withCPs)
	h2.waitReady()
	eventually(t, "the edit", func() bool {
		for _, e := range h2.rec.all() {
			if e.Type == bridge.MessageUpdated && e.Message.ID == ids[0] && e.Message.VersionID == upd.VersionID && e.Message.Text == "m-0 edited" {
				return true
			}
		}
		return false
	})
	if msgs, _ := h2.rec.userMessages(d.ID); len(msgs) != 0 {
		t.Errorf("user messages re-emitted: %v", messageIDs(msgs))
	}
}

// Without a checkpoint, history is not replayed unless backfill asks for it.
func TestFirstRunBackfill(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	old := post(t, srv, d.ID, "old", 4)

	h := start(t, srv, []string{d.ID})
	h.waitReady()
	fresh := post(t, srv, d.ID, "new", 1)
	if ids := messageIDs(h.waitMessages(d.ID, 1)); !slices.Equal(ids, fresh) {
		t.Errorf("without backfill got %v, want only %v", ids, fresh)
	}
	h.stop()

	hb := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
		c.Backfill = config.Duration(time.Hour)
		c.PageSize = 2
	})
	hb.waitReady()
	if ids := messageIDs(hb.waitMessages(d.ID, 5)); !slices.Equal(ids, append(old, fresh...)) {
		t.Errorf("with backfill got %v, want %v", ids, append(old, fresh...))
	}
}

// Wrong credentials: one clear error line without the secret, retries that go on, and
// recovery once the credentials work.
func TestWrongCredentials(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	const wrong = "wr0ng-Secret-value"
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) { c.ClientSecret = wrong })
	eventually(t, "several token requests", func() bool { return srv.Stats().TokenRequests >= 5 })
	eventually(t, "the refusals counted", func() bool { return h.src.Status().TokenRequests[TokenRefused] >= 5 })
	if st := h.src.Status(); st.TokenRequests[TokenOK] != 0 || st.TokenRequests[TokenError] != 0 {
		t.Errorf("token requests = %v, want only refusals", st.TokenRequests)
	}

	lines := h.logs.lines("level=ERROR", "kinetic: token request refused: 401", "check client_id/client_secret")
	if len(lines) != 1 {
		t.Errorf("%d error lines, want exactly 1:\n%s", len(lines), h.logs.String())
	}
	for _, s := range []string{wrong, testSecret} {
		if strings.Contains(h.logs.String(), s) {
			t.Errorf("a secret is in the log")
		}
	}
	st := h.src.Status()
	if st.Identified || !strings.Contains(st.LastError, "refused: 401") || strings.Contains(st.LastError, wrong) {
		t.Errorf("status = %+v", st)
	}
	if srv.Stats().ConnectionsTotal != 0 {
		t.Errorf("connected without a token")
	}

	// The operator fixes the account; the source recovers without a restart.
	srv.AddUser(kinetictest.User{Username: testClientID, DisplayName: "Integration User"}, wrong)
	h.waitReady()
	ids := post(t, srv, d.ID, "m", 2)
	if got := messageIDs(h.waitMessages(d.ID, 2)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
}

// A token server that fails with 5xx is retried on the normal schedule.
func TestTokenEndpointFailing(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	srv.FailTokens(3, http.StatusServiceUnavailable)
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	if n := srv.Stats().TokenRequests; n != 4 {
		t.Errorf("%d token requests, want 4", n)
	}
	want := map[string]uint64{TokenOK: 1, TokenRefused: 0, TokenError: 3}
	if got := h.src.Status().TokenRequests; !maps.Equal(got, want) {
		t.Errorf("Status().TokenRequests = %v, want %v", got, want)
	}
	if n := len(h.logs.lines("level=WARN", "kinetic: cannot connect", "503")); n != 1 {
		t.Errorf("%d 'cannot connect' lines for the same failure, want 1", n)
	}
}

// Tokens are reused until shortly before they expire; an expired one refused by identify is
// replaced at once.
func TestTokenCachingAndRefresh(t *testing.T) {
	srv := newSim(t, kinetictest.Options{TokenLifetime: time.Second})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})

	ts := newTokenSource(srv.URL(), testClientID, testSecret, &http.Client{Timeout: 5 * time.Second})
	t.Cleanup(ts.client.CloseIdleConnections)
	t1, err := ts.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := ts.Token(t.Context())
	if t1.AccessToken != t2.AccessToken || srv.Stats().TokenRequests != 1 || ts.Username() != testClientID {
		t.Fatalf("token not cached: %d requests", srv.Stats().TokenRequests)
	}
	if left := time.Until(t1.Expiry); left > 800*time.Millisecond || left < 600*time.Millisecond {
		t.Errorf("token valid for %s more, want the lifetime less a fifth", left)
	}
	if !ts.renewsAt().Equal(t1.Expiry) {
		t.Errorf("renewsAt = %v, want the cached token's expiry %v", ts.renewsAt(), t1.Expiry)
	}
	ts.Invalidate("some other token") // a stale invalidation changes nothing
	if t3, _ := ts.Token(t.Context()); t3.AccessToken != t1.AccessToken {
		t.Error("a stale Invalidate dropped the current token")
	}
	ts.Invalidate(t1.AccessToken)
	if _, err := ts.Token(t.Context()); err != nil || srv.Stats().TokenRequests != 2 {
		t.Errorf("Invalidate did not force a fresh token: %v, %d requests", err, srv.Stats().TokenRequests)
	}
	eventually(t, "the token to expire and be renewed", func() bool {
		_, err := ts.Token(t.Context())
		return err == nil && srv.Stats().TokenRequests == 3
	})

	// The running source, reconnecting for a few token lifetimes: the server expires tokens
	// by the second, so a cached token is sometimes refused; identify then gets a fresh one.
	base := srv.Stats()
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	var ids []string
	// Reconnect for 2.5 token lifetimes, however fast reconnecting is (40 rounds took less
	// than one lifetime once reconnects got faster, and then one token served them all).
	until := time.Now().Add(2500 * time.Millisecond)
	for i := 0; i < 400 && time.Now().Before(until); i++ {
		ids = append(ids, post(t, srv, d.ID, fmt.Sprintf("r%d", i), 1)...)
		dropped := srv.Stats().ConnectionsTotal
		srv.DropConnections()
		eventually(t, "a new connection", func() bool { return srv.Stats().ConnectionsTotal > dropped && h.src.Status().Ready() })
	}
	if got := messageIDs(h.waitMessages(d.ID, len(ids))); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
	st := srv.Stats()
	tokens, identifies := st.TokenRequests-base.TokenRequests, st.Identifies-base.Identifies
	t.Logf("%d token requests for %d identifies", tokens, identifies)
	if tokens < 2 || tokens >= identifies {
		t.Errorf("%d token requests for %d identifies: tokens not renewed or not reused", tokens, identifies)
	}
	if at := h.src.Status().TokenRenewsAt; at.IsZero() || time.Until(at) > time.Second {
		t.Errorf("Status().TokenRenewsAt = %v, want within the 1s lifetime", at)
	}
	if got := h.src.Status().TokenRequests; got[TokenOK] < 2 || got[TokenOK] > uint64(tokens) || got[TokenError]+got[TokenRefused] != 0 {
		t.Errorf("Status().TokenRequests = %v, want the %d renewals, all ok", got, tokens)
	}
}

// An identify refused once is retried at once with a fresh token on the same connection.
func TestIdentifyRefusedOnce(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	srv.RefuseIdentifies(1)
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	st := srv.Stats()
	if st.Identifies != 2 || st.TokenRequests != 2 || st.ConnectionsTotal != 1 {
		t.Errorf("identifies=%d tokens=%d connections=%d, want 2 2 1", st.Identifies, st.TokenRequests, st.ConnectionsTotal)
	}
	ids := post(t, srv, d.ID, "m", 2)
	if got := messageIDs(h.waitMessages(d.ID, 2)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}

	// Refused twice: a new connection after a backoff.
	srv.RefuseIdentifies(2)
	srv.DropConnections()
	eventually(t, "a third connection", func() bool { return srv.Stats().ConnectionsTotal >= 3 })
	h.waitReady()
	ids = append(ids, post(t, srv, d.ID, "n", 2)...)
	if got := messageIDs(h.waitMessages(d.ID, 4)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
}

// A subscribe refused for one discussion leaves the others flowing; it is retried on the
// slow schedule and succeeds once allowed.
func TestSubscribeRefusedForOne(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"})
	srv.Forbid(testClientID, b.ID)
	h := start(t, srv, []string{a.ID, b.ID})
	eventually(t, "a subscribed, b refused", func() bool {
		st := h.src.Status()
		return st.Discussions[0].State == StateSubscribed && st.Discussions[0].CaughtUp && st.Discussions[1].State == StateRefused
	})
	if st := h.src.Status(); st.Ready() || st.Discussions[1].Error != "Unauthorized" {
		t.Errorf("status = %+v", st)
	}
	if n := len(h.logs.lines("level=WARN", "kinetic: subscribe refused", "discussion="+b.ID, "answer=Unauthorized")); n != 1 {
		t.Errorf("%d warnings for the refusal, want 1 (later ones are debug):\n%s", n, h.logs.String())
	}
	ids := post(t, srv, a.ID, "a", 3)
	if got := messageIDs(h.waitMessages(a.ID, 3)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}

	eventually(t, "a retried subscribe", func() bool { return len(h.logs.lines("kinetic: subscribe refused", "discussion="+b.ID)) >= 2 })
	srv.Allow(testClientID, b.ID)
	h.waitReady()
	idsB := post(t, srv, b.ID, "b", 2)
	if got := messageIDs(h.waitMessages(b.ID, 2)); !slices.Equal(got, idsB) {
		t.Errorf("got %v, want %v", got, idsB)
	}
}

// A server-initiated unsubscribe (kdbridge's user was removed) is final: logged once, shown
// as removed, not subscribed again on the slow schedule nor on a reconnect; a reload
// (RetryRemoved) subscribes again and catches up what was posted in between.
func TestServerUnsubscribe(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	other := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "y"})
	h := start(t, srv, []string{d.ID, other.ID})
	h.waitReady()
	ids := post(t, srv, d.ID, "m", 2)
	h.waitMessages(d.ID, 2)
	srv.Unsubscribe(d.ID)
	h.waitStatus("the removal", func(st Status) bool { return st.Discussions[0].State == StateRemoved && st.Evictions == 1 })
	ids = append(ids, post(t, srv, d.ID, "gap", 3)...)

	// Longer than the slow schedule (resubscribe, 200 ms here), and a reconnect: still removed.
	subscribes := srv.Stats().Subscribes
	connects := h.src.Status().Connects
	srv.DropConnections()
	h.waitStatus("a reconnect", func(st Status) bool {
		return st.Connects > connects && st.Discussions[1].State == StateSubscribed && st.Discussions[1].CaughtUp
	})
	idsOther := post(t, srv, other.ID, "o", 1)
	h.waitMessages(other.ID, 1)
	if got := srv.Stats().Subscribes - subscribes; got != 1 {
		t.Errorf("%d subscribes after the removal, want 1 (the other discussion's, on the new connection)", got)
	}
	if st := h.src.Status(); st.Discussions[0].State != StateRemoved {
		t.Errorf("state after a reconnect = %s, want removed", st.Discussions[0].State)
	}
	if msgs, _ := h.rec.userMessages(d.ID); len(msgs) != 2 {
		t.Errorf("%d messages of the removed discussion, want the 2 from before", len(msgs))
	}

	h.src.RetryRemoved() // what a reload does
	h.waitReady()
	if got := messageIDs(h.waitMessages(d.ID, 5)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
	exactlyOnce(t, h.rec.all(), other.ID, idsOther)
	if n := len(h.logs.lines("level=WARN", "removed from the discussion", "discussion="+d.ID)); n != 1 {
		t.Errorf("%d removal lines, want 1:\n%s", n, h.logs.String())
	}
}

// A discussion removed by the server and then no longer discovered (or configured) is
// subscribed again when it is wanted again.
func TestRemovedWantedAgain(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"})
	h := start(t, srv, []string{a.ID, b.ID})
	h.waitReady()
	srv.Unsubscribe(a.ID)
	h.waitStatus("the removal", func(st Status) bool { return st.Discussions[0].State == StateRemoved })
	h.src.SetDiscussions([]string{a.ID, b.ID}) // the same list: a reload, which subscribes again
	h.waitReady()

	srv.Unsubscribe(a.ID)
	h.waitStatus("the second removal", func(st Status) bool { return st.Discussions[0].State == StateRemoved })
	h.src.SetDiscussions([]string{b.ID})
	h.waitStatus("a dropped", func(st Status) bool { return slices.Equal(statusIDs(st), []string{b.ID}) })
	h.src.SetDiscussions([]string{b.ID, a.ID})
	h.waitStatus("a subscribed again", func(st Status) bool { return st.Ready() && len(st.Discussions) == 2 })
	ids := post(t, srv, a.ID, "a", 2)
	if got := messageIDs(h.waitMessages(a.ID, 2)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
}

// A half-open connection (the server stops answering, pings included) is detected by the
// read deadline within a few heartbeats.
func TestHalfOpenDetected(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
		c.Heartbeat = config.Duration(100 * time.Millisecond)
		c.AckTimeout = config.Duration(300 * time.Millisecond)
	})
	h.waitReady()
	ids := post(t, srv, d.ID, "before", 3)
	h.waitMessages(d.ID, 3)
	srv.Stall(true)
	stalled := time.Now()
	ids = append(ids, post(t, srv, d.ID, "stalled", 3)...) // queued behind the stall
	eventually(t, "the stall to be noticed", func() bool { return !h.src.Status().Identified })
	if took := time.Since(stalled); took > 3*time.Second {
		t.Errorf("took %s to notice a half-open connection", took)
	}
	ids = append(ids, post(t, srv, d.ID, "m", 3)...) // caught up after the stall
	srv.Stall(false)
	h.waitReady()
	ids = append(ids, post(t, srv, d.ID, "after", 3)...)
	h.waitMessages(d.ID, len(ids))
	exactlyOnce(t, h.rec.all(), d.ID, ids)
	// The first connection dies by the read deadline (later ones, made while the server is
	// still stalled, may die by the ack timeout).
	if lines := h.logs.lines("kinetic: disconnected", "i/o timeout"); len(lines) != 1 {
		t.Errorf("%d disconnects by read deadline, want 1:\n%s", len(lines), h.logs.String())
	}
}

// Acks that never come end the connection after ack_timeout; the source reconnects.
func TestWithheldAcks(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	srv.WithholdAcks(true)
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
		c.AckTimeout = config.Duration(200 * time.Millisecond)
	})
	eventually(t, "a few attempts", func() bool { return srv.Stats().ConnectionsTotal >= 3 })
	if h.src.Status().Identified {
		t.Error("identified without an ack")
	}
	srv.WithholdAcks(false)
	h.waitReady()
	if !strings.Contains(h.logs.String(), "no ack for identify") {
		t.Errorf("no ack timeout logged:\n%s", h.logs.String())
	}
}

// Garbage, unknown events, wrong shapes and an oversized frame between valid messages:
// counted, logged at most once per kind, and every message still arrives in order.
func TestBadFramesInterleaved(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
		c.ReadLimit = 16 << 10
		tm.badLogEvery = time.Hour
	})
	h.waitReady()
	topic := `"topic":"discussions/discussion/` + d.ID + `"`
	garbage := [][]byte{
		[]byte(`{not json`),
		[]byte(`[]`),
		[]byte(`{` + topic + `,"event":"message:reacted","payload":{"id":"x"}}`),
		[]byte(`{` + topic + `,"event":"message:created","payload":[1]}`),
		[]byte(`{` + topic + `,"event":"message:created","payload":{"content":[]}}`),
		[]byte(`{"topic":"discussions/discussion/nope","event":"message:created","payload":{"id":"x"}}`),
		[]byte(`{"event":"participant:created","payload":{}}`),
	}
	var want []string
	for i := range 30 {
		srv.SendRaw(garbage[i%len(garbage)])
		want = append(want, post(t, srv, d.ID, fmt.Sprintf("r%d", i), 1)...)
		if i == 15 {
			srv.SendRaw([]byte(`{"event":"presence","payload":"` + strings.Repeat("x", 20<<10) + `"}`))
		}
	}
	h.waitMessages(d.ID, len(want))
	exactlyOnce(t, h.rec.all(), d.ID, want)
	// Frames sent while the oversized one had the source reconnecting are lost to it, so
	// only the first half of the garbage is certain to have arrived.
	b := h.src.Status().BadInput
	if b[badMalformed] < 4 || b[badUnknownEvent] < 2 || b[badPayload] < 2 || b[badMissingField] < 4 ||
		b[badDiscussion] < 2 || b[badOversized] != 1 {
		t.Errorf("counters = %v", b)
	}
	if n := len(h.logs.lines("kinetic: ignoring bad input", "kind="+badMalformed)); n != 1 {
		t.Errorf("%d log lines for malformed frames, want 1 (rate-limited)", n)
	}
	if n := len(h.logs.lines("kind=" + badOversized)); n != 1 {
		t.Errorf("%d log lines for the oversized frame, want 1", n)
	}
	if srv.Stats().ConnectionsTotal < 2 {
		t.Error("the oversized frame did not cost the connection")
	}
}

// Events the emitter refuses are retried, in order, and the checkpoint never passes one
// that was not accepted.
func TestEmitErrorsRetried(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	cps := &MemoryCheckpoints{}
	var mu sync.Mutex
	refusals := map[string]int{}
	var violations []string
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps })
	h.rec.setReject(func(e bridge.Event) error { // runs under the recorder's lock
		mu.Lock()
		defer mu.Unlock()
		if e.Message == nil || e.Message.Kind != bridge.KindUser {
			return nil
		}
		if cp, ok, _ := cps.Checkpoint(t.Context(), "acme", d.ID); ok && cp.MessageID == e.Message.ID {
			violations = append(violations, e.Message.ID)
		}
		if refusals[e.ID] < 2 {
			refusals[e.ID]++
			return errRejected
		}
		return nil
	})

	h.waitReady()
	ids := post(t, srv, d.ID, "m", 10)
	srv.DropConnections()
	ids = append(ids, post(t, srv, d.ID, "n", 5)...)
	if got := messageIDs(h.waitMessages(d.ID, 15)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("checkpoint set before the emitter accepted %v", violations)
	}
	if n := len(h.logs.lines("kinetic: events not accepted")); n == 0 || n > 20 {
		t.Errorf("%d 'not accepted' lines", n)
	}
}

// REST failures during catch-up are retried; nothing is lost.
func TestCatchUpRetriesREST(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	ids := post(t, srv, d.ID, "m", 2)
	h.waitMessages(d.ID, 2)
	srv.FailREST(12, http.StatusBadGateway) // more than one call's worth of retries
	srv.DropConnections()
	ids = append(ids, post(t, srv, d.ID, "n", 3)...)
	if got := messageIDs(h.waitMessages(d.ID, 5)); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
	if n := len(h.logs.lines("kinetic: catch-up failed, retrying")); n != 1 {
		t.Errorf("%d catch-up failure lines, want 1", n)
	}
}

// Live events that arrive while a catch-up is still running wait for it: nothing newer is
// emitted before the older messages the catch-up brings.
func TestLiveWaitsForCatchUp(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	ids := post(t, srv, d.ID, "m", 2)
	h.waitMessages(d.ID, 2)

	srv.FailREST(1<<30, http.StatusServiceUnavailable) // every catch-up fails until lifted
	dropped := srv.Stats().ConnectionsTotal
	srv.DropConnections()
	ids = append(ids, post(t, srv, d.ID, "gap", 3)...)
	eventually(t, "subscribed again, catch-up failing", func() bool {
		st := h.src.Status()
		return srv.Stats().ConnectionsTotal > dropped && st.Identified &&
			st.Discussions[0].State == StateSubscribed && !st.Discussions[0].CaughtUp &&
			len(h.logs.lines("kinetic: catch-up failed")) > 0
	})
	ids = append(ids, post(t, srv, d.ID, "live", 3)...)
	// The live messages reach the source (its queue) but are not emitted yet.
	eventually(t, "the live frames to be queued", func() bool { return h.src.Status().Discussions[0].Queued >= 3 })
	if got, _ := h.rec.userMessages(d.ID); len(got) != 2 {
		t.Fatalf("emitted %v before the catch-up", messageIDs(got))
	}
	srv.FailREST(0, 0)
	if got := messageIDs(h.waitMessages(d.ID, len(ids))); !slices.Equal(got, ids) {
		t.Errorf("got %v\nwant %v", got, ids)
	}
}

// A discussion's queue that overflows while a catch-up is stuck drops live events and
// catches up instead: messages are not lost, and the drop is counted.
func TestQueueOverflowCatchesUp(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) { tm.queueCap = 4 })
	h.waitReady()
	srv.FailREST(1<<30, http.StatusServiceUnavailable)
	dropped := srv.Stats().ConnectionsTotal
	srv.DropConnections()
	eventually(t, "subscribed again, catch-up failing", func() bool {
		st := h.src.Status()
		return srv.Stats().ConnectionsTotal > dropped && st.Identified && st.Discussions[0].State == StateSubscribed &&
			len(h.logs.lines("kinetic: catch-up failed")) > 0
	})
	ids := post(t, srv, d.ID, "m", 10)
	eventually(t, "an overflow", func() bool { return h.src.Status().Dropped > 0 })
	srv.FailREST(0, 0)
	if got := messageIDs(h.waitMessages(d.ID, len(ids))); !slices.Equal(got, ids) {
		t.Errorf("got %v\nwant %v", got, ids)
	}
	if n := len(h.logs.lines("kinetic: event queue full")); n == 0 {
		t.Error("overflow not logged")
	}
}
