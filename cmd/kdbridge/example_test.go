package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// TestExampleBodyTemplates renders the Teams and Discord body templates of
// config.example.yaml for a message with quotes, newlines, unicode and would-be mentions,
// and checks that what is posted is the JSON each service expects.
func TestExampleBodyTemplates(t *testing.T) {
	cfg := loadExample(t)
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	text := "He said \"ship it\"\nthen left ✅ — @everyone <!channel> \\o/"
	ev := bridge.Event{ID: "evt_x", Type: bridge.MessageCreated, Source: "acme", Time: time.Now(),
		Discussion: bridge.Discussion{ID: "d1", Title: "Incident \"VPN\" ⚡"},
		Message:    &bridge.Message{ID: "m1", Kind: bridge.KindUser, Text: text, Author: bridge.User{Username: "zoë", DisplayName: "Zoë \"Z\" Ng"}}}
	for _, name := range []string{"teams", "discord"} {
		var entry *sinkEntry
		for i := range cfg.Sinks {
			if cfg.Sinks[i].Name == name {
				entry = &cfg.Sinks[i]
			}
		}
		if entry == nil {
			t.Fatalf("config.example.yaml has no %s sink", name)
		}
		wc := *entry.Webhook
		wc.URL, wc.URLFile = srv.URL, ""
		s, err := webhook.New(name, wc, webhook.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Deliver(context.Background(), bridge.Delivery{Event: ev, Target: bridge.Target{Sink: name}, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(got, &body); err != nil {
			t.Fatalf("%s body is not JSON: %v\n%s", name, err, got)
		}
		wantText := "**Zoë \"Z\" Ng**: " + text
		switch name {
		case "teams":
			if body["@type"] != "MessageCard" || body["text"] != wantText || body["title"] != ev.Discussion.Title {
				t.Errorf("teams body = %v", body)
			}
		case "discord":
			am, _ := body["allowed_mentions"].(map[string]any)
			if body["content"] != wantText || am == nil || len(am["parse"].([]any)) != 0 {
				t.Errorf("discord body = %v", body)
			}
		}
		s.Close()
	}
}
