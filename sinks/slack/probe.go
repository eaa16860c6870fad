package slack

import (
	"context"
	"fmt"

	slackgo "github.com/slack-go/slack"
)

// ProbeResult is what `kdbridge check -online` learns about a Slack sink.
type ProbeResult struct {
	Team, Bot string   // from auth.test, when the token works
	Problems  []string // one line per problem; none means ready
}

// Probe confirms online what a configuration can only promise: that the token is valid
// (auth.test) and that each channel — an id or a #name — exists, is not archived and has
// the bot as a member (conversations.info). It posts nothing. Problems never show the token.
func (s *Sink) Probe(ctx context.Context, channels []string) ProbeResult {
	var r ProbeResult
	callCtx, cancel := s.callContext(ctx)
	auth, err := s.api.AuthTestContext(callCtx)
	cancel()
	if err != nil {
		r.Problems = append(r.Problems, "token: auth.test: "+s.redact(err.Error())+" (check the bot token and api_url)")
		return r
	}
	r.Team, r.Bot = auth.Team, auth.User
	seen := map[string]bool{}
	for _, ch := range channels {
		if ch == "" || seen[ch] {
			continue
		}
		seen[ch] = true
		id, err := s.resolve(ctx, ch)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("channel %s: %s", ch, s.redact(err.Error())))
			continue
		}
		callCtx, cancel := s.callContext(ctx)
		info, err := s.api.GetConversationInfoContext(callCtx, &slackgo.GetConversationInfoInput{ChannelID: id})
		cancel()
		switch {
		case err != nil:
			r.Problems = append(r.Problems, fmt.Sprintf("channel %s: conversations.info: %s", ch, s.redact(err.Error())))
		case info.IsArchived:
			r.Problems = append(r.Problems, fmt.Sprintf("channel %s: is archived", ch))
		case !info.IsMember:
			r.Problems = append(r.Problems, fmt.Sprintf("channel %s: the bot is not a member: /invite @%s in the channel", ch, auth.User))
		}
	}
	return r
}
