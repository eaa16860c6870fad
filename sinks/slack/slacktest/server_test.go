package slacktest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newServer(t *testing.T, opts Options) (*Server, *slackgo.Client) {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return s, slackgo.New(s.Token(), slackgo.OptionAPIURL(s.URL()), slackgo.OptionHTTPClient(hc))
}

func code(err error) string {
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

func TestPostUpdateDelete(t *testing.T) {
	s, api := newServer(t, Options{Channels: []Channel{{ID: "C1", Name: "ops"}}})
	ctx := context.Background()
	if !strings.HasSuffix(s.URL(), "/api/") || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL = %s", s.URL())
	}
	_, parent, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("parent", false), slackgo.MsgOptionUsername("Alice"))
	if err != nil {
		t.Fatal(err)
	}
	_, reply, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("reply", false), slackgo.MsgOptionTS(parent))
	if err != nil {
		t.Fatal(err)
	}
	// Threads have one level.
	if _, _, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("x", false), slackgo.MsgOptionTS(reply)); code(err) != "thread_not_found" {
		t.Errorf("reply to a reply: %v", err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", reply, slackgo.MsgOptionText("reply, edited", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.DeleteMessageContext(ctx, "C1", parent); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.DeleteMessageContext(ctx, "C1", parent); code(err) != "message_not_found" {
		t.Errorf("second delete: %v", err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", "1.2", slackgo.MsgOptionText("x", false)); code(err) != "message_not_found" {
		t.Errorf("update of an unknown ts: %v", err)
	}
	got := s.Messages("C1")
	if len(got) != 1 || got[0].TS != reply || got[0].ThreadTS != parent || got[0].Text != "reply, edited" || !got[0].Edited {
		t.Errorf("messages = %+v", got)
	}
	if m, ok := s.Message("C1", parent); !ok || !m.Deleted || m.Username != "Alice" {
		t.Errorf("deleted parent = %+v, %v", m, ok)
	}
	posts := s.CallsOf("chat.postMessage")
	if len(posts) != 3 || posts[0].TS != parent || posts[1].Param("thread_ts") != parent || posts[2].OK() || posts[2].Error != "thread_not_found" {
		t.Errorf("calls = %+v", posts)
	}
	for _, c := range s.Calls() {
		if _, ok := c.Params["token"]; ok {
			t.Errorf("token recorded in %s", c.Method)
		}
	}
	if !s.DeleteMessage("C1", reply) || s.DeleteMessage("C1", reply) || len(s.Messages("C1")) != 0 {
		t.Error("DeleteMessage")
	}
}

func TestChannelsAndMembership(t *testing.T) {
	s, api := newServer(t, Options{PageSize: 2, Channels: []Channel{
		{ID: "C1", Name: "ops"}, {ID: "C2", Name: "out", NotMember: true}, {ID: "C3", Name: "old", Archived: true},
		{ID: "G4", Name: "secret", Private: true}, {ID: "G5", Name: "hidden", Private: true, NotMember: true},
	}})
	ctx := context.Background()
	for ch, want := range map[string]string{"C1": "", "C2": "not_in_channel", "C3": "is_archived", "G4": "", "G5": "channel_not_found", "C9": "channel_not_found"} {
		_, _, err := api.PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false))
		if code(err) != want || (want == "" && err != nil) {
			t.Errorf("post to %s: %v, want %q", ch, err, want)
		}
	}
	var names []string
	params := &slackgo.GetConversationsParameters{Types: []string{"public_channel", "private_channel"}, Limit: 999}
	for range 10 {
		list, next, err := api.GetConversationsContext(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			names = append(names, c.Name)
		}
		if next == "" {
			break
		}
		params.Cursor = next
	}
	if fmt.Sprint(names) != "[ops out old secret]" || len(s.CallsOf("conversations.list")) != 2 {
		t.Errorf("listed %v in %d pages", names, len(s.CallsOf("conversations.list")))
	}
	params.Cursor = "garbage"
	if _, _, err := api.GetConversationsContext(ctx, params); code(err) != "invalid_cursor" {
		t.Errorf("bad cursor: %v", err)
	}
	if _, _, err := api.GetConversationsContext(ctx, &slackgo.GetConversationsParameters{Types: []string{"nope"}}); code(err) != "invalid_types" {
		t.Errorf("bad types: %v", err)
	}
	info, err := api.GetConversationInfoContext(ctx, &slackgo.GetConversationInfoInput{ChannelID: "C2"})
	if err != nil || info.Name != "out" || info.IsMember {
		t.Errorf("conversations.info: %+v %v", info, err)
	}
	// Inviting the bot fixes not_in_channel.
	s.AddChannel(Channel{ID: "C2", Name: "out"})
	if _, _, err := api.PostMessageContext(ctx, "C2", slackgo.MsgOptionText("hi", false)); err != nil {
		t.Errorf("after the invitation: %v", err)
	}
}

