package main

import (
	"context"
	"maps"
	"slices"
	"time"

	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/sinks/slack"

	"github.com/kdbridge/kdbridge/internal/config"
)

// runCheck validates a configuration without any network call and prints either every
// problem or a summary. Secrets are never printed: the summary names keys, not values.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	var cf configFlags
	cf.register(fs)
	online := fs.Bool("online", false, "also connect to the PostgreSQL state database (backend postgres) and report its schema version, and ask Slack whether each slack sink's token works and its channels exist with the bot in them (auth.test, conversations.info; posts nothing)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	// `check FILE`, as promtool and benthos lint take it.
	switch {
	case fs.NArg() == 1 && cf.path == "":
		cf.path = fs.Arg(0)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected arguments %q (check takes one FILE, or -config FILE)", errUsage, fs.Args())
	}
	cfg, err := cf.load()
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintln(stderr, err)
			return errProblems
		}
		return err
	}
	fmt.Fprint(stdout, summary(cfg))
	if *online {
		return checkOnline(ctx, cfg, stdout)
	}
	return nil
}

// checkOnline probes the PostgreSQL state database (backend postgres) and every slack sink
// with its token: the network checks `check` makes, only when asked. What a service refused
// (or, for the state database, any failure) is errOnline, exit 1; Slack out of reach is
// errUnreachable, exit 3.
func checkOnline(ctx context.Context, cfg *Config, w io.Writer) error {
	problems, unreachable := 0, 0
	if cfg.State.Backend == backendPostgres {
		if !checkPostgres(ctx, cfg.State, w) {
			problems++
		}
	}
	for _, e := range cfg.Sinks {
		if e.Slack == nil {
			continue
		}
		channels := []string{e.Slack.Channel}
		for _, r := range cfg.Routes {
			for _, t := range r.To {
				if t.Sink == e.Name {
					channels = append(channels, t.Channel)
				}
			}
		}
		s, err := slack.New(e.Name, *e.Slack, slack.Options{KV: noKV{}})
		if err != nil {
			return fmt.Errorf("sink %s: %w", e.Name, err)
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res := s.Probe(pctx, channels)
		if e.Slack.AppToken.IsSet() && len(res.Problems) == 0 && res.Unreachable == "" {
			res.Problems = append(res.Problems, s.ProbeReplies(pctx)...)
		}
		cancel()
		_ = s.Close()
		if res.Unreachable != "" {
			fmt.Fprintf(w, "online: %s: %s\n", e.Name, res.Unreachable)
			unreachable++
			continue
		}
		if len(res.Problems) == 0 {
			fmt.Fprintf(w, "online: %s: token OK (workspace %q, bot %q), every channel reachable\n", e.Name, res.Team, res.Bot)
			if e.Slack.AppToken.IsSet() {
				fmt.Fprintf(w, "online: %s: app token opens Socket Mode, bot scopes fit two-way\n", e.Name)
			}
			continue
		}
		for _, p := range res.Problems {
			fmt.Fprintf(w, "online: %s: %s\n", e.Name, p)
		}
		problems += len(res.Problems)
	}
	switch {
	case problems > 0:
		return fmt.Errorf("%d problem(s) %w", problems, errOnline)
	case unreachable > 0:
		return fmt.Errorf("%w Slack for %d sink(s): the token and channels are unchecked", errUnreachable, unreachable)
	}
	return nil
}

// checkPostgres connects to the state database without migrating it and reports its schema
// version, or what is wrong (connection, privileges, a newer schema), never the password.
func checkPostgres(ctx context.Context, st stateConfig, w io.Writer) bool {
	dsn := st.DSN.Reveal()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := pgstore.Probe(pctx, dsn)
	where := pgstore.RedactDSN(dsn)
	switch {
	case err != nil:
		fmt.Fprintf(w, "online: state: postgres %s: %s\n", where, pgstore.ScrubDSN(err.Error(), dsn))
		return false
	case v == 0:
		fmt.Fprintf(w, "online: state: postgres %s: reachable, schema not created yet (kdbridge run creates version %d)\n", where, pgstore.SchemaVersion)
	default:
		fmt.Fprintf(w, "online: state: postgres %s: reachable, schema version %d (this binary: %d)\n", where, v, pgstore.SchemaVersion)
	}
	return true
}

// noKV is the store a probing Slack sink gets: probing reads and writes no message map.
type noKV struct{}

func (noKV) Get(context.Context, string, string) ([]byte, bool, error) { return nil, false, nil }
func (noKV) Put(context.Context, string, string, []byte) error         { return nil }

// summary is what check prints of a valid configuration file (online checks follow it).
func summary(cfg *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration OK\n\nsources (%d):\n", len(cfg.Sources))
	for _, s := range cfg.Sources {
		if k := s.Kinetic; k != nil {
			fmt.Fprintf(&b, "  %-16s kinetic  %s as %s, %d discussion(s), read_ahead %s\n", s.Name, k.URL, k.ClientID, len(k.Discussions), byteCount(k.ReadAhead))
		}
		if r := s.Replies; r != nil {
			fmt.Fprintf(&b, "  %-16s slack    replies from slack sink %s over Socket Mode, two-way route(s): %s\n", s.Name, r.Sink, strings.Join(r.Routes, ", "))
		}
	}
	fmt.Fprintf(&b, "sinks (%d):\n", len(cfg.Sinks))
	for _, s := range cfg.Sinks {
		switch {
		case s.Webhook != nil:
			fmt.Fprintf(&b, "  %-16s webhook  %s, %d secret(s)\n", s.Name, s.Webhook.DisplayURL(), len(s.Webhook.Secret))
		case s.Slack != nil:
			fmt.Fprintf(&b, "  %-16s slack    channel %s, threads %s\n", s.Name, orDefault(s.Slack.Channel, "(per route)"), orDefault(s.Slack.Threads, "discussion"))
		case s.Stdout != nil:
			fmt.Fprintf(&b, "  %-16s stdout\n", s.Name)
		case s.ToKinetic != nil:
			fmt.Fprintf(&b, "  %-16s kinetic  writes Slack replies into %s as the integration user\n", s.Name, strings.Join(slices.Sorted(maps.Keys(s.ToKinetic.Spaces)), ", "))
		}
	}
	fmt.Fprintf(&b, "routes (%d):\n", len(cfg.Routes))
	for _, r := range cfg.Routes {
		var to []string
		for _, t := range r.To {
			to = append(to, t.Sink)
		}
		src := r.Source
		if src == "" {
			src = "*"
		}
		which := slices.Clone(r.Discussions)
		for _, m := range r.Match {
			which = append(which, "("+m.String()+")")
		}
		fmt.Fprintf(&b, "  %-16s %s/%s %s -> %s\n", r.Name, src, strings.Join(which, ","), strings.Join(r.Events, ","), strings.Join(to, ", "))
	}
	// The state's own settings: the directory of bbolt, or the database and replica name of
	// postgres (the DSN redacted).
	state := []struct{ key, v string }{{"state.backend", cfg.State.Backend}, {"state.dir", cfg.State.Dir}}
	if cfg.State.Backend == backendPostgres {
		state = []struct{ key, v string }{{"state.backend", cfg.State.Backend},
			{"state.dsn", pgstore.RedactDSN(cfg.State.DSN.Reveal())}, {"state.replica", cfg.State.Replica}}
	}
	fmt.Fprintf(&b, "process settings (flag > environment > file > default):\n")
	for _, p := range append(state, []struct{ key, v string }{
		{"state.retention", cfg.State.Retention.String()}, {"http.listen", cfg.HTTP.Listen},
		{"log.level", cfg.Log.Level}, {"log.format", cfg.Log.Format},
	}...) {
		fmt.Fprintf(&b, "  %-16s %-24s from %s\n", p.key, p.v, orDefault(cfg.Origins[p.key], "code"))
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// byteCount spells a byte count as a setting would be thought of: in MiB or KiB when it is
// a whole number of them.
func byteCount(n int64) string {
	switch {
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
