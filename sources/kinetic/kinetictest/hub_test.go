package kinetictest

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestIdentify(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})
	tok := token(t, s)

	c := dial(t, s)
	// The exact frame of the reference's client test (§3.3) and the exact ack.
	c.sendRaw([]byte(`{"topic":"topichub","action":"identify","payload":{"token":"` + tok + `"},"ref":"1"}`))
	if f := c.next(); string(f.raw) != `{"event":"ack-ok","ref":"1"}` {
		t.Fatalf("ack %s", f)
	}
	// Refs are echoed whatever their spelling (Ruby uses words, §3.2).
	c.sendRaw([]byte(`{"topic":"topichub","action":"identify","payload":{"token":"` + tok + `"},"ref":"identify-ref"}`))
	c.expectAck("identify-ref", "ack-ok")

	ref := c.send("identify", map[string]string{"token": "garbage"})
	if f := c.expectAck(ref, "ack-error"); string(f.Payload) != `"Unauthorized"` {
		t.Fatalf("payload %s", f.Payload)
	}

	clock.Advance(43199 * time.Second)
	ref = c.send("identify", map[string]string{"token": tok})
	c.expectAck(ref, "ack-error")
	if got := s.Stats().Identifies; got != 4 {
		t.Errorf("Identifies = %d, want 4", got)
	}
}

func TestSubscribeRefusals(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AddUser(User{Username: "dana", DisplayName: "Dana"}, "pw")
	d := s.CreateDiscussion(DiscussionSpec{Title: "open"})
	priv := s.CreateDiscussion(DiscussionSpec{Title: "private", IsPrivate: true})
	s.Forbid("integration-user", d.ID)

	c := dial(t, s)
	ref := c.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	c.expectAck(ref, "ack-error") // before identify

	c.identify(token(t, s))
	ref = c.send("subscribe", map[string]string{"topic": topicOf("no-such-discussion")})
	if f := c.expectAck(ref, "ack-error"); string(f.Payload) != `"Not Found"` {
		t.Fatalf("payload %s", f.Payload)
	}
	ref = c.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	if f := c.expectAck(ref, "ack-error"); string(f.Payload) != `"Unauthorized"` {
		t.Fatalf("payload %s", f.Payload)
	}
	ref = c.send("unsubscribe", map[string]string{"topic": topicOf(d.ID)})
	c.expectAck(ref, "ack-error")
	ref = c.send("dance", nil)
	c.expectAck(ref, "ack-error")

	// The forbidden user gets 403 over REST too.
	status, raw := call(t, s, token(t, s), http.MethodGet, "/discussions/"+d.ID, nil)
	wantError(t, status, raw, http.StatusForbidden)
	status, raw = call(t, s, token(t, s), http.MethodGet, "/discussions/"+d.ID+"/messages", nil)
	wantError(t, status, raw, http.StatusForbidden)

	// A private discussion is closed to a non-admin who is neither owner, participant
	// nor invitee; the admin integration user may enter.
	dana, err := s.Token("dana")
	if err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, s)
	c2.identify(dana)
	ref = c2.send("subscribe", map[string]string{"topic": topicOf(priv.ID)})
	c2.expectAck(ref, "ack-error")
	c.subscribe(priv.ID)
	c.nextEvent("participant:created")
	c.nextEvent("message:created")

	s.Allow("integration-user", d.ID)
	c.subscribe(d.ID)
}

