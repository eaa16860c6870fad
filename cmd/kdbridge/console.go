package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/console"
)

// dlqOps are the dead-letter operations of the /dlq API of `kdbridge dlq` (dlqHandler) for
// the console's buttons: the same calls — listing and dropping in the store, replaying
// through the dispatcher while this replica leads (which re-enables the targets and
// delivers at once), in the shared store otherwise (d.replay). They read d's store and
// dispatcher when called: with backend postgres either may be missing for a while.
type dlqOps struct{ d *daemon }

var errNoStore = errors.New("the state database is not open yet; see /readyz")

func (o dlqOps) DeadLetters(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	st := o.d.store()
	if st == nil {
		return nil, errNoStore
	}
	return st.DeadLetters(ctx, f)
}

func (o dlqOps) Replay(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	st := o.d.store()
	if st == nil {
		return nil, errNoStore
	}
	return o.d.replay(ctx, st, f)
}

func (o dlqOps) Drop(ctx context.Context, f bridge.DeadLetterFilter) (int, error) {
	st := o.d.store()
	if st == nil {
		return 0, errNoStore
	}
	return st.Drop(ctx, f)
}

// history reads the attempt history of d's store, once it is open.
type history struct{ d *daemon }

func (h history) Attempts(ctx context.Context, f bridge.AttemptFilter) ([]bridge.AttemptRecord, error) {
	al, ok := bridge.Store(h.d.store()).(bridge.AttemptLog)
	if !ok {
		return nil, errNoStore
	}
	return al.Attempts(ctx, f)
}

// leadership tells the console this replica's part when several share a PostgreSQL state.
type leadership struct{ d *daemon }

func (l leadership) Leadership() (bool, string) {
	problem, line := l.d.ha.status()
	if problem != "" {
		line += "; " + problem
	}
	return l.d.leads(), line
}

// newConsole wires the operator console to the daemon. Its functions read the current
// term's dispatcher when a page is served; a replica that does not lead shows no backlog.
func newConsole(d *daemon) (*console.Console, error) {
	deps := console.Deps{
		Sources:      d.currentSources,
		Backlog:      d.backlog,
		HistoryStats: d.attemptHistory,
		Routes: func(source string, disc bridge.Discussion) []bridge.Target {
			// Where a new user message of the discussion would go now.
			ev := bridge.Event{Type: bridge.MessageCreated, Source: source, Discussion: disc, Message: &bridge.Message{Kind: bridge.KindUser}}
			if disp := d.dispatcher(); disp != nil {
				return disp.Router().Targets(ev)
			}
			d.mu.Lock()
			cfg := d.cfg
			d.mu.Unlock()
			return bridge.NewRouterSelf(cfg.Routes, d.selfUsers(cfg)).Targets(ev)
		},
		DeadLetters: dlqOps{d},
		History:     history{d},
		Targets:     dispTargets{d},
		Auth:        d.cfg.HTTP.Auth,
		Logger:      d.log,
	}
	if d.postgres {
		deps.Leader = leadership{d}
	}
	return console.New(deps)
}

// attemptHistory is how the current term's dispatcher keeps the attempt history. A replica
// that does not lead writes none; the leader's, which it shows, is kept as the shared
// configuration says.
func (d *daemon) attemptHistory() bridge.AttemptHistory {
	if disp := d.dispatcher(); disp != nil {
		return disp.AttemptHistory()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return bridge.AttemptHistory{FailedOnly: d.cfg.State.Attempts.failedOnly()}
}

// dispTargets reads the current term's dispatcher, like the functions above.
type dispTargets struct{ d *daemon }

var errFollower = errors.New("this replica does not lead: re-enable the target on the leader's console")

func (t dispTargets) ListDisabledTargets() []bridge.DisabledTarget {
	if disp := t.d.dispatcher(); disp != nil {
		return disp.ListDisabledTargets()
	}
	return nil
}

func (t dispTargets) EnableTarget(ctx context.Context, tg bridge.Target) error {
	if disp := t.d.dispatcher(); disp != nil {
		return disp.EnableTarget(ctx, tg)
	}
	return errFollower
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
