package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/sinkprobe"
	"github.com/kdbridge/kdbridge/sinks/slack"
	stdoutsink "github.com/kdbridge/kdbridge/sinks/stdout"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

const sendTestUsage = `usage: kdbridge send-test -config FILE -sink NAME [-route R] [-channel C] [-timeout 30s]

Sends one test event, clearly marked "kdbridge send-test", through the sink as the daemon
would (envelope or template, signature, Slack formatting and threading) and prints what the
far side answered to each request: status and the start of the body. Nothing is written to
the state directory, so it works with the daemon running or not. With -route, the event
goes as that route's target of the sink would receive it (its Slack channel and template).

Exit codes: 0 the far side accepted the event; 1 it did not (the answer and what the daemon
would do — retry, dead-letter, disable the target — are printed), or the configuration
does not load; 2 command-line misuse (no -sink, an unknown sink, -channel on a sink that
is not Slack, a -route that does not send to the sink).

Flags:
`

// runSendTest is `kdbridge send-test`: the first thing to run after configuring a sink.
func runSendTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("send-test", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), sendTestUsage)
		fs.PrintDefaults()
	}
	var cf configFlags
	cf.register(fs)
	sinkName := fs.String("sink", "", "the sink to test (its name in the configuration)")
	route := fs.String("route", "", "deliver as this route's target of the sink (its channel and template)")
	channel := fs.String("channel", "", "Slack sinks: post to this channel instead of the sink's (or the route target's)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sinkName == "" {
		return fmt.Errorf("%w: send-test needs -sink NAME", errUsage)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	idx := slices.IndexFunc(cfg.Sinks, func(e sinkEntry) bool { return e.Name == *sinkName })
	if idx < 0 {
		names := make([]string, 0, len(cfg.Sinks))
		for _, e := range cfg.Sinks {
			names = append(names, e.Name)
		}
		return fmt.Errorf("%w: no sink %q in %s (configured: %s)", errUsage, *sinkName, cf.path, strings.Join(names, ", "))
	}
	entry := cfg.Sinks[idx]
	if *channel != "" && entry.Type != "slack" {
		return fmt.Errorf("%w: -channel applies to slack sinks; %s is a %s sink", errUsage, entry.Name, entry.Type)
	}
	target := bridge.Target{Sink: entry.Name, Channel: *channel}
	if *route != "" {
		tc, err := routeTarget(cfg.Routes, *route, entry.Name)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		target.Route = *route
		if target.Channel == "" {
			target.Channel = tc.Channel
		}
	}

	tr, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return fmt.Errorf("send-test: unexpected default HTTP transport %T", http.DefaultTransport)
	}
	rec := &sinkprobe.Recorder{Next: tr.Clone()}
	defer rec.CloseIdleConnections()
	client := &http.Client{Transport: rec}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("sink", entry.Name)
	var sink bridge.Sink
	switch entry.Type {
	case "webhook":
		// Through the sink's own client, as the daemon sends: the sink tells of each
		// exchange, with the URL in its display form (no path when it comes from url_file).
		observe := func(x webhook.Exchange) {
			rec.Record(sinkprobe.Answer{Method: x.Method, Endpoint: x.Endpoint, Status: x.Status, Body: string(x.Body), Elapsed: x.Elapsed, Err: x.Err})
		}
		s, err := webhook.New(entry.Name, *entry.Webhook, webhook.Options{Logger: log, UserAgent: "kdbridge/" + version, Observe: observe})
		if err != nil {
			return fmt.Errorf("sink %s: %w", entry.Name, err)
		}
		defer s.Close()
		sink = s
	case "slack":
		rec.ShowPath = true // the Web API method; the token travels in a header
		s, err := slack.New(entry.Name, *entry.Slack, slack.Options{Logger: log, KV: &sinkprobe.MemoryKV{}, HTTPClient: client, RouteTemplates: entry.RouteTemplates})
		if err != nil {
			return fmt.Errorf("sink %s: %w", entry.Name, err)
		}
		defer s.Close()
		sink = s
	case "stdout":
		sink, rec = stdoutsink.New(entry.Name, *entry.Stdout, stdout), nil
	default:
		return fmt.Errorf("sink %s: unknown type %q", entry.Name, entry.Type)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ev := sinkprobe.Event("send-test", time.Now())
	fmt.Fprintf(stdout, "send-test: %s event %s (discussion %q) to %s sink %s", ev.Type, ev.ID, ev.Discussion.Title, entry.Type, entry.Name)
	if target.Route != "" {
		fmt.Fprintf(stdout, " as route %s", target.Route)
	}
	if target.Channel != "" {
		fmt.Fprintf(stdout, ", channel %s", target.Channel)
	}
	fmt.Fprintln(stdout)
	res := sinkprobe.Send(ctx, sink, target, ev, rec)
	for _, a := range res.Answers {
		if a.Err != nil {
			fmt.Fprintf(stdout, "  %s %s: no answer after %s\n", a.Method, a.Endpoint, a.Elapsed.Round(time.Millisecond))
			continue
		}
		fmt.Fprintf(stdout, "  %s %s: %d %s (%s)\n", a.Method, a.Endpoint, a.Status, http.StatusText(a.Status), a.Elapsed.Round(time.Millisecond))
		if body := strings.TrimSpace(a.Body); body != "" {
			if len(a.Body) == sinkprobe.BodyLimit {
				body += " …"
			}
			fmt.Fprintf(stdout, "    %s\n", strings.ReplaceAll(body, "\n", "\n    "))
		}
	}
	fmt.Fprintf(stdout, "result: %s\n", res.Verdict)
	if res.Err != nil {
		return fmt.Errorf("send-test to %s: %s: %w", entry.Name, res.Verdict, res.Err)
	}
	return nil
}

// routeTarget returns route's target of sink, or an error naming what is configured.
func routeTarget(routes []bridge.RouteConfig, route, sink string) (bridge.TargetConfig, error) {
	i := slices.IndexFunc(routes, func(r bridge.RouteConfig) bool { return r.Name == route })
	if i < 0 {
		names := make([]string, 0, len(routes))
		for _, r := range routes {
			names = append(names, r.Name)
		}
		return bridge.TargetConfig{}, fmt.Errorf("no route %q (configured: %s)", route, strings.Join(names, ", "))
	}
	for _, tc := range routes[i].To {
		if tc.Sink == sink {
			return tc, nil
		}
	}
	return bridge.TargetConfig{}, fmt.Errorf("route %s does not send to sink %s", route, sink)
}
