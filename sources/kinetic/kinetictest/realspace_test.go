package kinetictest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// SilenceExpired: once the identity's token has expired, discussion events stop without a
// word; identifying again with a fresh token resumes them.
func TestSilenceExpired(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now, TokenLifetime: time.Minute})
	d := s.CreateDiscussion(DiscussionSpec{Title: "one"})
	c := subscribed(t, s, d.ID)
	s.SilenceExpired(true)
	clock.Advance(2 * time.Minute)
	if _, err := s.PostMessage(d.ID, User{Username: "u"}, "unseen"); err != nil {
		t.Fatal(err)
	}
	c.identify(token(t, s)) // fresh: the next frame is the next message, not "unseen"
	if _, err := s.PostMessage(d.ID, User{Username: "u"}, "seen"); err != nil {
		t.Fatal(err)
	}
	if f := c.nextEvent("message:created"); decode[Message](t, f.Payload).Text() != "seen" {
		t.Fatalf("got %s", f)
	}
}

// SetSubscribeDelay: subscribes sent together are answered one delay apart, in order.
func TestSubscribeDelay(t *testing.T) {
	s := newTestServer(t, Options{})
	d1 := s.CreateDiscussion(DiscussionSpec{Title: "one"})
	d2 := s.CreateDiscussion(DiscussionSpec{Title: "two"})
	s.SetSubscribeDelay(30 * time.Millisecond)
	c := dial(t, s)
	c.identify(token(t, s))
	r1 := c.send("subscribe", map[string]string{"topic": topicOf(d1.ID)})
	r2 := c.send("subscribe", map[string]string{"topic": topicOf(d2.ID)})
	var acks []string
	for i := 0; i < 20 && len(acks) < 2; i++ {
		if f := c.next(); f.Event == "ack-ok" {
			acks = append(acks, f.Ref)
		}
	}
	if len(acks) != 2 || acks[0] != r1 || acks[1] != r2 {
		t.Fatalf("acks %v, want %s then %s", acks, r1, r2)
	}
	if st := s.Stats(); st.Subscriptions != 2 {
		t.Errorf("%d subscriptions, want 2", st.Subscriptions)
	}
}

// AnswerForeign answers a path as another server would; AddClient issues tokens whose
// clientId and username differ.
func TestAnswerForeignAndAddClient(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AnswerForeign("/app/oauth/token", http.StatusNotFound, "text/html", "<html>Not here</html>")
	resp, err := http.Post(s.URL()+"/app/oauth/token?grant_type=client_credentials", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "text/html" || string(body) != "<html>Not here</html>" {
		t.Fatalf("foreign answer: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	s.AnswerForeign("/app/oauth/token", 0, "", "")

	s.AddClient("bridge-client", "client-pw", User{Username: "svc-bridge"})
	status, tok := fetchToken(t, s, "bridge-client", "client-pw")
	if status != http.StatusOK || tok["username"] != "svc-bridge" {
		t.Fatalf("token: %d %v", status, tok)
	}
	parts := strings.Split(tok["access_token"].(string), ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil || c.ClientID != "bridge-client" || c.Username != "svc-bridge" {
		t.Errorf("claims %+v (%v)", c, err)
	}
	if status, _ := fetchToken(t, s, "bridge-client", "wrong"); status != http.StatusUnauthorized {
		t.Errorf("a wrong client secret: %d", status)
	}
}
