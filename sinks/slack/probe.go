package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	slackgo "github.com/slack-go/slack"

	"github.com/kdbridge/kdbridge/bridge"
)

// ProbeResult is what `kdbridge check -online` learns about a Slack sink.
type ProbeResult struct {
	Team, Bot string   // from auth.test, when the token works
	Problems  []string // what Slack refused, one line per problem; none means ready
	// Unreachable says why Slack could not be asked at all (DNS, connection, timeout, a
	// 5xx): nothing is known about the token or the channels then.
	Unreachable string
}

// Probe confirms online what a configuration can only promise: that the token is valid
// (auth.test) and that each channel — an id or a #name — exists, is not archived and has
// the bot as a member (conversations.info). It posts nothing. Problems never show the token.
func (s *Sink) Probe(ctx context.Context, channels []string) ProbeResult {
	var r ProbeResult
	callCtx, cancel := s.callContext(ctx)
	auth, err := s.api.AuthTestContext(callCtx)
	cancel()
	switch {
	case err != nil && !answered(err):
		r.Unreachable = s.unreachable(err)
		return r
	case err != nil:
		r.Problems = append(r.Problems, "token: auth.test: "+s.redact(err.Error())+" (check the bot token)")
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
		if err != nil && !answered(err) {
			r.Unreachable = s.unreachable(err)
			return r
		}
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("channel %s: %s", ch, s.redact(err.Error())))
			continue
		}
		callCtx, cancel := s.callContext(ctx)
		info, err := s.api.GetConversationInfoContext(callCtx, &slackgo.GetConversationInfoInput{ChannelID: id})
		cancel()
		switch {
		case err != nil && !answered(err):
			r.Unreachable = s.unreachable(err)
			return r
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

// answered reports whether err is Slack's answer (an error code, a 4xx) rather than a failure
// to get one (DNS, connection refused, timeout, 5xx).
func answered(err error) bool {
	if errorCode(err) != "" {
		return true
	}
	var sc slackgo.StatusCodeError
	return errors.As(err, &sc) && sc.Code >= 400 && sc.Code < 500 && sc.Code != http.StatusTooManyRequests && sc.Code != http.StatusRequestTimeout
}

func (s *Sink) unreachable(err error) string {
	api := s.cfg.APIURL
	if api == "" {
		api = slackgo.APIURL
	}
	return fmt.Sprintf("could not reach Slack at %s: %s (check the network, DNS, a proxy, or api_url)", api, s.redact(err.Error()))
}

// Verify asks Slack whether the token works (auth.test), for the dispatcher before any
// delivery: nil when it does, a bridge.Halt error when Slack refuses it (or api_url answers
// with a 4xx, which no retry fixes), any other error when Slack could not be asked.
func (s *Sink) Verify(ctx context.Context) error {
	callCtx, cancel := s.callContext(ctx)
	_, err := s.api.AuthTestContext(callCtx)
	cancel()
	err = s.classify(ctx, "auth.test", "", err)
	if bridge.IsPermanent(err) {
		err = bridge.Halt(err)
	}
	if err != nil {
		return &redactedError{err: err, redact: s.redact}
	}
	return nil
}