func TestSubscribeJoinAndPresence(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AddUser(User{Username: "dana", DisplayName: "Dana", Email: "dana@example.com"}, "pw")
	d := s.CreateDiscussion(DiscussionSpec{Title: "join"})

	c := dial(t, s)
	c.identify(token(t, s))
	ref := c.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	c.expectAck(ref, "ack-ok")

	f := c.next()
	if f.Topic != "topichub" || f.Event != "presence" {
		t.Fatalf("want presence, got %s", f)
	}
	init := decode[struct {
		Op        string                       `json:"op"`
		Presences []map[string]json.RawMessage `json:"presences"`
	}](t, f.Payload)
	if init.Op != "INIT" || len(init.Presences) != 1 {
		t.Fatalf("presence %s", f.Payload)
	}
	p := init.Presences[0]
	if string(p["topic"]) != `"`+topicOf(d.ID)+`"` || string(p["user"]) != `"integration-user"` || len(p["connection"]) < 3 {
		t.Fatalf("presence entry %s", f.Payload)
	}

	// Join side effect: participant:created, then the Participant Joined system message.
	f = c.next()
	if f.Topic != topicOf(d.ID) || f.Event != "participant:created" {
		t.Fatalf("want participant:created, got %s", f)
	}
	if pc := decode[Participant](t, f.Payload); pc.User.Username != "integration-user" || pc.LastSeenAt != nil {
		t.Fatalf("participant %s", f.Payload)
	}
	f = c.next()
	if f.Event != "message:created" {
		t.Fatalf("want message:created, got %s", f)
	}
	m := decode[Message](t, f.Payload)
	if m.Type != "System" || m.Action != "Participant Joined" || m.Content[0].Type != "user" || m.Content[0].Name != "user" {
		t.Fatalf("join message %s", f.Payload)
	}
	if u := decode[User](t, m.Content[0].Value); u.Username != "integration-user" {
		t.Fatalf("join user %s", m.Content[0].Value)
	}

	// A second user: the first sees CREATED presence and the join; the second's INIT lists both.
	dana, _ := s.Token("dana")
	c2 := dial(t, s)
	c2.identify(dana)
	ref = c2.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	c2.expectAck(ref, "ack-ok")
	if f := c2.next(); f.Event != "presence" || len(decode[struct {
		Presences []presenceData `json:"presences"`
	}](t, f.Payload).Presences) != 2 {
		t.Fatalf("second INIT %s", f)
	}
	if f := c.next(); f.Event != "presence" || decode[struct {
		Op string `json:"op"`
	}](t, f.Payload).Op != "CREATED" {
		t.Fatalf("want presence CREATED, got %s", f)
	}
	c.nextEvent("participant:created")
	if f := c.nextEvent("message:created"); decode[Message](t, f.Payload).CreatedBy.Username != "dana" {
		t.Fatalf("second join %s", f)
	}
	c2.nextEvent("participant:created")
	c2.nextEvent("message:created")

	// dana leaves: presence REMOVED and the participant goes offline.
	ref = c2.send("unsubscribe", map[string]string{"topic": topicOf(d.ID)})
	c2.expectAck(ref, "ack-ok")
	if f := c.next(); f.Event != "presence" || decode[struct {
		Op string `json:"op"`
	}](t, f.Payload).Op != "REMOVED" {
		t.Fatalf("want presence REMOVED, got %s", f)
	}
	f = c.next()
	if pu := decode[Participant](t, f.Payload); f.Event != "participant:updated" || pu.User.Username != "dana" || pu.LastSeenAt == nil {
		t.Fatalf("want dana offline, got %s", f)
	}
	// Coming back does not join again: the participant comes online.
	ref = c2.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	c2.expectAck(ref, "ack-ok")
	c.nextEvent("presence")
	f = c.next()
	if pu := decode[Participant](t, f.Payload); f.Event != "participant:updated" || pu.LastSeenAt != nil {
		t.Fatalf("want dana online, got %s", f)
	}
	if got := len(s.Messages(d.ID)); got != 2 {
		t.Fatalf("%d system messages, want 2 joins", got)
	}
	if st := s.Stats(); st.Subscriptions != 2 || st.Connections != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// subscribed returns a client identified as the integration user and subscribed to id,
// past the join side effect.
func subscribed(t *testing.T, s *Server, id string) *wsClient {
	t.Helper()
	c := dial(t, s)
	c.identify(token(t, s))
	c.subscribe(id)
	c.nextEvent("participant:created")
	c.nextEvent("message:created")
	return c
}

func TestMessageBroadcasts(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "chat"})
	c := subscribed(t, s, d.ID)
	topic := topicOf(d.ID)
	tok := token(t, s)

	// REST post: the broadcast payload is the message the POST returned.
	var created struct{ Message Message }
	callJSON(t, s, tok, http.MethodPost, "/discussions/"+d.ID+"/messages",
		map[string]any{"content": []map[string]string{{"type": "text", "value": "from REST"}}}, &created)
	f := c.next()
	if f.Topic != topic || f.Event != "message:created" {
		t.Fatalf("got %s", f)
	}
	if m := decode[Message](t, f.Payload); m.ID != created.Message.ID || m.Text() != "from REST" ||
		m.Type != "User" || m.CreatedBy.Username != "integration-user" || m.Parent != nil {
		t.Fatalf("broadcast %s, created %+v", f.Payload, created.Message)
	}

	// Go API post and reply.
	alice := User{Username: "alice", DisplayName: "Alice", Email: "alice@example.com"}
	m1, err := s.PostMessage(d.ID, alice, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if m := decode[Message](t, c.nextEvent("message:created").Payload); m.ID != m1.ID || m.CreatedBy != alice {
		t.Fatalf("got %+v", m)
	}
	r1, err := s.PostReply(d.ID, m1.ID, alice, "a reply")
	if err != nil {
		t.Fatal(err)
	}
	f = c.next()
	if m := decode[Message](t, f.Payload); m.ID != r1.ID || m.ParentID != m1.ID || m.Parent == nil || m.Parent.ID != m1.ID {
		t.Fatalf("reply %s", f.Payload)
	}

	// Update: message:updated with a new version, then the Message Updated system message.
	u1, err := s.UpdateMessage(d.ID, m1.ID, "hello, edited")
	if err != nil {
		t.Fatal(err)
	}
	f = c.next()
	mu := decode[Message](t, f.Payload)
	if f.Event != "message:updated" || mu.ID != m1.ID || mu.VersionID == m1.VersionID || mu.Text() != "hello, edited" || mu.VersionID != u1.VersionID {
		t.Fatalf("update %s", f)
	}
	if f := c.next(); f.Event != "message:created" || decode[Message](t, f.Payload).Action != "Message Updated" {
		t.Fatalf("want Message Updated, got %s", f)
	}

	// REST update.
	callJSON(t, s, tok, http.MethodPut, "/discussions/"+d.ID+"/messages/"+created.Message.ID,
		map[string]any{"content": []map[string]string{{"type": "text", "value": "REST edit"}}}, nil)
	if f := c.next(); f.Event != "message:updated" || decode[Message](t, f.Payload).Text() != "REST edit" {
		t.Fatalf("got %s", f)
	}
	c.nextEvent("message:created")

	// Delete: message:deleted with the full message; the reply's parent becomes unknown.
	if err := s.DeleteMessage(d.ID, m1.ID); err != nil {
		t.Fatal(err)
	}
	f = c.next()
	if md := decode[Message](t, f.Payload); f.Event != "message:deleted" || md.ID != m1.ID || md.Text() != "hello, edited" {
		t.Fatalf("delete %s", f)
	}
	var got struct{ Message Message }
	callJSON(t, s, tok, http.MethodGet, "/discussions/"+d.ID+"/messages/"+r1.ID, nil, &got)
	if got.Message.Parent == nil || !got.Message.Parent.Unknown {
		t.Fatalf("orphan reply %+v", got.Message)
	}
	status, raw := call(t, s, tok, http.MethodDelete, "/discussions/"+d.ID+"/messages/"+created.Message.ID, nil)
	if status != http.StatusOK {
		t.Fatalf("REST delete: %d %s", status, raw)
	}
	if f := c.next(); f.Event != "message:deleted" {
		t.Fatalf("got %s", f)
	}
	status, raw = call(t, s, tok, http.MethodGet, "/discussions/"+d.ID+"/messages/"+m1.ID, nil)
	wantError(t, status, raw, http.StatusNotFound)
}

