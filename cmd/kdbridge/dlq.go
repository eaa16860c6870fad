package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/bridge/store"
)

const dlqUsage = `Usage of kdbridge dlq:
  kdbridge dlq list   -config FILE [-sink S] [-since T] [-json] [ID…]
  kdbridge dlq replay -config FILE [-sink S] [-since T] [ID…]
  kdbridge dlq drop   -config FILE [-sink S] [-since T] [-all] [ID…]

"kdbridge dlq ACTION -h" lists the flags of an action.
`

// runDLQ lists, replays or drops dead-lettered deliveries. With the daemon stopped it opens
// the store itself; while the daemon runs (and holds the store) it asks the daemon over its
// loopback HTTP listener, so a replay is delivered at once. It needs only the process part of
// the configuration, which it loads leniently (see loadProcessConfig).
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		fmt.Fprint(stderr, dlqUsage)
		return errHelp
	}
	if len(args) == 0 || !slices.Contains([]string{"list", "replay", "drop"}, args[0]) {
		fmt.Fprint(stderr, dlqUsage)
		return fmt.Errorf("%w: dlq needs list, replay or drop", errUsage)
	}
	action := args[0]
	fs := newFlags("dlq "+action, stderr)
	var cf configFlags
	cf.register(fs)
	sink := fs.String("sink", "", "only dead letters of this sink")
	since := fs.String("since", "", "only dead letters that failed at or after this time (RFC 3339, or a duration such as 24h meaning that long ago)")
	var all, asJSON *bool
	switch action {
	case "drop":
		all = fs.Bool("all", false, "allow dropping every dead letter when no id, -sink or -since narrows it")
	case "list":
		asJSON = fs.Bool("json", false, "print JSON")
	}
	ids, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	f := bridge.DeadLetterFilter{IDs: ids, Sink: *sink}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return fmt.Errorf("%w: -since: %v", errUsage, err)
		}
		f.Since = t
	}
	if action == "drop" && len(f.IDs) == 0 && f.Sink == "" && f.Since.IsZero() && !*all {
		return fmt.Errorf("%w: dlq drop needs ids, -sink, -since or -all", errUsage)
	}
	cfg, err := cf.loadProcess()
	if err != nil {
		return err
	}
	q, closeQ, err := openDLQ(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeQ()

	// What the ids and the sink name match, so that a typo is an error and not "nothing to do".
	var notFound []string
	if len(f.IDs) > 0 || f.Sink != "" {
		found, err := q.list(ctx, f)
		if err != nil {
			return err
		}
		notFound = dlqNotFound(f, found, cfg)
		if len(f.IDs) > 0 {
			f.IDs = slices.DeleteFunc(slices.Clone(f.IDs), func(id string) bool { return slices.Contains(notFound, "id "+id) })
		}
	}
	nothing := len(ids) > 0 && len(f.IDs) == 0 // every id given was unknown: act on none
	var dls []bridge.DeadLetter
	var dropped int
	if !nothing {
		switch action {
		case "list":
			dls, err = q.list(ctx, f)
		case "replay":
			dls, err = q.replay(ctx, f)
		case "drop":
			dropped, err = q.drop(ctx, f)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case action == "list" && *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(dlqView(dls)); err != nil {
			return err
		}
	case action == "list":
		printDeadLetters(stdout, dls)
	case action == "replay":
		fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", len(dls))
	case action == "drop":
		fmt.Fprintf(stdout, "dropped %d dead letter(s)\n", dropped)
	}
	if len(notFound) > 0 {
		return fmt.Errorf("not found: %s", strings.Join(notFound, ", "))
	}
	return nil
}

// parseInterleaved parses flags given before, between or after positional arguments
// ("dlq drop ID -config F") and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for range len(args) + 1 {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // after "--" everything is positional
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

// dlqNotFound names the ids that no dead letter has and the sink that neither the
// configuration nor any dead letter knows. found are the dead letters matching f.
func dlqNotFound(f bridge.DeadLetterFilter, found []bridge.DeadLetter, cfg *Config) []string {
	var out []string
	have := map[string]bool{}
	for _, d := range found {
		have[d.ID] = true
	}
	for _, id := range f.IDs {
		if !have[id] {
			out = append(out, "id "+id)
		}
	}
	if f.Sink != "" && len(found) == 0 && !slices.ContainsFunc(cfg.Sinks, func(e sinkEntry) bool { return e.Name == f.Sink }) {
		out = append(out, fmt.Sprintf("sink %s (not configured, and no dead letter has it)", f.Sink))
	}
	return out
}

// dlqStore is where the dlq command acts: the store itself, or the running daemon.
type dlqStore struct {
	list   func(context.Context, bridge.DeadLetterFilter) ([]bridge.DeadLetter, error)
	replay func(context.Context, bridge.DeadLetterFilter) ([]bridge.DeadLetter, error)
	drop   func(context.Context, bridge.DeadLetterFilter) (int, error)
}

func openDLQ(ctx context.Context, cfg *Config) (dlqStore, func(), error) {
	var st bridge.Store
	var err error
	if cfg.State.Backend == backendPostgres {
		// The database is shared: act on it directly, whether replicas run or not; the
		// leader hears of a replay (pgstore.ListenQueues) and delivers it.
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err = pgstore.Open(octx, cfg.State.DSN.Reveal(), pgstore.Options{})
		cancel()
		if err != nil {
			return dlqStore{}, nil, errors.New(pgstore.ScrubDSN(err.Error(), cfg.State.DSN.Reveal()))
		}
	} else {
		st, err = store.Open(cfg.State.Dir, store.Options{})
	}
	switch {
	case err == nil:
		return dlqStore{
			list: st.DeadLetters,
			replay: func(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
				dls, err := st.Replay(ctx, f)
				if err == nil {
					err = bridge.EnableTargets(ctx, st, dls)
				}
				return dls, err
			},
			drop: st.Drop,
		}, func() { _ = st.Close() }, nil
	case errors.Is(err, store.ErrInUse) && cfg.HTTP.Listen == "off":
		return dlqStore{}, nil, fmt.Errorf("the state directory %s is held by the running daemon, and the dlq commands reach a running daemon over its HTTP listener, which is off (http.listen: off): stop the daemon, or set http.listen to a loopback address and restart it", cfg.State.Dir)
	case errors.Is(err, store.ErrInUse):
		listen, token := cfg.HTTP.Listen, adminToken(cfg.HTTP.Auth)
		return dlqStore{
			list: func(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
				dls, _, err := dlqRemote(ctx, listen, token, "list", f)
				return dls, err
			},
			replay: func(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
				dls, _, err := dlqRemote(ctx, listen, token, "replay", f)
				return dls, err
			},
			drop: func(ctx context.Context, f bridge.DeadLetterFilter) (int, error) {
				_, n, err := dlqRemote(ctx, listen, token, "drop", f)
				return n, err
			},
		}, func() {}, nil
	default:
		return dlqStore{}, nil, err
	}
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

// deadLetterView is what `dlq list -json` and the HTTP API show of a dead letter.
type deadLetterView struct {
	ID         string    `json:"id"`
	Sink       string    `json:"sink"`
	Route      string    `json:"route"`
	Channel    string    `json:"channel,omitempty"`
	Discussion string    `json:"discussion"`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	Attempts   int       `json:"attempts"`
	FirstTry   time.Time `json:"first_try,omitzero"`
	FailedAt   time.Time `json:"failed_at"`
	Reason     string    `json:"reason"`
}

func dlqView(dls []bridge.DeadLetter) []deadLetterView {
	out := make([]deadLetterView, 0, len(dls))
	for _, d := range dls {
		p := d.Pending
		out = append(out, deadLetterView{ID: d.ID, Sink: p.Queue.Target.Sink, Route: p.Queue.Target.Route, Channel: p.Queue.Target.Channel,
			Discussion: p.Queue.Discussion, EventID: p.Event.ID, EventType: p.Event.Type, Attempts: p.Attempts,
			FirstTry: p.FirstTry, FailedAt: d.FailedAt, Reason: d.Reason})
	}
	return out
}

func printDeadLetters(w io.Writer, dls []bridge.DeadLetter) {
	if len(dls) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSINK\tDISCUSSION\tEVENT\tATTEMPTS\tFAILED AT\tREASON")
	for _, v := range dlqView(dls) {
		reason := v.Reason
		if len(reason) > 120 {
			reason = reason[:117] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.Sink, v.Discussion, v.EventType, v.Attempts, v.FailedAt.Format(time.RFC3339), strings.ReplaceAll(reason, "\n", " "))
	}
	tw.Flush()
}

// dlqRequest is the body of POST /dlq/{action} on the daemon's listener.
type dlqRequest struct {
	IDs   []string  `json:"ids,omitempty"`
	Sink  string    `json:"sink,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

type dlqResponse struct {
	DeadLetters []bridge.DeadLetter `json:"dead_letters"`
	Dropped     int                 `json:"dropped"`
	Error       string              `json:"error,omitempty"`
}

func dlqRemote(ctx context.Context, listen, token, action string, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, int, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, 0, err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	body, _ := json.Marshal(dlqRequest{IDs: f.IDs, Sink: f.Sink, Since: f.Since})
	url := "http://" + net.JoinHostPort(host, port) + "/dlq/" + action
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("content-type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("the state directory is in use by a running daemon, and asking it at %s failed: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, 0, fmt.Errorf("the daemon at %s refused (%s: %s); with http.auth, dlq presents the first admin token of http.auth.tokens",
			url, resp.Status, strings.TrimSpace(string(msg)))
	}
	var out dlqResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, 0, fmt.Errorf("daemon answered %s: %w", resp.Status, err)
	}
	if out.Error != "" {
		return nil, 0, fmt.Errorf("daemon: %s", out.Error)
	}
	return out.DeadLetters, out.Dropped, nil
}

// dlqHandler serves POST /dlq/{action} for the dlq command while the daemon runs. It is on
// the same listener as /metrics, which is bound to loopback by default.
func dlqHandler(d *daemon) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := d.store()
		if st == nil {
			writeJSON(w, http.StatusServiceUnavailable, dlqResponse{Error: "the state database is not open yet; see /readyz"})
			return
		}
		var req dlqRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, dlqResponse{Error: "bad request body: " + err.Error()})
			return
		}
		f := bridge.DeadLetterFilter{IDs: req.IDs, Sink: req.Sink, Since: req.Since}
		var out dlqResponse
		var err error
		switch r.PathValue("action") {
		case "list":
			out.DeadLetters, err = st.DeadLetters(r.Context(), f)
		case "replay":
			out.DeadLetters, err = d.replay(r.Context(), st, f)
		case "drop":
			out.Dropped, err = st.Drop(r.Context(), f)
		default:
			writeJSON(w, http.StatusNotFound, dlqResponse{Error: "unknown action"})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, dlqResponse{Error: err.Error()})
			return
		}
		if out.DeadLetters == nil {
			out.DeadLetters = []bridge.DeadLetter{}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// replay replays through the dispatcher while this replica delivers; on a follower it
// replays in the shared store, and the leader hears of it (pgstore's ListenQueues).
func (d *daemon) replay(ctx context.Context, st bridge.Store, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	d.mu.Lock()
	disp := d.disp
	d.mu.Unlock()
	if disp != nil {
		return disp.Replay(ctx, f)
	}
	dls, err := st.Replay(ctx, f)
	if err != nil {
		return nil, err
	}
	// Re-enabling a disabled target is a fenced write, the leader's to make: a follower
	// leaves the flag; the leader re-enables it on the next replay it runs itself.
	if err := bridge.EnableTargets(ctx, st, dls); err != nil && !errors.Is(err, pgstore.ErrFenced) {
		return dls, err
	}
	return dls, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
