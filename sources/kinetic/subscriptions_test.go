package kinetic

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// SetDiscussions while running: the dropped discussion is unsubscribed and forgotten, the
// new one subscribed and flowing, the kept one untouched — on the same connection.
func TestSetDiscussionsWhileRunning(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"})
	c := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "c"})
	h := start(t, srv, []string{a.ID, b.ID})
	h.waitReady()
	wantA := post(t, srv, a.ID, "a", 2)
	wantB := post(t, srv, b.ID, "b", 2)
	h.waitMessages(a.ID, 2)
	h.waitMessages(b.ID, 2)
	post(t, srv, c.ID, "c-history", 3) // before c is wanted: history, not replayed

	base := srv.Stats()
	if base.Subscriptions != 2 || base.ConnectionsTotal != 1 {
		t.Fatalf("before: %+v", base)
	}
	h.src.SetDiscussions([]string{b.ID, c.ID})
	if ids := statusIDs(h.src.Status()); !slices.Equal(ids, []string{b.ID, c.ID}) {
		t.Errorf("Status lists %v right after SetDiscussions, want [b c]", ids)
	}
	h.waitStatus("b and c subscribed", func(st Status) bool {
		return st.Ready() && slices.Equal(statusIDs(st), []string{b.ID, c.ID})
	})
	eventually(t, "a unsubscribed", func() bool { return len(h.logs.lines("kinetic: unsubscribed", "discussion="+a.ID)) == 1 })
	st := srv.Stats()
	if st.Unsubscribes != base.Unsubscribes+1 || st.Subscribes != base.Subscribes+1 || st.Subscriptions != 2 {
		t.Errorf("unsubscribes %d→%d, subscribes %d→%d, subscriptions %d: want one of each, 2 left",
			base.Unsubscribes, st.Unsubscribes, base.Subscribes, st.Subscribes, st.Subscriptions)
	}

	post(t, srv, a.ID, "a-after", 3)
	wantB = append(wantB, post(t, srv, b.ID, "b", 3)...)
	wantC := post(t, srv, c.ID, "c", 3)
	h.waitMessages(b.ID, len(wantB))
	h.waitMessages(c.ID, len(wantC))
	evs := h.rec.all()
	exactlyOnce(t, evs, a.ID, wantA)
	exactlyOnce(t, evs, b.ID, wantB)
	exactlyOnce(t, evs, c.ID, wantC)
	if n := srv.Stats().ConnectionsTotal; n != base.ConnectionsTotal {
		t.Errorf("%d connections, want %d: SetDiscussions reconnected", n, base.ConnectionsTotal)
	}
	for _, l := range []string{"kinetic: discussion removed", "kinetic: discussion added"} {
		if n := len(h.logs.lines(l)); n != 1 {
			t.Errorf("%d %q lines, want 1", n, l)
		}
	}
}

// SetDiscussions before Run sets what Run subscribes; bad ids are ignored.
func TestSetDiscussionsBeforeRun(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"})
	h := build(t, srv, []string{a.ID})
	h.src.SetDiscussions([]string{b.ID, "not/an id", b.ID})
	if ids := statusIDs(h.src.Status()); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("Status lists %v, want [b]", ids)
	}
	if n := len(h.logs.lines("level=WARN", "ignoring an invalid discussion id")); n != 1 {
		t.Errorf("%d warnings for the bad id, want 1", n)
	}
	h.run()
	h.waitReady()
	want := post(t, srv, b.ID, "b", 2)
	post(t, srv, a.ID, "a", 1)
	h.waitMessages(b.ID, 2)
	exactlyOnce(t, h.rec.all(), b.ID, want)
	exactlyOnce(t, h.rec.all(), a.ID, nil)
	if st := srv.Stats(); st.Subscribes != 1 || st.Unsubscribes != 0 {
		t.Errorf("subscribes %d, unsubscribes %d, want 1 and 0", st.Subscribes, st.Unsubscribes)
	}
}

// Many concurrent SetDiscussions calls, while running and while reconnecting, settle on the
// last set: subscribed on the server exactly to it, and its messages flowing.
func TestSetDiscussionsConcurrent(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	var ds []string
	for i := range 5 {
		ds = append(ds, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	h := start(t, srv, ds[:2])
	h.waitReady()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 40 {
				var set []string
				for j, id := range ds {
					if (i+g+j)%3 != 0 {
						set = append(set, id)
					}
				}
				h.src.SetDiscussions(set)
				if g == 0 && i%10 == 5 {
					srv.DropConnections()
				}
			}
		})
	}
	wg.Wait()
	final := []string{ds[3], ds[1]}
	h.src.SetDiscussions(final)
	h.waitStatus("the final set subscribed", func(st Status) bool {
		return st.Ready() && slices.Equal(statusIDs(st), final)
	})
	eventually(t, "the server to agree", func() bool {
		return srv.Stats().Subscriptions == 2
	})
	var want [][]string
	for _, id := range final {
		want = append(want, post(t, srv, id, "m", 3))
	}
	post(t, srv, ds[0], "gone", 2)
	for i, id := range final {
		h.waitMessages(id, 3)
		msgs, dups := h.rec.userMessages(id)
		if dups != 0 || !slices.Equal(messageIDs(msgs)[len(msgs)-3:], want[i]) {
			t.Errorf("discussion %s: %v (%d duplicates), want to end with %v", id, messageIDs(msgs), dups, want[i])
		}
	}
	for _, e := range h.rec.all() {
		if e.Message != nil && strings.HasPrefix(e.Message.Text, "gone-") {
			t.Errorf("message %q of a dropped discussion emitted", e.Message.Text)
		}
	}
}

// An unsubscribe that gets no ack ends the connection after ack_timeout, like any other
// request; the next connection subscribes only to what is wanted.
func TestUnsubscribeAckTimeout(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "a"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "b"})
	h := start(t, srv, []string{a.ID, b.ID}, func(c *Config, o *Options, tm *timing) {
		c.AckTimeout = config.Duration(200 * time.Millisecond)
	})
	h.waitReady()
	srv.WithholdAcks(true)
	h.src.SetDiscussions([]string{b.ID})
	eventually(t, "the ack timeout", func() bool { return len(h.logs.lines("kinetic: disconnected", "no ack for unsubscribe")) == 1 })
	srv.WithholdAcks(false)
	h.waitStatus("b subscribed again", func(st Status) bool { return st.Ready() && slices.Equal(statusIDs(st), []string{b.ID}) })
	eventually(t, "one subscription on the server", func() bool { st := srv.Stats(); return st.Connections == 1 && st.Subscriptions == 1 })
	want := post(t, srv, b.ID, "b", 2)
	post(t, srv, a.ID, "a", 2)
	h.waitMessages(b.ID, 2)
	exactlyOnce(t, h.rec.all(), b.ID, want)
	exactlyOnce(t, h.rec.all(), a.ID, nil)
}
