package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/kdbridge/kdbridge/internal/sinkprobe"
	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

// sendTest runs `kdbridge send-test` in-process and returns its output and error.
func sendTest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), append([]string{"send-test"}, args...), &out, &errb)
	return out.String() + errb.String(), err
}

// TestSendTestWebhook: the test event goes through the real webhook path (envelope,
// Standard Webhooks signature) to a receiver that verifies it, and the receiver's answer —
// status and body — is printed; exit 0.
func TestSendTestWebhook(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []delivery
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The daemon's own client sends it, not net/http's (which would ask for gzip).
		if r.Proto != "HTTP/1.1" || r.Header.Get("Accept-Encoding") != "" || !strings.HasPrefix(r.UserAgent(), "kdbridge/") {
			t.Errorf("sent as %s with Accept-Encoding %q, User-Agent %q: not the daemon's client", r.Proto, r.Header.Get("Accept-Encoding"), r.UserAgent())
		}
		if err := wh.Verify(body, r.Header); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "bad signature: %v", err)
			return
		}
		var e delivery
		if err := json.Unmarshal(body, &e.envelope); err != nil {
			t.Errorf("body is not the envelope: %v", err)
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"received":%q}`, r.Header.Get("webhook-id"))
	}))
	defer recv.Close()
	cfg := writeConfig(t, fmt.Sprintf(`
state: {dir: %q}
sinks:
  - {name: hook, type: webhook, url: %q, secret: %q}
  - {name: other, type: stdout}
routes:
  - {name: all, to: [hook]}
