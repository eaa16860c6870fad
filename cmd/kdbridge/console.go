package main

import (
	"context"
	"net/http"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/console"
)

// dlqOps are the dead-letter operations of the /dlq API of `kdbridge dlq` (dlqHandler) for
// the console's buttons: the same calls — listing and dropping in the store, replaying
// through the dispatcher (which re-enables the targets and delivers at once). It reads d's store and dispatcher
// when called, after serve has set them.
type dlqOps struct{ d *daemon }

func (o dlqOps) DeadLetters(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	return o.d.st.DeadLetters(ctx, f)
}

func (o dlqOps) Replay(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	return o.d.disp.Replay(ctx, f)
}

func (o dlqOps) Drop(ctx context.Context, f bridge.DeadLetterFilter) (int, error) {
	return o.d.st.Drop(ctx, f)
}

// newConsole wires the operator console to the daemon. Its functions read d.disp when a
// page is served, after serve has set it.
func newConsole(d *daemon, leader console.Leadership) (*console.Console, error) {
	deps := console.Deps{
		Sources:      d.currentSources,
		Backlog:      func() []bridge.SinkBacklog { return d.disp.Backlog() },
		HistoryStats: func() bridge.AttemptHistory { return d.disp.AttemptHistory() },
		Routes: func(source string, disc bridge.Discussion) []bridge.Target {
			// Where a new user message of the discussion would go now.
			return d.disp.Router().Targets(bridge.Event{Type: bridge.MessageCreated, Source: source, Discussion: disc,
				Message: &bridge.Message{Kind: bridge.KindUser}})
		},
		DeadLetters: dlqOps{d},
		Targets:     dispTargets{d},
		Leader:      leader,
		Auth:        d.cfg.HTTP.Auth,
		Logger:      d.log,
	}
	if al, ok := bridge.Store(d.st).(bridge.AttemptLog); ok {
		deps.History = al
	}
	return console.New(deps)
}

// dispTargets reads d.disp late, like the functions above.
type dispTargets struct{ d *daemon }

func (t dispTargets) ListDisabledTargets() []bridge.DisabledTarget {
	return t.d.disp.ListDisabledTargets()
}
func (t dispTargets) EnableTarget(ctx context.Context, tg bridge.Target) error {
	return t.d.disp.EnableTarget(ctx, tg)
}

// guard applies the console's access rules to an operator endpoint, or the loopback-only
// rule when there is no console (tests that build a bare daemon).
func (d *daemon) guard(h http.Handler) http.Handler {
	if d.console == nil {
		return loopbackOnly(h)
	}
	return d.console.Guard(h)
}

// adminToken is the first admin token of http.auth, which the dlq command presents to a
// running daemon; "" when there is none (then the daemon must answer loopback without auth).
func adminToken(a console.AuthConfig) string {
	for _, t := range a.Tokens {
		if t.Role == console.RoleAdmin {
			return t.Token.Reveal()
		}
	}
	return ""
}
