package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kdbridge/kdbridge/internal/config"
)

// runCheck validates a configuration without any network call and prints either every
// problem or a summary. Secrets are never printed: the summary names keys, not values.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
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
	return nil
}

func summary(cfg *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration OK\n\nsources (%d):\n", len(cfg.Sources))
	for _, s := range cfg.Sources {
		if k := s.Kinetic; k != nil {
			fmt.Fprintf(&b, "  %-16s kinetic  %s as %s, %d discussion(s)\n", s.Name, k.URL, k.ClientID, len(k.Discussions))
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
		fmt.Fprintf(&b, "  %-16s %s/%s %s -> %s\n", r.Name, src, strings.Join(r.Discussions, ","), strings.Join(r.Events, ","), strings.Join(to, ", "))
	}
	fmt.Fprintf(&b, "state: %s (retention %s), http: %s, log: %s/%s\n", cfg.State.Dir, cfg.State.Retention, cfg.HTTP.Listen, cfg.Log.Level, cfg.Log.Format)
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
