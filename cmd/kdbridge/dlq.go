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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/bridge/store"
)

// runDLQ lists, replays or drops dead-lettered deliveries. With the daemon stopped it opens
// the store itself; while the daemon runs (and holds the store) it asks the daemon over its
// loopback HTTP listener, so a replay is delivered at once.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || !(args[0] == "list" || args[0] == "replay" || args[0] == "drop") {
		fmt.Fprint(stderr, "usage: kdbridge dlq list|replay|drop -config FILE [-sink S] [-since T] [ID…]\n")
		return fmt.Errorf("%w: dlq needs list, replay or drop", errUsage)
	}
	action := args[0]
	fs := newFlags("dlq "+action, stderr)
	var cf configFlags
	cf.register(fs)
	sink := fs.String("sink", "", "only dead letters of this sink")
	since := fs.String("since", "", "only dead letters that failed at or after this time (RFC 3339, or a duration such as 24h meaning that long ago)")
	all := fs.Bool("all", false, "drop: allow dropping every dead letter when no id, -sink or -since narrows it")
	asJSON := fs.Bool("json", false, "list: print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	f := bridge.DeadLetterFilter{IDs: fs.Args(), Sink: *sink}
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
	cfg, err := cf.load()
	if err != nil {
		return err
	}

	var dls []bridge.DeadLetter
	var dropped int
	var st bridge.Store
	if cfg.State.Backend == backendPostgres {
		// The database is shared: act on it directly, whether replicas run or not; the
		// leader hears of a replay (pgstore.ListenQueues) and delivers it.
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err = pgstore.Open(octx, cfg.State.DSN.Reveal(), pgstore.Options{})
		cancel()
		if err != nil {
			return errors.New(scrubSecret(err.Error(), cfg.State.DSN.Reveal()))
		}
	} else {
		st, err = store.Open(cfg.State.Dir, store.Options{})
	}
	switch {
	case err == nil:
		defer st.Close()
		switch action {
		case "list":
			dls, err = st.DeadLetters(ctx, f)
		case "replay":
			if dls, err = st.Replay(ctx, f); err == nil {
				err = bridge.EnableTargets(ctx, st, dls)
			}
		case "drop":
			dropped, err = st.Drop(ctx, f)
		}
	case errors.Is(err, store.ErrInUse) && cfg.HTTP.Listen != "off":
		dls, dropped, err = dlqRemote(ctx, cfg.HTTP.Listen, action, f)
	}
	if err != nil {
		return err
	}
	switch action {
	case "list":
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(dlqView(dls))
		}
		printDeadLetters(stdout, dls)
	case "replay":
		fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", len(dls))
	case "drop":
		fmt.Fprintf(stdout, "dropped %d dead letter(s)\n", dropped)
	}
	return nil
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

func dlqRemote(ctx context.Context, listen, action string, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, int, error) {
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
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("the state directory is in use by a running daemon, and asking it at %s failed: %w", url, err)
	}
	defer resp.Body.Close()
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
