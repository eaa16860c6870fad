package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

func deliverErr(s *Sink, e bridge.Event) error {
	return s.Deliver(context.Background(), bridge.Delivery{Event: e, Target: bridge.Target{Sink: s.Name()}, Attempt: 1})
}

func TestRateLimited(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())

	f.FailNextWith("chat.postMessage", slacktest.Fault{Status: 429, RetryAfter: "7", Error: "ratelimited"})
	before := time.Now()
	err := deliverErr(s, event(bridge.MessageCreated, "d1", "m1", "", "x"))
	after := time.Now()
	d, ok := bridge.RetryAfterOf(err)
	var rl *slackgo.RateLimitedError
	if !ok || d != 7*time.Second || !errors.As(err, &rl) || bridge.IsPermanent(err) {
		t.Fatalf("429: %v (retry after %v, %v)", err, d, ok)
	}
	// The channel's limiter is paused for as long, so other discussions wait too.
	// The pause ends between before+7s and after+7s.
	lim := s.limiters.channel("C0000OPS1")
	if wait, r := lim.reserve(before); r != nil || wait < 7*time.Second {
		t.Errorf("channel limiter after a 429: wait %v, reservation %v", wait, r)
	}
	if wait, r := lim.reserve(after); r != nil || wait <= 0 || wait > 7*time.Second {
		t.Errorf("channel limiter after a 429: wait %v, reservation %v", wait, r)
	}
	if wait, r := s.limiters.channel("C0000DEV2").reserve(before); wait != 0 || r == nil {
		t.Errorf("another channel is paused too: %v", wait)
	}
	// While paused, a delivery to the channel is handed back at once (its worker is free for
	// other channels) without calling Slack; another channel's is delivered.
	start := time.Now()
	err = deliverErr(s, event(bridge.MessageCreated, "d2", "m2", "", "x"))
	if d, ok := bridge.RetryAfterOf(err); !ok || d > 7*time.Second || d < 6*time.Second || time.Since(start) > time.Second {
		t.Errorf("delivery to the paused channel: %v after %v", err, time.Since(start))
	}
	deliver(t, s, event(bridge.MessageCreated, "d3", "m3", "", "x"), "C0000DEV2")
	if n := len(f.CallsOf("chat.postMessage")); n != 2 {
		t.Errorf("%d chat.postMessage calls, want 2 (the 429 and the other channel's)", n)
	}
	if st := s.Stats(); st.RateLimited != 1 || st.Paused != 1 || st.Busy != 0 {
		t.Errorf("Stats = %+v, want one 429 and one delivery handed back while paused", st)
	}

	// A 429 without a usable Retry-After still asks for a pause.
	f.FailNextWith("chat.update", slacktest.Fault{Status: 429})
	s2 := newSink(t, cfg, newMemKV())
	deliver(t, s2, event(bridge.MessageCreated, "d1", "m1", "", "x"), "C0000DEV2")
	err = s2.Deliver(context.Background(), bridge.Delivery{Event: event(bridge.MessageUpdated, "d1", "m1", "", "y"), Target: bridge.Target{Channel: "C0000DEV2"}})
	if d, ok := bridge.RetryAfterOf(err); !ok || d != defaultRetryAfter {
		t.Errorf("429 without Retry-After: %v", err)
	}
	if st := s2.Stats(); st.RateLimited != 1 {
		t.Errorf("Stats = %+v, want one 429", st)
	}
	// slack-go itself did not retry: one call per attempt.
	if n := len(f.CallsOf("chat.postMessage")); n != 3 {
		t.Errorf("%d chat.postMessage calls, want 3 (no retries inside slack-go)", n)
	}
}

// TestRefusedTokenHaltsTheSink: the codes that refuse the token itself halt the whole sink
// (bridge.Halt) rather than fail one delivery; Verify finds them out with auth.test.
func TestRefusedTokenHaltsTheSink(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())
	for _, code := range []string{"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"} {
		f.FailNextWith("chat.postMessage", slacktest.Fault{Error: code})
		err := deliverErr(s, event(bridge.MessageCreated, "d1", "m-"+code, "", "x"))
		if !bridge.IsHalted(err) || bridge.IsPermanent(err) || !strings.Contains(fmt.Sprint(err), code) {
			t.Errorf("%s: %v, want a halt", code, err)
		}
	}
	if err := s.Verify(context.Background()); err != nil {
		t.Errorf("Verify with the right token: %v", err)
	}
	bad := newSink(t, Config{Token: "xoxb-WRONG-token-value", APIURL: f.URL(), Channel: "C0000OPS1"}, newMemKV())
	if err := bad.Verify(context.Background()); !bridge.IsHalted(err) || strings.Contains(err.Error(), "WRONG") {
		t.Errorf("Verify with a wrong token: %v, want a halt without the token", err)
	}
	f.FailNextWith("auth.test", slacktest.Fault{Status: 500, Body: "down"})
	if err := s.Verify(context.Background()); err == nil || bridge.IsHalted(err) {
		t.Errorf("Verify against a failing Slack: %v, want a plain (retryable) error", err)
	}
}