`, t.TempDir(), recv.URL+"/in?token=abc123", testSecret))

	out, err := sendTest(t, "-config", cfg, "-sink", "hook")
	if err != nil {
		t.Fatalf("send-test: %v\n%s", err, out)
	}
	mu.Lock()
	gotNow := got
	mu.Unlock()
	if len(gotNow) != 1 {
		t.Fatalf("the receiver got %d deliveries, want 1\n%s", len(gotNow), out)
	}
	e := gotNow[0].envelope
	if e.Type != "message.created" || e.Data.Discussion.Title != sinkprobe.Marker || !strings.Contains(e.Data.Message.Text, sinkprobe.Marker) {
		t.Errorf("delivered %s, discussion %q, text %q: not a marked test event", e.Type, e.Data.Discussion.Title, e.Data.Message.Text)
	}
	for _, want := range []string{
		"POST " + recv.URL + "/in: 202 Accepted",
		`{"received":"`,
		"result: delivered",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"abc123", testSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows the secret %q:\n%s", secret, out)
		}
	}

	// A URL read from url_file may carry its token in the path: the path is not shown.
	urlFile := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(urlFile, []byte(recv.URL+"/in/tok-5ecret-path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = writeConfig(t, fmt.Sprintf(`
state: {dir: %q}
sinks:
  - {name: hook, type: webhook, url_file: %q, secret: %q}
routes:
  - {name: all, to: [hook]}
`, t.TempDir(), urlFile, testSecret))
	out, err = sendTest(t, "-config", cfg, "-sink", "hook")
	if err != nil {
		t.Fatalf("send-test (url_file): %v\n%s", err, out)
	}
	if !strings.Contains(out, "POST "+recv.URL+"/…: 202 Accepted") || strings.Contains(out, "5ecret") {
		t.Errorf("url_file: the answer is not shown by the URL without its path:\n%s", out)
	}
}

// TestSendTestWebhookRefused: a receiver that refuses (here: it checks a different
// secret) is shown with its status and body, with what the daemon would do; exit 1.
func TestSendTestWebhookRefused(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "signature mismatch: check the shared secret")
	}))
	defer recv.Close()
	cfg := writeConfig(t, fmt.Sprintf(`
state: {dir: %q}
sinks:
  - {name: hook, type: webhook, url: %q, secret: %q}
routes:
  - {name: all, to: [hook]}
`, t.TempDir(), recv.URL, testSecret))
	out, err := sendTest(t, "-config", cfg, "-sink", "hook")
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("send-test to a refusing receiver: err %v (exit %d), want exit 1\n%s", err, exitCode(err), out)
	}
	for _, want := range []string{"401 Unauthorized", "signature mismatch: check the shared secret", "dead-letter"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+err.Error(), testSecret) {
		t.Errorf("output or error shows the secret: %v\n%s", err, out)
	}
}

// TestSendTestSlack: through the Slack fake, with -channel overriding the sink's channel:
// the marked message lands in that channel (in the test discussion's thread, as the
// daemon would post it) and the Web API answers are printed; a channel the bot is not in
// gives not_in_channel and exit 1. The token is never shown.
func TestSendTestSlack(t *testing.T) {
	fake := slacktest.NewServer(slacktest.Options{Channels: []slacktest.Channel{
		{ID: "C0123ABCD", Name: "ops"}, {ID: "C0999ZZZZ", Name: "other"}, {ID: "C0555NOPE", Name: "out", NotMember: true},
	}})
	defer fake.Close()
	cfg := writeConfig(t, fmt.Sprintf(`
state: {dir: %q}
sinks:
  - {name: ops-slack, type: slack, token: %q, channel: C0123ABCD, api_url: %q}
routes:
  - {name: all, to: [ops-slack]}
  - name: mapped
    to: [{sink: ops-slack, channel: C0999ZZZZ, template: "mapped route: {{.Text}}"}]
`, t.TempDir(), fake.Token(), fake.URL()))

	out, err := sendTest(t, "-config", cfg, "-sink", "ops-slack", "-channel", "C0999ZZZZ")
	if err != nil {
		t.Fatalf("send-test: %v\n%s", err, out)
	}
	msgs := fake.Messages("C0999ZZZZ")
	marked := 0
	for _, m := range msgs {
		if strings.Contains(m.Text, sinkprobe.Marker) {
			marked++
		}
	}
	if marked == 0 {
		t.Errorf("no message in C0999ZZZZ says %q: %+v", sinkprobe.Marker, msgs)
	}
	if n := len(fake.Messages("C0123ABCD")); n != 0 {
		t.Errorf("%d messages in the default channel, want none (-channel overrides it)", n)
	}
	for _, want := range []string{"/api/chat.postMessage: 200 OK", `"ok":true`, "result: delivered"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// -route: the route target's channel and template.
	before := len(fake.Messages("C0999ZZZZ"))
	out, err = sendTest(t, "-config", cfg, "-sink", "ops-slack", "-route", "mapped")
	if err != nil {
		t.Fatalf("send-test -route mapped: %v\n%s", err, out)
	}
	routed := false
	for _, m := range fake.Messages("C0999ZZZZ")[before:] {
		routed = routed || strings.HasPrefix(m.Text, "mapped route: This is a test message")
	}
	if !routed {
		t.Errorf("no message in the route's channel rendered with the route's template: %+v\n%s", fake.Messages("C0999ZZZZ")[before:], out)
	}

	out, err = sendTest(t, "-config", cfg, "-sink", "ops-slack", "-channel", "C0555NOPE")
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("send-test to a channel the bot is not in: err %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(err.Error(), "not_in_channel") || !strings.Contains(err.Error(), "dead-letter") {
		t.Errorf("the error does not say which channel failed and what the daemon would do: %v", err)
	}
	for _, s := range []string{out, err.Error()} {
		if strings.Contains(s, fake.Token()) {
			t.Errorf("the token is shown: %s", s)
		}
	}
}

// TestSendTestUsage: misuse exits 2 with a precise message; -h prints the help with the
// exit codes and exits 0.
func TestSendTestUsage(t *testing.T) {
	cfg := writeConfig(t, fmt.Sprintf(`
state: {dir: %q}
sinks:
  - {name: hook, type: webhook, url: "http://127.0.0.1:1/"}
  - {name: console, type: stdout}
routes:
  - {name: all, to: [hook, console]}
`, t.TempDir()))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", cfg}, "needs -sink"},
		{[]string{"-config", cfg, "-sink", "nope"}, `no sink "nope"`},
		{[]string{"-config", cfg, "-sink", "hook", "-channel", "C1"}, "-channel applies to slack sinks"},
		{[]string{"-config", cfg, "-sink", "hook", "extra"}, "unexpected arguments"},
		{[]string{"-config", cfg, "-sink", "hook", "-route", "nope"}, `no route "nope" (configured: all)`},
	} {
		out, err := sendTest(t, tt.args...)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("send-test %q: err %v (exit %d), want exit 2 saying %q\n%s", tt.args, err, exitCode(err), tt.want, out)
		}
	}
	out, err := sendTest(t, "-h")
	if err != nil || !strings.Contains(out, "Exit codes: 0") || !strings.Contains(out, "-channel") {
		t.Errorf("send-test -h: %v\n%s", err, out)
	}

	// The stdout sink: the event is printed by the sink itself.
	out, err = sendTest(t, "-config", cfg, "-sink", "console")
	if err != nil || !strings.Contains(out, sinkprobe.Marker) || !strings.Contains(out, "result: delivered") {
		t.Errorf("send-test to a stdout sink: %v\n%s", err, out)
	}
}
