package bridge

import "testing"

// TestInboundEventsOnlyByTheirOwnRoute: a reply typed in Slack (Event.Inbound set) is never
// taken by a route for every source, only by a route naming its source.
func TestInboundEventsOnlyByTheirOwnRoute(t *testing.T) {
	r := NewRouter([]RouteConfig{
		{Name: "everything", Events: []string{"*"}, To: []TargetConfig{{Sink: "archive"}}},
		{Name: "slack:ops", Source: "slack:ops", To: []TargetConfig{{Sink: "kinetic"}}},
	}, map[string]string{"acme": "integration-user"})
	reply := Event{Type: MessageCreated, Source: "slack:ops", Discussion: Discussion{ID: "d1"},
		Message: &Message{ID: "C1/1.0", Kind: KindUser, Author: User{Username: "U1"}},
		Inbound: &Inbound{Kinetic: "acme", Sink: "ops", Channel: "C1", TS: "1.0"}}
	if got := r.Targets(reply); len(got) != 1 || got[0].Sink != "kinetic" {
		t.Errorf("reply routed to %+v, want the kinetic sink only", got)
	}
	kinetic := Event{Type: MessageCreated, Source: "acme", Discussion: Discussion{ID: "d1"},
		Message: &Message{ID: "m1", Kind: KindUser, Author: User{Username: "alice"}}}
	if got := r.Targets(kinetic); len(got) != 1 || got[0].Sink != "archive" {
		t.Errorf("Kinetic message routed to %+v, want archive only", got)
	}
	// The copy of the reply that kdbridge wrote into Kinetic is its own: never routed.
	kinetic.Message.Author.Username = "integration-user"
	if got := r.Targets(kinetic); len(got) != 0 {
		t.Errorf("kdbridge's own Kinetic post routed to %+v", got)
	}
}
