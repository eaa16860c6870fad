package slack

import (
	"context"
	"slices"
	"strings"

	slackgo "github.com/slack-go/slack"

	"github.com/kdbridge/kdbridge/internal/config"
)

// ReplyScopes are the bot token scopes two-way needs beyond posting: reading the messages
// of public and private channels (their events) and the names of the people who wrote them.
var ReplyScopes = []string{"channels:history", "groups:history", "users:read"}

// ProbeReplies confirms online what two-way needs: that the app-level token opens Socket
// Mode (apps.connections.open; the connection is not dialled, its ticket expires unused) and
// that the bot token has ReplyScopes (from the X-OAuth-Scopes header Slack sends with
// auth.test; when Slack does not send it, that is not a problem). Problems never show a
// token.
func (s *Sink) ProbeReplies(ctx context.Context) []string {
	var problems []string
	app := s.cfg.AppToken.Reveal()
	if app == "" {
		return []string{"app_token: not set (reply: true needs an app-level token with connections:write)"}
	}
	redact := func(text string) string { return config.Redact(text, s.cfg.Token.Reveal(), app) }
	opts := []slackgo.Option{slackgo.OptionHTTPClient(s.http), slackgo.OptionAppLevelToken(app)}
	if s.cfg.APIURL != "" {
		opts = append(opts, slackgo.OptionAPIURL(s.cfg.APIURL))
	}
	api := slackgo.New(s.cfg.Token.Reveal(), opts...)
	callCtx, cancel := s.callContext(ctx)
	_, _, err := api.StartSocketModeContext(callCtx)
	cancel()
	if err != nil {
		problems = append(problems, "app_token: apps.connections.open: "+redact(err.Error())+
			" (an app-level token with connections:write, and Socket Mode turned on for the app)")
	}
	callCtx, cancel = s.callContext(ctx)
	auth, err := s.api.AuthTestContext(callCtx)
	cancel()
	if err != nil || auth.Header == nil || auth.Header.Get("X-OAuth-Scopes") == "" {
		return problems // auth.test failing is Probe's to report
	}
	have := strings.Split(auth.Header.Get("X-OAuth-Scopes"), ",")
	for i := range have {
		have[i] = strings.TrimSpace(have[i])
	}
	for _, want := range ReplyScopes {
		if !slices.Contains(have, want) {
			problems = append(problems, "token: the bot lacks the scope "+want+" that two-way needs (add it in the app's OAuth settings and reinstall)")
		}
	}
	return problems
}
