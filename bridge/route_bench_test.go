package bridge

import (
	"strconv"
	"testing"
)

// BenchmarkRouterTargets routes a message through ten routes of the kinds a configuration
// has: per source, per discussion list, event globs, skipped authors; three select it.
func BenchmarkRouterTargets(b *testing.B) {
	disc := "9fa2b330-fa5e-11e8-88ef-7bbe80231820"
	var routes []RouteConfig
	for i := range 6 {
		// Routes for other discussions of the same source.
		routes = append(routes, RouteConfig{Name: "team" + strconv.Itoa(i), Source: "acme",
			Discussions: []string{"d-" + strconv.Itoa(i) + "-a", "d-" + strconv.Itoa(i) + "-b", "d-" + strconv.Itoa(i) + "-c"},
			To:          []TargetConfig{{Sink: "slack", Channel: "C" + strconv.Itoa(i)}}})
	}
	routes = append(routes,
		RouteConfig{Name: "other-space", Source: "globex", To: []TargetConfig{{Sink: "audit"}}},
		RouteConfig{Name: "incident", Source: "acme", Discussions: []string{disc, "d-x"}, To: []TargetConfig{{Sink: "slack", Channel: "CINC"}}},
		RouteConfig{Name: "audit", Events: []string{"*"}, IncludeSystem: true, To: []TargetConfig{{Sink: "audit"}}},
		RouteConfig{Name: "messages", Events: []string{"message.*"}, SkipAuthors: []string{"bot", "ci"}, To: []TargetConfig{{Sink: "hook"}}},
	)
	r := NewRouter(routes, map[string]string{"acme": "integration-user"})
	e := Event{ID: "evt_x", Type: MessageCreated, Source: "acme", Discussion: Discussion{ID: disc},
		Message: &Message{ID: "m1", Kind: KindUser, Author: User{Username: "alice"}}}
	if n := len(r.Targets(e)); n != 3 {
		b.Fatalf("%d targets, want 3", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Targets(e)
	}
}
