package kinetictest_test

import (
	"fmt"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// A test starts a simulator, seeds it, points the code under test at URL() with the
// default credentials, and drives the conversation through the Go API.
func Example() {
	s := kinetictest.NewServer(kinetictest.Options{})
	defer s.Close()

	d := s.CreateDiscussion(kinetictest.DiscussionSpec{
		Title:   "Incident INC-7: printer on fire",
		Related: []kinetictest.RelatedItem{{Type: "Submission", Key: "3f1e7c2a-0000-4000-8000-000000000007"}},
	})
	m, _ := s.PostMessage(d.ID, kinetictest.Alice, "It is **really** on fire.")
	_, _ = s.PostReply(d.ID, m.ID, kinetictest.Bob, "Extinguisher on its way.")

	for _, m := range s.Messages(d.ID) {
		fmt.Printf("%s: %s\n", m.CreatedBy.DisplayName, m.Text())
	}
	// Output:
	// Alice Moreau: It is **really** on fire.
	// Bob Okafor: Extinguisher on its way.
}