func TestDiscussionBroadcasts(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "lifecycle"})
	c := subscribed(t, s, d.ID)
	tok := token(t, s)
	base := "/discussions/" + d.ID

	var upd struct{ Discussion Discussion }
	callJSON(t, s, tok, http.MethodPut, base, map[string]any{"title": "renamed"}, &upd)
	f := c.next()
	du := decode[Discussion](t, f.Payload)
	if f.Event != "discussion:updated" || du.Title != "renamed" || du.MessagesPage == nil || du.VersionID == d.VersionID {
		t.Fatalf("got %s", f)
	}
	if f := c.next(); decode[Message](t, f.Payload).Action != "Discussion Updated" {
		t.Fatalf("got %s", f)
	}

	// Participants, invitations, related items.
	callJSON(t, s, tok, http.MethodPost, base+"/participants", map[string]any{"user": map[string]string{"username": "erin"}}, nil)
	if f := c.next(); f.Event != "participant:created" {
		t.Fatalf("got %s", f)
	}
	c.nextEvent("message:created")
	callJSON(t, s, tok, http.MethodPut, base+"/participants/erin", map[string]any{"isMuted": true}, nil)
	if f := c.next(); f.Event != "participant:updated" || !decode[Participant](t, f.Payload).IsMuted {
		t.Fatalf("got %s", f)
	}
	callJSON(t, s, tok, http.MethodDelete, base+"/participants/erin", nil, nil)
	if f := c.next(); f.Event != "participant:deleted" {
		t.Fatalf("got %s", f)
	}
	if f := c.next(); decode[Message](t, f.Payload).Action != "Participant Removed" {
		t.Fatalf("got %s", f)
	}
	callJSON(t, s, tok, http.MethodPost, base+"/invitations", map[string]any{"email": "x@example.com", "message": "join us"}, nil)
	if f := c.next(); f.Event != "invitation:created" || decode[Invitation](t, f.Payload).Email != "x@example.com" {
		t.Fatalf("got %s", f)
	}
	c.nextEvent("message:created")
	callJSON(t, s, tok, http.MethodPut, base+"/invitations/x@example.com?email=true", map[string]any{}, nil)
	if f := c.next(); f.Event != "invitation:updated" {
		t.Fatalf("got %s", f)
	}
	c.nextEvent("message:created")
	callJSON(t, s, tok, http.MethodDelete, base+"/invitations/x@example.com?email=", nil, nil)
	if f := c.next(); f.Event != "invitation:deleted" {
		t.Fatalf("got %s", f)
	}
	if f := c.next(); decode[Message](t, f.Payload).Action != "Invitation Removed" {
		t.Fatalf("got %s", f)
	}
	callJSON(t, s, tok, http.MethodPost, base+"/relatedItems", RelatedItem{Type: "Form", Key: "services/it-request"}, nil)
	if f := c.next(); f.Event != "relatedItem:created" || decode[RelatedItemRecord](t, f.Payload).Key != "services/it-request" {
		t.Fatalf("got %s", f)
	}
	callJSON(t, s, tok, http.MethodGet, base+"/relatedItems/Form/services%2Fit-request", nil, nil)
	callJSON(t, s, tok, http.MethodDelete, base+"/relatedItems/Form/services%2Fit-request", nil, nil)
	if f := c.next(); f.Event != "relatedItem:deleted" {
		t.Fatalf("got %s", f)
	}

	// Archive: discussion:updated; new messages are refused.
	if err := s.ArchiveDiscussion(d.ID); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Event != "discussion:updated" || !decode[Discussion](t, f.Payload).IsArchived {
		t.Fatalf("got %s", f)
	}
	c.nextEvent("message:created")
	if _, err := s.PostMessage(d.ID, User{Username: "x"}, "late"); err == nil {
		t.Fatal("posted to an archived discussion")
	}
	status, raw := call(t, s, tok, http.MethodPost, base+"/messages", map[string]any{"content": []map[string]string{{"type": "text", "value": "late"}}})
	wantError(t, status, raw, http.StatusBadRequest)

	// Delete: discussion:deleted, then unsubscribed.
	callJSON(t, s, tok, http.MethodDelete, base, nil, nil)
	if f := c.next(); f.Event != "discussion:deleted" || decode[Discussion](t, f.Payload).ID != d.ID {
		t.Fatalf("got %s", f)
	}
	f = c.next()
	if f.Topic != "topichub" || f.Event != "unsubscribed" || string(f.Payload) != `{"topic":"`+topicOf(d.ID)+`"}` {
		t.Fatalf("got %s", f)
	}
	status, raw = call(t, s, tok, http.MethodGet, base, nil)
	wantError(t, status, raw, http.StatusNotFound)
	if err := s.DeleteDiscussion(d.ID); err == nil {
		t.Fatal("deleted twice")
	}
}

