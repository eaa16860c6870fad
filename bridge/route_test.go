package bridge

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/internal/config"
)

const routesYAML = `
- name: incidents
  source: acme
  discussions: ["00000000-0000-4000-8000-0000000000d1", "00000000-0000-4000-8000-0000000000d2"]
  to:
    - sink: slack
      channel: C999
    - audit
- name: everything
  events: ["*"]
  skip_authors: [bot]
  to: [archive]
- name: system-too
  source: other
  include_system: true
  events: ["message.created"]
  to: [sys]
`

func loadRoutes(t *testing.T) []RouteConfig {
	t.Helper()
	doc, ps := config.Parse([]byte(routesYAML))
	if len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	var rs []RouteConfig
	if ps := config.Decode(doc, &rs, "routes"); len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	return rs
}

func TestRouterTargets(t *testing.T) {
	r := NewRouter(loadRoutes(t), map[string]string{"acme": "integration", "other": "integration"})
	msg := func(src, disc, typ, author, kind string) Event {
		return Event{Source: src, Type: typ, Discussion: Discussion{ID: disc},
			Message: &Message{Kind: kind, Author: User{Username: author}}}
	}
	tests := []struct {
		name string
		e    Event
		want []string // route/sink/channel
	}{
		{"selected by both", msg("acme", "00000000-0000-4000-8000-0000000000d1", MessageCreated, "alice", KindUser),
			[]string{"incidents/slack/C999", "incidents/audit/", "everything/archive/"}},
		{"other discussion", msg("acme", "d3", MessageCreated, "alice", KindUser), []string{"everything/archive/"}},
		{"own user always skipped", msg("acme", "00000000-0000-4000-8000-0000000000d1", MessageCreated, "integration", KindUser), nil},
		{"skip_authors", msg("acme", "d3", MessageUpdated, "bot", KindUser), nil},
		{"system skipped by default", msg("acme", "00000000-0000-4000-8000-0000000000d1", MessageCreated, "alice", KindSystem), nil},
		{"system included", msg("other", "dx", MessageCreated, "alice", KindSystem), []string{"system-too/sys/"}},
		{"event filter", msg("other", "dx", MessageDeleted, "alice", KindUser), []string{"everything/archive/"}},
		{"glob *", Event{Source: "acme", Type: ParticipantCreated, Discussion: Discussion{ID: "00000000-0000-4000-8000-0000000000d1"}}, []string{"everything/archive/"}},
		{"default events exclude participants", Event{Source: "acme", Type: ParticipantCreated, Discussion: Discussion{ID: "d9"}}, []string{"everything/archive/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tg := range r.Targets(tt.e) {
				got = append(got, tg.Route+"/"+tg.Sink+"/"+tg.Channel)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("targets = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRouteValidate(t *testing.T) {
	rs := loadRoutes(t)
	sources := map[string]bool{"acme": true}
	sinks := map[string]bool{"slack": true, "audit": true, "archive": true}
	for i := range rs {
		rs[i].Defaults()
	}
	if err := rs[0].Validate(sources, sinks); err != nil {
		t.Errorf("valid route: %v", err)
	}
	err := rs[2].Validate(sources, sinks)
	if err == nil {
		t.Fatal("route with unknown source and sink validated")
	}
	for _, want := range []string{`source: unknown source "other"`, `to[0]: unknown sink "sys"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	bad := RouteConfig{Name: "x", Events: []string{"message.create", "[", "participant.*"}, To: []TargetConfig{{Sink: "audit"}}}
	err = bad.Validate(sources, sinks)
	if err == nil || !strings.Contains(err.Error(), `events[0]: "message.create" matches no event type`) || !strings.Contains(err.Error(), `events[1]`) || strings.Contains(err.Error(), "events[2]") {
		t.Errorf("event validation: %v", err)
	}
}

func TestTargetShorthandAndStrictness(t *testing.T) {
	doc, _ := config.Parse([]byte("- {sink: a, chanel: x}\n"))
	var ts []TargetConfig
	ps := config.Decode(doc, &ts, "to")
	if len(ps) == 0 || !strings.Contains(ps.Err().Error(), "chanel") {
		t.Fatalf("unknown key in target not reported: %v", ps.Err())
	}
	var one []TargetConfig
	if err := yaml.Unmarshal([]byte("[a, {sink: b, channel: C1}]"), &one); err != nil || one[0].Sink != "a" || one[1].Channel != "C1" {
		t.Fatalf("targets = %+v, %v", one, err)
	}
}

// TestRouteMatch: a route selects discussions by what they are about (match:), by id, or
// both; match: alone does not select every discussion.
func TestRouteMatch(t *testing.T) {
	doc, ps := config.Parse([]byte(`
- name: incidents
  match:
    - related: {type: submission}
    - title: "Incident *"
  to: [slack]
- name: one-form
  discussions: [00000000-0000-4000-8000-0000000000d7]
  match:
    - {related: {type: Form, key: services/it}, title: "*urgent*"}
  to: [audit]
`))
	if len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	var rs []RouteConfig
	if ps := config.Decode(doc, &rs, "routes"); len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	for i := range rs {
		rs[i].Defaults()
		if err := rs[i].Validate(map[string]bool{}, map[string]bool{"slack": true, "audit": true}); err != nil {
			t.Fatalf("route %s: %v", rs[i].Name, err)
		}
	}
	if len(rs[0].Discussions) != 0 {
		t.Fatalf("a route with match: defaulted to discussions %v", rs[0].Discussions)
	}
	r := NewRouter(rs, nil)
	ev := func(id, title string, related ...RelatedItem) Event {
		return Event{Source: "acme", Type: MessageCreated, Discussion: Discussion{ID: id, Title: title, Related: related},
			Message: &Message{Kind: KindUser, Author: User{Username: "alice"}}}
	}
	tests := []struct {
		name string
		e    Event
		want []string
	}{
		{"related type, any key, any case", ev("00000000-0000-4000-8000-0000000000d1", "x", RelatedItem{"Submission", "s-1"}), []string{"incidents"}},
		{"title glob", ev("00000000-0000-4000-8000-0000000000d2", "incident 7"), []string{"incidents"}},
		{"neither", ev("d3", "Change 7", RelatedItem{"Team", "ops"}), nil},
		{"related items unknown", ev("d4", "Change 7"), nil},
		{"listed id", ev("00000000-0000-4000-8000-0000000000d7", "anything"), []string{"one-form"}},
		{"rule needs both", ev("d8", "URGENT: printer", RelatedItem{"Form", "services/it"}), []string{"one-form"}},
		{"rule needs both: key differs", ev("d9", "urgent", RelatedItem{"Form", "services/hr"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tg := range r.Targets(tt.e) {
				got = append(got, tg.Route)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("routes = %q, want %q", got, tt.want)
			}
		})
	}

	bad := RouteConfig{Name: "x", Match: []MatchRule{{}, {Related: &RelatedItem{Key: "k"}}, {Title: "[x"}}, To: []TargetConfig{{Sink: "audit"}}}
	bad.Defaults()
	err := bad.Validate(nil, map[string]bool{"audit": true})
	for _, want := range []string{"match[0]: a rule needs related: or title:", "match[1].related.type: is required", "match[2].title"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation error %v lacks %q", err, want)
		}
	}
	empty := RouteConfig{Name: "x", Match: []MatchRule{}, To: []TargetConfig{{Sink: "audit"}}}
	if err := empty.Validate(nil, map[string]bool{"audit": true}); err == nil || !strings.Contains(err.Error(), "match: at least one rule") {
		t.Errorf("an empty match: list validated: %v", err)
	}
}

// The username a source acts as is asked at routing time: a source learns it when it gets
// its first token, after the router is built.
func TestRouterSelfAtRoutingTime(t *testing.T) {
	rs := []RouteConfig{{Name: "all", Discussions: []string{"*"}, To: []TargetConfig{{Sink: "audit"}}}}
	rs[0].Defaults()
	self := "client-id"
	r := NewRouterSelf(rs, func(source string) string {
		if source == "acme" {
			return self
		}
		return ""
	})
	ev := func(author string) Event {
		return Event{Source: "acme", Type: MessageCreated, Discussion: Discussion{ID: "d1"},
			Message: &Message{Kind: KindUser, Author: User{Username: author}}}
	}
	if got := r.Targets(ev("svc-kdbridge")); len(got) != 1 {
		t.Fatalf("before the token: %d targets, want 1", len(got))
	}
	self = "svc-kdbridge" // the token's username claim
	if got := r.Targets(ev("svc-kdbridge")); len(got) != 0 {
		t.Errorf("kdbridge's own message routed to %v", got)
	}
	if got := r.Targets(ev("alice")); len(got) != 1 {
		t.Errorf("alice's message: %d targets, want 1", len(got))
	}
}
