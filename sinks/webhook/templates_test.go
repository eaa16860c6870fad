package webhook_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// A Microsoft Teams MessageCard and a Discord message, as a user would write them.
const (
	teamsTemplate = `{
  "@type": "MessageCard",
  "@context": "https://schema.org/extensions",
  "summary": {{json .Data.Discussion.Title}},
  "title": "{{jsonstr (default .Data.Discussion.ID .Data.Discussion.Title)}} ({{jsonstr .Data.Source}})",
  "text": {{with .Data.Message}}{{json (printf "**%s**: %s" .Author.DisplayName .Text)}}{{else}}{{json .Type}}{{end}}
}`
	discordTemplate = `{"content": {{with .Data.Message}}{{printf "**%s**: %s" (default .Author.Username .Author.DisplayName) .Text | truncate 2000 | json}}{{else}}{{json .Type}}{{end}},
 "username": "kdbridge", "allowed_mentions": {"parse": []}}`
)

func TestBodyTemplates(t *testing.T) {
	msg := messageEvent()
	who := msg.Message.Author.DisplayName
	participant := msg
	participant.Type, participant.Message = bridge.ParticipantCreated, nil
	noTitle := msg
	noTitle.Discussion.Title = ""

	tests := []struct {
		name     string
		template string
		event    bridge.Event
		want     map[string]any
	}{
		{"teams message", teamsTemplate, msg, map[string]any{
			"@type":   "MessageCard",
			"summary": msg.Discussion.Title,
			"title":   msg.Discussion.Title + " (acme)",
			"text":    "**" + who + "**: " + msg.Message.Text,
		}},
		{"teams without a title", teamsTemplate, noTitle, map[string]any{"title": "d1 (acme)"}},
		{"teams participant", teamsTemplate, participant, map[string]any{"text": bridge.ParticipantCreated}},
		{"discord message", discordTemplate, msg, map[string]any{
			"content":          "**" + who + "**: " + msg.Message.Text,
			"allowed_mentions": map[string]any{"parse": []any{}},
		}},
		{"discord participant", discordTemplate, participant, map[string]any{"content": bridge.ParticipantCreated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := newSecret(t, 32)
			srv, got := receiver(t, nil)
			s := newSink(t, webhook.Config{URL: srv.URL, BodyTemplate: tt.template, Secret: secrets(key)}, webhook.Options{})
			if err := deliver(t, s, tt.event); err != nil {
				t.Fatal(err)
			}
			r := next(t, got)
			var body map[string]any
			if err := json.Unmarshal(r.Body, &body); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
			}
			for k, v := range tt.want {
				if g, _ := json.Marshal(body[k]); string(g) != mustJSON(t, v) {
					t.Errorf("%s = %s, want %s", k, g, mustJSON(t, v))
				}
			}
			if err := verify(key, r.Header, r.Body, time.Now()); err != nil {
				t.Errorf("the rendered body is not what was signed: %v", err)
			}
		})
	}
}

func TestTruncateInTemplate(t *testing.T) {
	srv, got := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL,
		BodyTemplate: `{"c": {{.Data.Message.Text | truncate 5 | json}}}`}, webhook.Options{})
	e := messageEvent()
	e.Message.Text = "ünïcödé text"
	if err := deliver(t, s, e); err != nil {
		t.Fatal(err)
	}
	if b := next(t, got).Body; string(b) != `{"c": "ünïc…"}` {
		t.Errorf("body = %s", b)
	}
}

func TestTemplateThatCannotRenderIsPermanent(t *testing.T) {
	srv, got := receiver(t, nil)
	// Valid for messages (Validate tries one), but not guarded for other events.
	s := newSink(t, webhook.Config{URL: srv.URL, BodyTemplate: `{"t": {{json .Data.Message.Text}}}`}, webhook.Options{})
	e := messageEvent()
	e.Type, e.Message = bridge.ParticipantCreated, nil
	if err := deliver(t, s, e); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	select {
	case r := <-got:
		t.Fatalf("sent a request for an unrenderable event: %s", r.Body)
	default:
	}
}

func TestTemplateNotJSONAtRuntimeIsPermanent(t *testing.T) {
	srv, _ := receiver(t, nil)
	// The sample in Validate has a title, so this renders JSON there; an untitled
	// discussion leaves a dangling comma.
	s := newSink(t, webhook.Config{URL: srv.URL,
		BodyTemplate: `{"a": 1{{if .Data.Discussion.Title}}, "t": {{json .Data.Discussion.Title}}{{else}},{{end}}}`}, webhook.Options{})
	e := messageEvent()
	e.Discussion.Title = ""
	if err := deliver(t, s, e); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
}

func TestCustomContentType(t *testing.T) {
	srv, got := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL, ContentType: "text/plain; charset=utf-8",
		BodyTemplate: `{{.Data.Message.Author.DisplayName}} said: {{.Data.Message.Text}}`}, webhook.Options{})
	e := messageEvent()
	if err := deliver(t, s, e); err != nil {
		t.Fatal(err)
	}
	r := next(t, got)
	if ct := r.Header.Get("content-type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("content-type = %q", ct)
	}
	if want := e.Message.Author.DisplayName + " said: " + e.Message.Text; string(r.Body) != want {
		t.Errorf("body = %q, want %q", r.Body, want)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