func TestPermanentErrors(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())
	for _, code := range []string{
		"channel_not_found", "not_in_channel",
		"missing_scope", "is_archived", "msg_too_long", "no_text", "message_not_found",
		"cant_update_message", "cant_delete_message", "compliance_exports_prevent_deletion", "restricted_action",
	} {
		f.FailNextWith("chat.postMessage", slacktest.Fault{Error: code})
		err := deliverErr(s, event(bridge.MessageCreated, "d1", "m-"+code, "", "x"))
		var se slackgo.SlackErrorResponse
		if !bridge.IsPermanent(err) || !errors.As(err, &se) || se.Err != code {
			t.Errorf("%s: %v", code, err)
		}
		if !strings.Contains(fmt.Sprint(err), "chat.postMessage C0000OPS1: "+code) {
			t.Errorf("%s: error text %q", code, err)
		}
		// The attempt history shows the code, found through errors.As, not the text.
		if det, ok := errors.AsType[bridge.AttemptDetail](err); !ok || det.AttemptStatus() != code {
			t.Errorf("%s: attempt detail %v", code, det)
		}
	}
	for _, status := range []int{400, 401, 403, 404} {
		f.FailNextWith("chat.postMessage", slacktest.Fault{Status: status, Body: "nope"})
		err := deliverErr(s, event(bridge.MessageCreated, "d1", "m", "", "x"))
		if !bridge.IsPermanent(err) {
			t.Errorf("HTTP %d: %v", status, err)
		}
		if det, ok := errors.AsType[bridge.AttemptDetail](err); !ok || det.AttemptStatus() != fmt.Sprint(status) {
			t.Errorf("HTTP %d: attempt detail %v", status, det)
		}
	}
}

func TestRetryableErrors(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	cfg.Timeout = config.Duration(200 * time.Millisecond)
	var logs bytes.Buffer
	s, err := New("ops-slack", cfg, Options{KV: newMemKV(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct {
		name string
		f    slacktest.Fault
	}{
		{"500", slacktest.Fault{Status: 500, Body: "<html>oops</html>"}},
		{"503", slacktest.Fault{Status: 503}},
		{"not JSON", slacktest.Fault{Body: "<html>proxy</html>"}},
		{"unknown code", slacktest.Fault{Error: "fatal_error"}},
		{"unknown code again", slacktest.Fault{Error: "fatal_error"}},
		{"timeout", slacktest.Fault{Hang: true}},
	} {
		f.FailNextWith("chat.postMessage", tt.f)
		err := deliverErr(s, event(bridge.MessageCreated, "d1", "m1", "", "x"))
		if _, after := bridge.RetryAfterOf(err); err == nil || bridge.IsPermanent(err) || after {
			t.Errorf("%s: %v, want a plain retryable error", tt.name, err)
		}
	}
	if n := strings.Count(logs.String(), "fatal_error"); n != 1 {
		t.Errorf("unknown code logged %d times, want once:\n%s", n, logs.String())
	}
	// Nothing was recorded, so the next attempt posts.
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "x"), "")

	// The caller giving up is not a Slack failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Deliver(ctx, bridge.Delivery{Event: event(bridge.MessageCreated, "d1", "m2", "", "x")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	f.Close() // nothing listens there any more
	s := newSink(t, cfg, newMemKV())
	err := deliverErr(s, event(bridge.MessageCreated, "d1", "m1", "", "x"))
	if err == nil || bridge.IsPermanent(err) {
		t.Errorf("network error: %v", err)
	}
}

// TestTokenNeverLeaks provokes every kind of failure, with a server that quotes the token
// back, and checks errors and logs at debug level.
func TestTokenNeverLeaks(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.MentionUsers = MentionEmail
	cfg.Timeout = config.Duration(200 * time.Millisecond)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New("ops-slack", cfg, Options{KV: newMemKV(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var errs []error
	try := func(e bridge.Event, ch string) {
		errs = append(errs, s.Deliver(context.Background(), bridge.Delivery{Event: e, Target: bridge.Target{Channel: ch}}))
	}
	f.FailNextWith("chat.postMessage",
		slacktest.Fault{Error: "invalid_auth " + testToken},
		slacktest.Fault{Error: "weird_" + testToken},
		slacktest.Fault{Status: 500, Body: testToken},
		slacktest.Fault{Status: 429, RetryAfter: testToken},
		slacktest.Fault{Hang: true},
	)
	f.FailNextWith("users.lookupByEmail", slacktest.Fault{Error: "missing_scope_" + testToken})
	f.FailNextWith("conversations.list", slacktest.Fault{Error: "internal_error_" + testToken})
	ev := event(bridge.MessageCreated, "d1", "m1", "", "x")
	ev.Message.Content = append(ev.Message.Content, bridge.Token{Type: "user",
		Value: []byte(`{"displayName":"Bob","email":"bob@example.com"}`)})
	for range 5 {
		try(ev, "")
	}
	try(ev, "#not-an-id")
	bad := newSink(t, Config{Token: "xoxb-WRONG-token-value", APIURL: f.URL(), Channel: "C0000OPS1"}, newMemKV())
	errs = append(errs, bad.Deliver(context.Background(), bridge.Delivery{Event: ev}))

	for i, err := range errs {
		if err == nil {
			t.Errorf("attempt %d succeeded", i)
			continue
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), testToken) {
			t.Errorf("token in error %d: %v", i, err)
		}
	}
	for _, want := range []string{"weird_<secret>", "missing_scope_<secret>"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("expected %q in the logs:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("token in logs:\n%s", logs.String())
	}
	if strings.Contains(fmt.Sprintf("%v %+v", cfg, cfg), testToken) {
		t.Error("token in the printed configuration")
	}
}