func TestAuthAndLookups(t *testing.T) {
	s, api := newServer(t, Options{Users: []User{{ID: "U1", Email: "Alice@Example.com", Name: "alice"}}})
	ctx := context.Background()
	who, err := api.AuthTestContext(ctx)
	if err != nil || who.BotID != BotID || who.TeamID != TeamID {
		t.Errorf("auth.test: %+v %v", who, err)
	}
	u, err := api.GetUserByEmailContext(ctx, "alice@example.COM")
	if err != nil || u.ID != "U1" {
		t.Errorf("lookup: %+v %v", u, err)
	}
	if _, err := api.GetUserByEmailContext(ctx, "bob@example.com"); code(err) != "users_not_found" {
		t.Errorf("unknown user: %v", err)
	}
	bad := slackgo.New("xoxb-wrong", slackgo.OptionAPIURL(s.URL()))
	if _, err := bad.AuthTestContext(ctx); code(err) != "invalid_auth" {
		t.Errorf("wrong token: %v", err)
	}
	none := slackgo.New("", slackgo.OptionAPIURL(s.URL()))
	if _, err := none.AuthTestContext(ctx); code(err) != "not_authed" {
		t.Errorf("no token: %v", err)
	}
	// JSON bodies with a bearer token, as slack-go sends for some methods.
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"chat.postMessage", strings.NewReader(`{"channel":"C1","text":"x","unfurl_links":false}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := s.CallsOf("chat.postMessage"); len(c) != 1 || c[0].Error != "channel_not_found" || c[0].Param("unfurl_links") != "false" {
		t.Errorf("JSON call = %+v", c)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestFaults(t *testing.T) {
	s, api := newServer(t, Options{Channels: []Channel{{ID: "C1", Name: "ops"}, {ID: "C2", Name: "dev"}}})
	ctx := context.Background()
	post := func(ch string) error {
		_, _, err := api.PostMessageContext(ctx, ch, slackgo.MsgOptionText("hi", false))
		return err
	}
	s.FailNext("chat.postMessage", "fatal_error")
	s.FailNextWith("chat.postMessage", Fault{Status: 503, Body: "<html>down</html>"}, Fault{Status: 429, RetryAfter: "7"})
	s.FailAlways("", "C2", "missing_scope")
	if err := post("C1"); code(err) != "fatal_error" {
		t.Errorf("FailNext: %v", err)
	}
	var sc slackgo.StatusCodeError
	if err := post("C1"); !errors.As(err, &sc) || sc.Code != 503 {
		t.Errorf("503: %v", err)
	}
	var rl *slackgo.RateLimitedError
	if err := post("C1"); !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
		t.Errorf("429: %v", err)
	}
	if err := post("C1"); err != nil {
		t.Errorf("after the queued faults: %v", err)
	}
	for range 2 {
		if err := post("C2"); code(err) != "missing_scope" {
			t.Errorf("FailAlways: %v", err)
		}
	}
	s.ClearFaults()
	if err := post("C2"); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}

	// A hanging call ends when the client gives up.
	s.FailNextWith("chat.postMessage", Fault{Hang: true})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, _, err := api.PostMessageContext(short, "C1", slackgo.MsgOptionText("hi", false)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v", err)
	}
}

func TestRateLimitOnce(t *testing.T) {
	s, api := newServer(t, Options{Channels: []Channel{{ID: "C1", Name: "ops"}, {ID: "C2", Name: "dev"}}})
	ctx := context.Background()
	s.RateLimitOnce("C1", 1500*time.Millisecond) // rounded up to 2s
	var rl *slackgo.RateLimitedError
	for range 2 { // the second ignores Retry-After: 429 again
		if _, _, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("hi", false)); !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
			t.Fatalf("rate-limited post: %v", err)
		}
	}
	if _, _, err := api.PostMessageContext(ctx, "C2", slackgo.MsgOptionText("hi", false)); err != nil {
		t.Errorf("another channel: %v", err)
	}
	if s.RateLimited("C1") != 2 || s.RateLimited("C2") != 0 {
		t.Errorf("429s: C1 %d, C2 %d", s.RateLimited("C1"), s.RateLimited("C2"))
	}
	// The pause ends when Retry-After says.
	s.mu.Lock()
	s.pausedTil["C1"] = time.Now().Add(-time.Millisecond)
	s.mu.Unlock()
	if _, _, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("hi", false)); err != nil {
		t.Errorf("after the pause: %v", err)
	}
	if c := s.CallsOf("chat.postMessage"); c[0].RetryAfter != "2" || c[0].Status != 429 || c[0].Error != "ratelimited" {
		t.Errorf("recorded 429: %+v", c[0])
	}
}

// TestGCRA checks the bucket's decisions at chosen instants.
func TestGCRA(t *testing.T) {
	var g gcra
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const tol = 100 * time.Millisecond
	at := func(d time.Duration) (time.Duration, bool) { return g.allow(t0.Add(d), 1, 3, tol) }
	for i := range 3 {
		if _, ok := at(0); !ok {
			t.Fatalf("burst post %d refused", i)
		}
	}
	if wait, ok := at(0); ok || wait != time.Second {
		t.Errorf("fourth post at once: %v %v", wait, ok)
	}
	if _, ok := at(950 * time.Millisecond); !ok {
		t.Error("a post 50ms early (within the tolerance) refused")
	}
	if wait, ok := at(1500 * time.Millisecond); ok || wait != 500*time.Millisecond {
		t.Errorf("a post 500ms early: %v %v", wait, ok)
	}
	if _, ok := at(2 * time.Second); !ok {
		t.Error("a paced post refused")
	}
	// Idle time refills the bucket, up to the burst.
	for i := range 3 {
		if _, ok := at(time.Minute); !ok {
			t.Errorf("after idling: post %d refused", i)
		}
	}
	if _, ok := at(time.Minute); ok {
		t.Error("burst exceeded after idling")
	}
}

func TestEnforceRate(t *testing.T) {
	s, api := newServer(t, Options{Channels: []Channel{{ID: "C1", Name: "ops"}, {ID: "C2", Name: "dev"}}})
	s.EnforceRate(0.01, 2) // two posts, then one per 100s
	ctx := context.Background()
	for i := range 3 {
		_, _, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("hi", false))
		var rl *slackgo.RateLimitedError
		switch {
		case i < 2 && err != nil:
			t.Errorf("post %d: %v", i, err)
		case i == 2 && (!errors.As(err, &rl) || rl.RetryAfter < 99*time.Second):
			t.Errorf("post beyond the burst: %v", err)
		}
	}
	if _, _, err := api.PostMessageContext(ctx, "C2", slackgo.MsgOptionText("hi", false)); err != nil {
		t.Errorf("another channel has its own bucket: %v", err)
	}
	if s.RateLimited("C1") != 1 || len(s.Messages("C1")) != 2 {
		t.Errorf("429s %d, messages %d", s.RateLimited("C1"), len(s.Messages("C1")))
	}
	s.EnforceRate(0, 0)
	if _, _, err := api.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("hi", false)); err != nil {
		t.Errorf("enforcement off: %v", err)
	}
}
