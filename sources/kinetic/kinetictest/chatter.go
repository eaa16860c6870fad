package kinetictest

import (
	"context"
	"math/rand/v2"
	"time"
)

var chatterLines = []string{
	"Looking at it now.",
	"Deploy finished, error rate is back to normal.",
	"Can someone from the network team confirm the <b>firewall</b> change?",
	"@here this must not ping anyone in Slack <!channel>",
	"Attached the logs to the submission.",
	"Closing this out once the customer confirms. \"Thanks\" all!",
	"Root cause: a certificate expired on the edge proxy ✅",
}

// Chatter plays simulated users posting (and now and then editing) messages in the given
// discussions, one action every `every`, until ctx ends. It is the live traffic of
// `kdbridge demo` and `kdbridge simulate -chatter`.
func (s *Server) Chatter(ctx context.Context, every time.Duration, discussionIDs []string) {
	if len(discussionIDs) == 0 || every <= 0 {
		return
	}
	users := []User{Alice, Bob, Carol}
	t := time.NewTicker(every)
	defer t.Stop()
	lastByDiscussion := map[string]string{}
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := discussionIDs[n%len(discussionIDs)]
		line := chatterLines[rand.IntN(len(chatterLines))]
		if last, ok := lastByDiscussion[id]; ok && n%7 == 6 {
			// A correction of the text, not a marker: clients show "edited" themselves.
			_, _ = s.UpdateMessage(id, last, "Correction: "+line)
			continue
		}
		if m, err := s.PostMessage(id, users[rand.IntN(len(users))], line); err == nil {
			lastByDiscussion[id] = m.ID
		}
	}
}
