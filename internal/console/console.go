// Package console is kdbridge's operator console: server-rendered pages on the daemon's
// HTTP listener that show what the sources, sinks and deliveries are doing, each delivery's
// attempt history, the dead letters (with replay and drop) and what is mirrored where. It
// also guards the operator API (/dlq, /-/reload) with the same access rules (auth.go).
//
// Everything it shows comes through the small interfaces below, which the daemon's wiring
// fills from the store, the dispatcher and the sources; nothing here reads more than one
// page of anything per request, so it stays fast with tens of thousands of discussions.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// DeadLetterOps are the dead-letter operations of `kdbridge dlq`; the daemon passes the
// same value its /dlq API uses, so the console and the command do exactly the same thing.
type DeadLetterOps interface {
	DeadLetters(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error)
	Replay(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error)
	Drop(ctx context.Context, f bridge.DeadLetterFilter) (int, error)
}

// History reads the attempt history (a bridge.AttemptLog).
type History interface {
	Attempts(ctx context.Context, f bridge.AttemptFilter) ([]bridge.AttemptRecord, error)
}

// Targets are the dispatcher's disabled targets.
type Targets interface {
	ListDisabledTargets() []bridge.DisabledTarget
	EnableTarget(ctx context.Context, t bridge.Target) error
}

// Leadership reports this replica's part when several share a store; nil means a single
// node. Leader is true when this replica delivers; Detail names the holder or the lease.
type Leadership interface {
	Leadership() (leader bool, detail string)
}

// Deps is what the console shows and acts on. Sources, Backlog, DeadLetters and Routes are
// required; History, HistoryStats, Targets and Leader may be nil.
type Deps struct {
	Sources      func() []bridge.Source                                   // kinetic sources are shown with their status
	Backlog      func() []bridge.SinkBacklog                              // every configured sink, with what waits
	HistoryStats func() bridge.AttemptHistory                             // how the attempt history is being kept
	Routes       func(source string, d bridge.Discussion) []bridge.Target // where a new message of the discussion goes
	DeadLetters  DeadLetterOps
	History      History
	Targets      Targets
	Leader       Leadership
	Auth         AuthConfig
	Logger       *slog.Logger
	Now          func() time.Time // default time.Now
}

// Console serves the pages. Observe must hear every delivery outcome (for the per-minute
// rates); it is cheap and never blocks.
type Console struct {
	deps  Deps
	auth  *authenticator
	rates *rates
	tmpl  map[string]*template.Template
	start time.Time
}

//go:embed templates/*.html static/*
var assets embed.FS

// New builds a console. deps.Auth must have been validated.
func New(deps Deps) (*Console, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	c := &Console{deps: deps, auth: newAuthenticator(deps.Auth), rates: newRates(deps.Now), start: deps.Now()}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	c.tmpl = tmpl
	return c, nil
}

// Observe counts one delivery outcome for the rates on the overview.
func (c *Console) Observe(o bridge.Outcome) { c.rates.observe(o) }

// Guard wraps an operator endpoint (the /dlq API, /-/reload) in the console's access rules.
func (c *Console) Guard(h http.Handler) http.Handler { return c.auth.guard(h) }

// Register adds the console's pages to mux, under / (the overview), /deliveries,
// /dead-letters, /discussions and /console/static/.
func (c *Console) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	page := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, c.Guard(c.handle(h)))
	}
	page("GET /{$}", c.overview)
	page("GET /deliveries", c.deliveries)
	page("GET /dead-letters", c.deadLetters)
	page("GET /dead-letters/{id}", c.deadLetter)
	page("POST /dead-letters/replay", c.replay)
	page("POST /dead-letters/drop", c.drop)
	page("POST /targets/enable", c.enableTarget)
	page("GET /discussions", c.discussions)
}

// handle turns a page function's error into a 500 page; the error is logged and shown
// (store errors hold no secrets).
func (c *Console) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r); err != nil {
			c.deps.Logger.Error("console page failed", "path", r.URL.Path, "err", err)
			http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		}
	})
}

type ctxKey struct{}

func withIdentity(ctx context.Context, id identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

func identityOf(ctx context.Context) identity {
	id, _ := ctx.Value(ctxKey{}).(identity)
	return id
}
