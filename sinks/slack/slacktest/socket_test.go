package slacktest

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// TestSocketModeWithSlackGo runs slack-go's own socketmode client against the fake: the
// tokens are checked, events arrive in envelopes, an envelope not acknowledged comes again
// with retry_attempt on the next connection, and refresh_requested makes the client
// reconnect.
func TestSocketModeWithSlackGo(t *testing.T) {
	s := NewServer(Options{Channels: []Channel{{ID: "C1", Name: "ops"}}, Users: []User{{ID: "U1", Email: "a@x.example", Name: "Alice"}}})
	defer s.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	bot := slackgo.New(s.Token(), slackgo.OptionAPIURL(s.URL()), slackgo.OptionHTTPClient(hc))
	ctx := context.Background()

	// The bot token cannot open Socket Mode, nor the app token call other methods.
	if _, _, err := slackgo.New(s.Token(), slackgo.OptionAPIURL(s.URL()), slackgo.OptionHTTPClient(hc),
		slackgo.OptionAppLevelToken(s.Token())).StartSocketModeContext(ctx); code(err) != "not_allowed_token_type" {
		t.Errorf("apps.connections.open with the bot token: %v", err)
	}
	if _, err := slackgo.New(s.AppToken(), slackgo.OptionAPIURL(s.URL()), slackgo.OptionHTTPClient(hc)).AuthTestContext(ctx); code(err) != "not_allowed_token_type" {
		t.Errorf("auth.test with the app token: %v", err)
	}
	if u, err := bot.GetUserInfoContext(ctx, "U1"); err != nil || u.Profile.DisplayName != "Alice" {
		t.Errorf("users.info = %+v, %v", u, err)
	}

	api := slackgo.New(s.Token(), slackgo.OptionAPIURL(s.URL()), slackgo.OptionHTTPClient(hc), slackgo.OptionAppLevelToken(s.AppToken()))
	client := socketmode.New(api, socketmode.OptionLog(log.New(io.Discard, "", 0)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- client.RunContext(runCtx) }()
	defer func() { stop(); <-done }()

	// next returns the next events_api request, answering nothing else.
	next := func() *socketmode.Request {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case evt := <-client.Events:
				if evt.Type == socketmode.EventTypeEventsAPI {
					return evt.Request
				}
			case <-deadline:
				t.Fatal("no events_api envelope within 20s")
				return nil
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.SocketStats().Connections == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}

	ts := s.UserPosts("C1", "", "U1", "hello")
	req := next()
	var p struct {
		Type    string `json:"type"`
		EventID string `json:"event_id"`
		Event   struct {
			Type, User, Text, TS, Channel string
		} `json:"event"`
	}
	if err := json.Unmarshal(req.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "event_callback" || p.Event.Type != "message" || p.Event.User != "U1" || p.Event.TS != ts || p.Event.Channel != "C1" || req.RetryAttempt != 0 {
		t.Fatalf("first envelope = %+v / %+v", req, p)
	}
	first := req.EnvelopeID
	// Not acknowledged: after a refresh_requested the client reconnects and gets it again.
	s.Disconnect()
	again := next()
	if again.EnvelopeID != first || again.RetryAttempt != 1 || again.RetryReason != "timeout" {
		t.Fatalf("re-sent envelope = %+v, want %s with retry_attempt 1", again, first)
	}
	if err := client.Ack(*again); err != nil {
		t.Fatal(err)
	}
	// The bot's own post produces an event with its bot id and app id.
	if _, _, err := bot.PostMessageContext(ctx, "C1", slackgo.MsgOptionText("from the bot", false)); err != nil {
		t.Fatal(err)
	}
	own := next()
	var op struct {
		Event struct {
			BotID string `json:"bot_id"`
			AppID string `json:"app_id"`
		} `json:"event"`
	}
	_ = json.Unmarshal(own.Payload, &op)
	if op.Event.BotID != BotID || op.Event.AppID != AppID {
		t.Errorf("own post event = %s", own.Payload)
	}
	if err := client.Ack(*own); err != nil {
		t.Fatal(err)
	}
	for s.SocketStats().Pending != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.SocketStats(); st.Opens != 2 || st.Pending != 0 || st.Acked != 2 || st.Retried != 1 {
		t.Errorf("stats = %+v, want 2 opens, 2 acks, 1 retry, nothing pending", st)
	}
}
