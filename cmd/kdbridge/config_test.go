package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var exampleEnv = map[string]string{
	"KINETIC_CLIENT_SECRET": "s3cr3t-kinetic-value",
	"WEBHOOK_SECRET":        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	"SLACK_BOT_TOKEN":       "xoxb-0000-test-token-value",
}

// loadExample loads config.example.yaml as a user would after setting the variables and
// secret files it names.
func loadExample(t *testing.T) *Config {
	t.Helper()
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(example)
	for _, name := range []string{"teams_webhook_url", "discord_webhook_url"} {
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, []byte("https://example.invalid/webhook/"+name+"-token-abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.Replace(text, "/run/secrets/"+name, file, 1)
	}
	cfg, ps := parseConfig([]byte(text), lookupFrom(exampleEnv), settings{})
	if err := ps.Err(); err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	return cfg
}

func TestExampleConfigLoads(t *testing.T) {
	cfg := loadExample(t)
	if len(cfg.Sources) != 1 || len(cfg.Sinks) != 5 || len(cfg.Routes) != 2 {
		t.Fatalf("unexpected shape: %d sources, %d sinks, %d routes", len(cfg.Sources), len(cfg.Sinks), len(cfg.Routes))
	}
	if got := cfg.Sources[0].Kinetic.ClientSecret.Reveal(); got != exampleEnv["KINETIC_CLIENT_SECRET"] {
		t.Errorf("client_secret not expanded: %q", got)
	}
	s := summary(cfg)
	for _, secret := range append(slices.Collect(maps.Values(exampleEnv)), "token-abcdef") {
		if strings.Contains(s, secret) {
			t.Errorf("check summary shows a secret:\n%s", s)
		}
	}
}

const goodBase = `
sources:
  - name: acme
    type: kinetic
    url: https://acme.example.com
    client_id: integration-user
    client_secret: x-secret-value
    discussions: [9fa2b330-fa5e-11e8-88ef-7bbe80231820]
sinks:
  - name: audit
    type: webhook
    url: https://hooks.example.com/in
routes:
  - name: r
    to: [audit]
`

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // substrings of the error, each naming key and line
	}{
		{"unknown top-level key", "loggg: {}\n" + goodBase, nil, []string{"line 1: loggg: unknown key"}},
		{"unknown source key", strings.Replace(goodBase, "    client_id:", "    clientid: x\n    client_id:", 1), nil,
			[]string{"line 6: sources[0].clientid: unknown key"}},
		{"unknown sink type", strings.Replace(goodBase, "type: webhook", "type: webhok", 1), nil,
			[]string{`line 11: sinks[0].type: unknown type "webhok"`}},
		{"missing env var", strings.Replace(goodBase, "x-secret-value", "${NOPE}", 1), nil,
			[]string{"line 7: environment variable NOPE is not set"}},
		{"duplicate sink name", strings.Replace(goodBase, "routes:", "  - name: audit\n    type: stdout\nroutes:", 1), nil,
			[]string{`line 13: sinks[1].name: duplicate sink name "audit"`}},
		{"valid", goodBase, nil, nil},
		{"template on a webhook target", strings.Replace(goodBase, "    to: [audit]", "    to: [{sink: audit, template: x}]", 1), nil,
			[]string{`routes[0].to[0].template: template applies to slack sinks only`}},
		{"bad slack route template", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1, channel: C1}", 1), "to: [audit]", "to: [audit, {sink: sl, template: \"{{.Nope\"}]", 1), nil,
			[]string{`routes[0].to[1].template: template line 1`}},
		{"channel on a webhook target", strings.Replace(goodBase, "    to: [audit]", "    to: [{sink: audit, channel: C1}]", 1), nil,
			[]string{`routes[0].to[0].channel: channel applies to slack sinks only`}},
		{"slack without any channel", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1}", 1), "to: [audit]", "to: [audit, sl]", 1), nil,
			[]string{`routes[0].to[1]: slack sink "sl" has no default channel`}},
		{"route to unknown sink and source", strings.Replace(goodBase, "    to: [audit]", "    source: nope\n    to: [audit, slack]", 1), nil,
			[]string{`line 15: routes[0].source: unknown source "nope"`, `routes[0].to[1]: unknown sink "slack"`}},
		{"bad event name", strings.Replace(goodBase, "    to: [audit]", "    events: [message.posted]\n    to: [audit]", 1), nil,
			[]string{`line 15: routes[0].events[0]: "message.posted" matches no event type`}},
		{"duplicate route", goodBase + "  - name: r\n    to: [audit]\n", nil, []string{`line 16: routes[1].name: duplicate route name "r"`}},
		{"bad duration", strings.Replace(goodBase, "    to: [audit]", "    to: [audit]\nstate: {retention: forever}", 1), nil,
			[]string{`"forever" is not a duration`}},
		{"bad log level", "log: {level: loud}\n" + goodBase, nil, []string{`line 1: log.level: "loud" is not a log level`}},
		{"no routes", strings.Split(goodBase, "routes:")[0], nil, []string{"routes: no routes"}},
		{"yaml syntax", "sources: [\n", nil, []string{"invalid YAML"}},
		{"reply on a webhook target", strings.Replace(goodBase, "    to: [audit]", "    to: [{sink: audit, reply: true}]", 1), nil,
			[]string{`line 15: routes[0].to[0].reply: reply applies to slack sinks only`}},
		{"reply without an app token", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1, channel: C1}", 1), "to: [audit]", "to: [audit, {sink: sl, reply: true}]", 1), nil,
			[]string{`routes[0].to[1].reply: slack sink "sl" has no app_token`}},
		{"sink reply without an app token", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1, channel: C1, reply: true}", 1), "to: [audit]", "to: [audit, sl]", 1), nil,
			[]string{`sinks[1].app_token: is required with reply: true`}},
		{"app token that is a bot token", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1, app_token: xoxb-2, channel: C1}", 1), "to: [audit]", "to: [audit, sl]", 1), nil,
			[]string{`sinks[1].app_token: is not an app-level token`}},
		{"bad reply_author", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1, app_token: xapp-2, channel: C1, reply_author: \"{{.Who}}\"}", 1), "to: [audit]", "to: [audit, {sink: sl, reply: true}]", 1), nil,
			[]string{`sinks[1].reply_author: template: reply_author`}},
		{"reserved kinetic sink name", strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1, app_token: xapp-2, channel: C1}\n  - {name: kinetic, type: stdout}", 1), "to: [audit]", "to: [audit, {sink: sl, reply: true}]", 1), nil,
			[]string{`the sink name "kinetic" is reserved`}},
		{"bad retry", strings.Replace(goodBase, "    url: https://hooks.example.com/in", "    url: https://hooks.example.com/in\n    retry: {initial: 1m, max_interval: 1s}", 1), nil,
			[]string{"line 13: sinks[0].retry.max_interval: must not be shorter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseConfig([]byte(tt.yaml), lookupFrom(tt.env), settings{})
			err := ps.Err()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no problems reported")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	bad := `
log: {format: xml}
sources:
  - name: acme
    type: kinetik
sinks:
  - name: acme-hook
    type: webhook
    url: "not a url"
    tmeout: 5s
routes:
  - name: r
    to: [nowhere]
`
	_, ps := parseConfig([]byte(bad), lookupFrom(nil), settings{})
	if len(ps) < 4 {
		t.Fatalf("want at least 4 problems reported together, got %d: %v", len(ps), ps.Err())
	}
	for _, w := range []string{"line 2: log.format", "line 5: sources[0].type", "line 10: sinks[0].tmeout", `line 13: routes[0].to[0]: unknown sink "nowhere"`} {
		if !strings.Contains(ps.Err().Error(), w) {
			t.Errorf("missing %q in:\n%v", w, ps.Err())
		}
	}
}

func TestSecretFileTwin(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-a-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(goodBase, "client_secret: x-secret-value", "client_secret_file: "+file, 1)
	cfg, ps := parseConfig([]byte(y), lookupFrom(nil), settings{})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].Kinetic.ClientSecret.Reveal(); got != "from-a-file-secret" {
		t.Errorf("secret from file = %q", got)
	}
	both := strings.Replace(goodBase, "client_secret: x-secret-value", "client_secret: a\n    client_secret_file: "+file, 1)
	if _, ps := parseConfig([]byte(both), lookupFrom(nil), settings{}); ps.Err() == nil || !strings.Contains(ps.Err().Error(), "not both") {
		t.Errorf("secret and secret_file together: %v", ps.Err())
	}
	missing := strings.Replace(goodBase, "client_secret: x-secret-value", "client_secret_file: "+filepath.Join(dir, "nope"), 1)
	if _, ps := parseConfig([]byte(missing), lookupFrom(nil), settings{}); ps.Err() == nil || !strings.Contains(ps.Err().Error(), "line 7: sources[0].client_secret_file: cannot read secret file") {
		t.Errorf("missing secret file: %v", ps.Err())
	}
}

func TestSettingsOverride(t *testing.T) {
	cfg, ps := parseConfig([]byte(goodBase), lookupFrom(nil), settings{StateDir: "/tmp/x", HTTPListen: "off", LogFormat: "json"})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if cfg.State.Dir != "/tmp/x" || cfg.HTTP.Listen != "off" || cfg.Log.Format != "json" || cfg.Log.Level != "info" {
		t.Errorf("settings not applied: %+v %+v %+v", cfg.State, cfg.HTTP, cfg.Log)
	}
}

// TestTwoWayConfig: a two-way target adds the replies source, its route and the kinetic
// sink, which writes into the Kinetic source's space; the summary shows them without secrets.
func TestTwoWayConfig(t *testing.T) {
	y := strings.Replace(strings.Replace(goodBase, "    url: https://hooks.example.com/in",
		"    url: https://hooks.example.com/in\n  - {name: sl, type: slack, token: xoxb-1-secret, app_token: xapp-1-secret, channel: C1}", 1),
		"to: [audit]", "to: [audit, {sink: sl, reply: true}]", 1)
	cfg, ps := parseConfig([]byte(y), lookupFrom(nil), settings{})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 2 || cfg.Sources[1].Name != "slack:sl" || cfg.Sources[1].Replies == nil ||
		!slices.Equal(cfg.Sources[1].Replies.Routes, []string{"r"}) {
		t.Fatalf("sources = %+v", cfg.Sources)
	}
	k := cfg.Sinks[len(cfg.Sinks)-1]
	if k.Name != "kinetic" || k.ToKinetic == nil || k.ToKinetic.Spaces["acme"].URL != "https://acme.example.com" {
		t.Fatalf("kinetic sink = %+v", k)
	}
	r := cfg.Routes[len(cfg.Routes)-1]
	if r.Name != "slack:sl" || r.Source != "slack:sl" || len(r.To) != 1 || r.To[0].Sink != "kinetic" {
		t.Fatalf("replies route = %+v", r)
	}
	s := summary(cfg)
	for _, want := range []string{"slack:sl", "replies from slack sink sl", "kinetic", "writes Slack replies into acme"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	for _, secret := range []string{"xoxb-1-secret", "xapp-1-secret", "x-secret-value"} {
		if strings.Contains(s, secret) {
			t.Errorf("summary shows a secret:\n%s", s)
		}
	}
}
