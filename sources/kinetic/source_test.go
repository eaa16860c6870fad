package kinetic

import (
	"slices"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

func TestLiveMessagesInOrder(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Incident 7"})
	h := start(t, srv, []string{d.ID})
	h.waitReady()

	want := post(t, srv, d.ID, "live", 50)
	reply, err := srv.PostReply(d.ID, want[0], kinetictest.Bob, "answer")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, reply.ID)
	got := h.waitMessages(d.ID, len(want))
	if ids := messageIDs(got); !slices.Equal(ids, want) {
		t.Fatalf("order:\n got %v\nwant %v", ids, want)
	}
	first, last := got[0], got[len(got)-1]
	if first.Message.Text != "live-0" || first.Message.Author.DisplayName != "Alice Moreau" || first.Source != "acme" {
		t.Errorf("first = %+v", first.Message)
	}
	if first.Discussion.Title != "Incident 7" || first.Discussion.URL != srv.URL()+"/#/discussions/"+d.ID {
		t.Errorf("discussion = %+v", first.Discussion)
	}
	if last.Message.ParentID != want[0] || last.Message.Author.Username != "bob" {
		t.Errorf("reply = %+v", last.Message)
	}
	if len(first.Raw) == 0 || first.ID != bridge.EventID("acme", d.ID, want[0], "", bridge.MessageCreated) {
		t.Errorf("event %s raw %s", first.ID, first.Raw)
	}

	// Edits and deletes flow too, with ids keyed by version.
	upd, err := srv.UpdateMessage(d.ID, want[1], "live-1 (edited)")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.DeleteMessage(d.ID, want[2]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "update and delete", func() bool {
		var u, del bool
		for _, e := range h.rec.all() {
			u = u || (e.Type == bridge.MessageUpdated && e.Message.ID == want[1] && e.Message.Text == "live-1 (edited)" &&
				e.ID == bridge.EventID("acme", d.ID, want[1], upd.VersionID, bridge.MessageUpdated))
			del = del || (e.Type == bridge.MessageDeleted && e.Message.ID == want[2])
		}
		return u && del
	})
	st := h.src.Status()
	if !st.Identified || st.Username != testClientID || st.Discussions[0].Checkpoint == "" || st.Discussions[0].Title != "Incident 7" {
		t.Errorf("status = %+v", st)
	}
	if n := len(h.logs.lines("kinetic: connected")); n != 1 {
		t.Errorf("%d 'connected' lines, want 1", n)
	}
	if n := len(h.logs.lines("kinetic: subscribed", "subscribed=1")); n != 1 {
		t.Errorf("%d 'subscribed' lines, want 1", n)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	post(t, srv, d.ID, "m", 3)
	h.waitMessages(d.ID, 3)
	srv.DropConnections()
	h.waitReady()
	h.stop()
	if strings.Contains(h.logs.String(), testSecret) {
		t.Fatal("the client secret is in the log")
	}
	tok, _ := h.src.tokens.Token(t.Context())
	if tok != nil && strings.Contains(h.logs.String(), tok.AccessToken) {
		t.Fatal("the access token is in the log")
	}
}
