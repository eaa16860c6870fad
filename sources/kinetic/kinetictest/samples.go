package kinetictest

// Sample users who write the seeded messages. SeedSamples registers them with AddUser
// (password = username + "-secret") so that demos can also log in as them.
var (
	Alice = User{Username: "alice", DisplayName: "Alice Moreau", Email: "alice@example.com"}
	Bob   = User{Username: "bob", DisplayName: "Bob Okafor", Email: "bob@example.com"}
	Carol = User{Username: "carol", DisplayName: "Carol Lindqvist", Email: "carol@example.com"}
)

// The sample discussions have fixed ids, so that a configuration (docker-compose's demo, the
// README) can name them before the simulator starts.
const (
	SampleIncidentID = "9fa2b330-fa5e-11e8-88ef-7bbe80231820"
	SampleFormID     = "3c1d5e7a-2b4f-4c6d-8e9f-0a1b2c3d4e5f"
	SampleTeamID     = "7e8f9a0b-1c2d-4e3f-a5b6-c7d8e9f0a1b2"
)

// SampleSubmissionID is the Submission the sample incident discussion is related to.
const SampleSubmissionID = "5f1c2a8e-3b7d-4e6a-9c21-7d8e4b0a6f13"

// SeedSamples creates three sample discussions with a few realistic messages each: an
// incident tied to a Submission, a discussion about a Form, and a Team discussion. It
// returns them as GET /discussions/{id} would, oldest first.
func (s *Server) SeedSamples() []Discussion {
	for _, u := range []User{Alice, Bob, Carol} {
		s.AddUser(u, u.Username+"-secret")
	}
	type line struct {
		who   User
		reply int // 1-based index of the message replied to; 0 for none
		text  string
	}
	seed := []struct {
		spec  DiscussionSpec
		lines []line
	}{
		{
			DiscussionSpec{
				ID:          SampleIncidentID,
				Title:       "Incident INC-1042: VPN gateway down in Lyon office",
				Description: "Users in Lyon cannot reach the VPN since 08:40.",
				Related:     []RelatedItem{{Type: "Submission", Key: SampleSubmissionID}},
			},
			[]line{
				{Alice, 0, "VPN gateway lyon-gw-02 stopped answering at 08:40. About 40 users affected."},
				{Bob, 0, "Looking at it. The HA peer did not take over, checking the heartbeat link."},
				{Bob, 2, "Heartbeat cable was unplugged during the rack work. Failover is back, tunnels are coming up."},
				{Alice, 0, "Confirmed from two laptops: connected. I'll keep the incident open for an hour."},
			},
		},
		{
			DiscussionSpec{
				ID:          SampleFormID,
				Title:       "IT Request form: add a cost center field",
				Description: "Changes to services/it-request.",
				Related:     []RelatedItem{{Type: "Form", Key: "services/it-request"}},
			},
			[]line{
				{Carol, 0, "Finance asks for a **Cost Center** field on the IT Request form, required for hardware."},
				{Alice, 0, "Fine by me. Should it default from the requester's profile attribute?"},
				{Carol, 2, "Yes, from the user attribute `Cost Center`, editable."},
			},
		},
		{
			DiscussionSpec{
				ID:          SampleTeamID,
				Title:       "Network Operations",
				Description: "Team channel for the network operations team.",
				Related:     []RelatedItem{{Type: "Team", Key: "network-operations"}},
			},
			[]line{
				{Bob, 0, "Maintenance window Saturday 06:00-08:00 UTC for the core switch firmware."},
				{Carol, 0, "Noted. I'll post the change ticket here once approved."},
				{Bob, 0, "Reminder: on-call rotation changes on Monday, see the team calendar."},
			},
		},
	}
	out := make([]Discussion, 0, len(seed))
	for _, sd := range seed {
		d := s.CreateDiscussion(sd.spec)
		var ids []string
		for _, l := range sd.lines {
			var m Message
			var err error
			if l.reply > 0 {
				m, err = s.PostReply(d.ID, ids[l.reply-1], l.who, l.text)
			} else {
				m, err = s.PostMessage(d.ID, l.who, l.text)
			}
			if err != nil {
				panic("kinetictest: seeding: " + err.Error()) // a fresh discussion accepts messages
			}
			ids = append(ids, m.ID)
		}
		full, err := s.Discussion(d.ID)
		if err != nil {
			panic("kinetictest: seeding: " + err.Error())
		}
		out = append(out, full)
	}
	return out
}