// TestBroadcastOrder posts 200 messages from four goroutines while two connections
// listen: both must see message:created in exactly the order the store holds them.
func TestBroadcastOrder(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "order"})
	c1 := subscribed(t, s, d.ID)
	// Same user again: already a participant and online, so no join events.
	c2 := dial(t, s)
	c2.identify(token(t, s))
	c2.subscribe(d.ID)
	// c1 sees c2's arrival.
	c1.nextEvent("presence")
	before := len(s.Messages(d.ID))

	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := User{Username: "writer" + itoa(w)}
			for i := range each {
				if _, err := s.PostMessage(d.ID, u, itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	var want []string
	for _, m := range s.Messages(d.ID)[before:] {
		want = append(want, m.ID)
	}
	if len(want) != writers*each {
		t.Fatalf("%d messages stored", len(want))
	}
	for _, c := range []*wsClient{c1, c2} {
		var got []string
		for len(got) < len(want) {
			f := c.next()
			if f.Event != "message:created" {
				t.Fatalf("unexpected %s", f)
			}
			got = append(got, decode[Message](t, f.Payload).ID)
		}
		if !slices.Equal(got, want) {
			t.Fatal("broadcast order differs from store order")
		}
	}
}

func TestHubRobustness(t *testing.T) {
	s := newTestServer(t, Options{})
	c := dial(t, s)

	// Malformed frames are ignored; heartbeats get no answer. The next ack proves both.
	c.sendRaw([]byte(`{"topic":`))
	c.sendRaw([]byte(`[1,2,3]`))
	c.send("heartbeat", nil)
	ref := c.send("identify", map[string]string{"token": token(t, s)})
	c.expectAck(ref, "ack-ok")
	if got := s.Stats().BadFrames; got != 2 {
		t.Errorf("BadFrames = %d, want 2", got)
	}
	// Actions must be on the topichub topic.
	c.sendRaw([]byte(`{"topic":"discussions/discussion/x","action":"identify","ref":"t1"}`))
	c.expectAck("t1", "ack-error")

	// A frame beyond the read limit closes the connection.
	c.sendRaw(make([]byte, maxClientFrame+1))
	c.expectClosed()
	eventually(t, "connection gone", func() bool { return s.Stats().Connections == 0 })
}
