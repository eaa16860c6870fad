package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestRouteMatchEndToEnd: a route with match: delivers the messages of the discussions that
// are about what it names, and only those; the webhook body says what each discussion is
// about. A discussion that comes to match later (a related item added) is routed from then on.
func TestRouteMatchEndToEnd(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	form := kinetictest.RelatedItem{Type: "Form", Key: "services/it-request"}
	about := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Printer", Related: []kinetictest.RelatedItem{form}})
	other := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Lunch", Related: []kinetictest.RelatedItem{{Type: "Team", Key: "ops"}}})
	later := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Laptop"})
	cfg := strings.Replace(bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), []string{about.ID, other.ID, later.ID}),
		"  - name: all\n    to: [hook]", "  - name: it-requests\n    match:\n      - related: {type: form, key: services/it-request}\n    to: [hook]", 1)
	if !strings.Contains(cfg, "it-requests") {
		t.Fatal("route not replaced in the config")
	}
	d := startDaemon(t, "-config", writeConfig(t, cfg))
	waitFor(t, "3 subscriptions", 15*time.Second, func() bool { return sim.Stats().Subscriptions >= 3 })
	waitFor(t, "the subscriptions to settle", 15*time.Second, func() bool { return strings.Contains(d.stderr.String(), "caught up") })

	alice := kinetictest.User{Username: "alice", DisplayName: "Alice", Email: "alice@example.com"}
	post := func(id, text string) {
		t.Helper()
		if _, err := sim.PostMessage(id, alice, text); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		post(other.ID, fmt.Sprintf("other %d", i))
		post(later.ID, fmt.Sprintf("later-before %d", i))
		post(about.ID, fmt.Sprintf("about %d", i))
	}
	waitFor(t, "3 deliveries", 15*time.Second, func() bool { return len(recv.deliveries()) >= 3 })

	if err := sim.AddRelatedItem(later.ID, form); err != nil {
		t.Fatal(err)
	}
	post(later.ID, "later-after")
	post(about.ID, "about last")
	waitFor(t, "5 deliveries", 15*time.Second, func() bool { return len(recv.deliveries()) >= 5 })
	time.Sleep(200 * time.Millisecond) // anything wrongly routed has had time to arrive too

	var texts []string
	for _, dl := range recv.deliveries() {
		texts = append(texts, dl.envelope.Data.Message.Text)
		if dl.envelope.Data.Discussion.ID == about.ID {
			if r := dl.envelope.Data.Discussion.Related; len(r) != 1 || r[0].Type != "Form" || r[0].Key != "services/it-request" {
				t.Errorf("related_items in the webhook body = %+v", r)
			}
		}
	}
	want := []string{"about 0", "about 1", "about 2", "later-after", "about last"}
	if !sameSet(texts, want) {
		t.Errorf("delivered %q, want %q", texts, want)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
