package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

func TestCheckOnline(t *testing.T) {
	fake := slacktest.NewServer(slacktest.Options{Channels: []slacktest.Channel{
		{ID: "C0OK00001", Name: "ops"},
		{ID: "C0OUT0001", Name: "outside", NotMember: true},
		{ID: "C0OLD0001", Name: "old", Archived: true},
	}})
	defer fake.Close()
	cfgFor := func(token string) string {
		return writeConfig(t, fmt.Sprintf(`
sources:
  - {name: acme, type: kinetic, url: "https://acme.example.com", client_id: u, client_secret: s,
     discussions: [9fa2b330-fa5e-11e8-88ef-7bbe80231820]}
sinks:
  - {name: sl, type: slack, token: %q, api_url: %q, channel: "#ops"}
routes:
  - {name: r1, to: [{sink: sl, channel: C0OUT0001}]}
  - {name: r2, to: [{sink: sl, channel: C0OLD0001}]}
  - {name: r3, to: [{sink: sl, channel: "#nowhere"}]}
  - {name: r4, to: [sl]}
`, token, fake.URL()))
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"check", "-online", "-config", cfgFor(fake.Token())}, &out, &out)
	if !errors.Is(err, errOnline) {
		t.Fatalf("check -online = %v, want problems:\n%s", err, out.String())
	}
	for _, want := range []string{"channel C0OUT0001: the bot is not a member", "channel C0OLD0001: is archived", "channel #nowhere: ", "channel_not_found"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "online: sl: channel #ops") {
		t.Errorf("a good channel was reported:\n%s", out.String())
	}
	if n := len(fake.CallsOf("chat.postMessage")); n != 0 {
		t.Errorf("check -online posted %d messages", n)
	}

	out.Reset()
	const wrong = "xoxb-wrong-token-never-printed"
	err = run(context.Background(), []string{"check", "-online", "-config", cfgFor(wrong)}, &out, &out)
	if !errors.Is(err, errOnline) || exitCode(err) != 1 || !strings.Contains(out.String(), "invalid_auth") || strings.Contains(out.String(), wrong) {
		t.Errorf("wrong token: %v\n%s", err, out.String())
	}

	// Slack out of reach is not blamed on the token: its own message and exit code 3.
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	closed := "http://" + ln.Addr().String() + "/api/"
	ln.Close()
	out.Reset()
	path := writeConfig(t, strings.Replace(readFile(t, cfgFor(fake.Token())), fake.URL(), closed, 1))
	err = run(context.Background(), []string{"check", "-online", "-config", path}, &out, &out)
	if !errors.Is(err, errUnreachable) || exitCode(err) != 3 || !strings.Contains(out.String(), "could not reach Slack at "+closed) ||
		strings.Contains(out.String(), "token:") || strings.Contains(err.Error(), "configuration has problems") {
		t.Errorf("unreachable Slack: exit %d, %v\n%s", exitCode(err), err, out.String())
	}
}

// TestCheckOnlineTwoWay: check -online confirms the app token opens Socket Mode and the bot
// has the scopes two-way needs; a wrong app token and missing scopes are problems, and no
// token is printed.
func TestCheckOnlineTwoWay(t *testing.T) {
	good := slacktest.NewServer(slacktest.Options{Channels: []slacktest.Channel{{ID: "C0OK00001", Name: "ops"}}})
	defer good.Close()
	narrow := slacktest.NewServer(slacktest.Options{Channels: []slacktest.Channel{{ID: "C0OK00001", Name: "ops"}},
		Scopes: []string{"chat:write", "channels:history"}})
	defer narrow.Close()
	cfgFor := func(f *slacktest.Server, app string) string {
		return writeConfig(t, fmt.Sprintf(`
sources:
  - {name: acme, type: kinetic, url: "https://acme.example.com", client_id: u, client_secret: s,
     discussions: [9fa2b330-fa5e-11e8-88ef-7bbe80231820]}
sinks:
  - {name: sl, type: slack, token: %q, app_token: %q, api_url: %q, channel: C0OK00001}
routes:
  - {name: r, to: [{sink: sl, reply: true}]}
`, f.Token(), app, f.URL()))
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "-online", "-config", cfgFor(good, good.AppToken())}, &out, &out); err != nil {
		t.Fatalf("check -online = %v:\n%s", err, out.String())
	}
	for _, want := range []string{"slack:sl", "replies from slack sink sl", "app token opens Socket Mode"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	const wrong = "xapp-1-wrong-app-token-never-printed"
	err := run(context.Background(), []string{"check", "-online", "-config", cfgFor(narrow, wrong)}, &out, &out)
	if !errors.Is(err, errOnline) || exitCode(err) != 1 {
		t.Fatalf("check -online = %v, want problems:\n%s", err, out.String())
	}
	for _, want := range []string{"apps.connections.open: invalid_auth", "lacks the scope groups:history", "lacks the scope users:read "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), wrong) || strings.Contains(out.String(), narrow.Token()) {
		t.Errorf("a token was printed:\n%s", out.String())
	}
}
