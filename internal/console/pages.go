package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// pageSize is how many rows a page shows.
const pageSize = 100

// common is what every page's layout needs.
type common struct {
	Title   string
	Nav     string
	User    identity
	CanEdit bool
	Notice  string
	Now     time.Time
}

func (c *Console) common(r *http.Request, title, nav string) common {
	id := identityOf(r.Context())
	return common{Title: title, Nav: nav, User: id, CanEdit: id.Role == RoleAdmin, Notice: r.URL.Query().Get("done"), Now: c.deps.Now()}
}

func (c *Console) render(w http.ResponseWriter, name string, data any) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	if err := c.tmpl[name].ExecuteTemplate(&b, "layout", data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	_, err := w.Write([]byte(b.String()))
	return err
}

// --- overview

type sourceView struct {
	Name       string
	Kinetic    bool
	Status     kinetic.Status
	States     []stateCount
	LastEvent  time.Time
	TokenOK    uint64
	TokenFails uint64
}

type stateCount struct {
	State string
	N     int
}

type sinkView struct {
	Name              string
	Pending           int
	Oldest            time.Duration // age of the oldest waiting delivery; 0 when none
	Delivered, Failed int           // in the last minute
}

type overviewData struct {
	common
	Node     string
	Sources  []sourceView
	Sinks    []sinkView
	Disabled []bridge.DisabledTarget
	History  bridge.AttemptHistory
	Uptime   time.Duration
}

// statusSource is a source that reports its status (the Kinetic source).
type statusSource interface {
	Status() kinetic.Status
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) error {
	now := c.deps.Now()
	d := overviewData{common: c.common(r, "Overview", "overview"), Node: "single node", Uptime: now.Sub(c.start).Round(time.Second)}
	if c.deps.Leader != nil {
		leader, detail := c.deps.Leader.Leadership()
		d.Node = "replica (standby)"
		if leader {
			d.Node = "leader"
		}
		if detail != "" {
			d.Node += ": " + detail
		}
	}
	for _, src := range c.deps.Sources() {
		v := sourceView{Name: src.Name()}
		if ss, ok := src.(statusSource); ok {
			v.Kinetic, v.Status = true, ss.Status()
			counts := map[string]int{}
			for _, ds := range v.Status.Discussions {
				counts[ds.State]++
				if ds.CheckedAt.After(v.LastEvent) {
					v.LastEvent = ds.CheckedAt
				}
			}
			for _, st := range []string{kinetic.StateSubscribed, kinetic.StateSubscribing, kinetic.StateIdle, kinetic.StateRefused, kinetic.StateRemoved} {
				if counts[st] > 0 {
					v.States = append(v.States, stateCount{st, counts[st]})
				}
			}
			v.TokenOK = v.Status.TokenRequests[kinetic.TokenOK]
			v.TokenFails = v.Status.TokenRequests[kinetic.TokenRefused] + v.Status.TokenRequests[kinetic.TokenError]
			v.Status.Discussions = nil // not rendered here; the Discussions page pages them
		}
		d.Sources = append(d.Sources, v)
	}
	backlog := c.deps.Backlog()
	slices.SortFunc(backlog, func(a, b bridge.SinkBacklog) int { return cmp.Compare(a.Sink, b.Sink) })
	for _, b := range backlog {
		v := sinkView{Name: b.Sink, Pending: b.Pending}
		if b.Pending > 0 && !b.OldestAt.IsZero() {
			v.Oldest = now.Sub(b.OldestAt).Round(time.Second)
		}
		v.Delivered, v.Failed = c.rates.lastMinute(b.Sink)
		d.Sinks = append(d.Sinks, v)
	}
	if c.deps.Targets != nil {
		d.Disabled = c.deps.Targets.ListDisabledTargets()
	}
	if c.deps.HistoryStats != nil {
		d.History = c.deps.HistoryStats()
	}
	return c.render(w, "overview", d)
}

func (c *Console) enableTarget(w http.ResponseWriter, r *http.Request) error {
	if c.deps.Targets == nil {
		http.Error(w, "targets cannot be re-enabled here", http.StatusNotFound)
		return nil
	}
	t := bridge.Target{Route: r.PostFormValue("route"), Sink: r.PostFormValue("sink"), Channel: r.PostFormValue("channel")}
	if t.Sink == "" || t.Route == "" {
		http.Error(w, "route and sink are required", http.StatusBadRequest)
		return nil
	}
	if err := c.deps.Targets.EnableTarget(r.Context(), t); err != nil {
		return err
	}
	c.deps.Logger.Info("target re-enabled from the console", "route", t.Route, "sink", t.Sink, "channel", t.Channel, "by", identityOf(r.Context()).Name)
	redirect(w, r, "/", fmt.Sprintf("re-enabled %s → %s", t.Route, t.Sink))
	return nil
}

// --- deliveries

type deliveriesData struct {
	common
	Filter     url.Values
	Enabled    bool
	FailedOnly bool // state.attempts.record: failures — successful tries are not kept
	Attempts   []bridge.AttemptRecord
	Older      string // link to the next page, "" at the end
	Error      string
}

// failedOnly reports whether the attempt history keeps only the tries that did not deliver.
func (c *Console) failedOnly() bool {
	return c.deps.HistoryStats != nil && c.deps.HistoryStats().FailedOnly
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	d := deliveriesData{common: c.common(r, "Deliveries", "deliveries"), Filter: q, Enabled: c.deps.History != nil,
		FailedOnly: c.failedOnly()}
	if c.deps.History == nil {
		return c.render(w, "deliveries", d)
	}
	f := bridge.AttemptFilter{Discussion: strings.TrimSpace(q.Get("discussion")), EventID: strings.TrimSpace(q.Get("event")),
		Sink: strings.TrimSpace(q.Get("sink")), Outcome: q.Get("outcome"), Limit: pageSize + 1}
	now := c.deps.Now()
	var err error
	if f.Since, err = parseWhen(q.Get("since"), now); err != nil {
		d.Error = "since: " + err.Error()
	} else if f.Until, err = parseWhen(q.Get("until"), now); err != nil {
		d.Error = "until: " + err.Error()
	}
	if d.Error != "" {
		w.WriteHeader(http.StatusBadRequest)
		return c.render(w, "deliveries", d)
	}
	recs, err := c.deps.History.Attempts(r.Context(), f)
	if err != nil {
		return err
	}
	if len(recs) > pageSize {
		recs = recs[:pageSize]
		next := cloneValues(q)
		next.Set("until", recs[len(recs)-1].At.UTC().Format(time.RFC3339Nano))
		d.Older = "/deliveries?" + next.Encode()
	}
	d.Attempts = recs
	return c.render(w, "deliveries", d)
}

// parseWhen reads a time filter: RFC 3339, or a duration meaning that long ago; "" is zero.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2006-01-02T15:04:05Z) nor a duration (1h30m)", s)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// --- dead letters

type deadLettersData struct {
	common
	Filter      url.Values
	DeadLetters []bridge.DeadLetter
	Total       int
	Page, Pages int
	PrevLink    string
	NextLink    string
	FilterDesc  string
	Error       string
}

// deadLetterFilter reads the filter of the list and of the bulk actions: sink, since (the
// dlq command's filter) and discussion, event (narrowed here).
func deadLetterFilter(v url.Values, now time.Time) (bridge.DeadLetterFilter, func(bridge.DeadLetter) bool, error) {
	f := bridge.DeadLetterFilter{Sink: strings.TrimSpace(v.Get("sink"))}
	var err error
	if f.Since, err = parseWhen(v.Get("since"), now); err != nil {
		return f, nil, fmt.Errorf("since: %w", err)
	}
	disc, event := strings.TrimSpace(v.Get("discussion")), strings.TrimSpace(v.Get("event"))
	keep := func(dl bridge.DeadLetter) bool {
		return (disc == "" || dl.Pending.Queue.Discussion == disc) && (event == "" || dl.Pending.Event.ID == event)
	}
	return f, keep, nil
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	d := deadLettersData{common: c.common(r, "Dead letters", "dead-letters"), Filter: q}
	f, keep, err := deadLetterFilter(q, c.deps.Now())
	if err != nil {
		d.Error = err.Error()
		w.WriteHeader(http.StatusBadRequest)
		return c.render(w, "deadletters", d)
	}
	all, err := c.deps.DeadLetters.DeadLetters(r.Context(), f)
	if err != nil {
		return err
	}
	all = slices.DeleteFunc(all, func(dl bridge.DeadLetter) bool { return !keep(dl) })
	slices.Reverse(all) // newest first
	d.Total = len(all)
	d.Pages = max(1, (len(all)+pageSize-1)/pageSize)
	d.Page = min(max(1, atoi(q.Get("page"))), d.Pages)
	from := (d.Page - 1) * pageSize
	d.DeadLetters = all[from:min(from+pageSize, len(all))]
	if d.Page > 1 {
		p := cloneValues(q)
		p.Set("page", strconv.Itoa(d.Page-1))
		d.PrevLink = "/dead-letters?" + p.Encode()
	}
	if d.Page < d.Pages {
		p := cloneValues(q)
		p.Set("page", strconv.Itoa(d.Page+1))
		d.NextLink = "/dead-letters?" + p.Encode()
	}
	return c.render(w, "deadletters", d)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

type deadLetterData struct {
	common
	DL       bridge.DeadLetter
	Payload  string
	Attempts []bridge.AttemptRecord
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	dls, err := c.deps.DeadLetters.DeadLetters(r.Context(), bridge.DeadLetterFilter{IDs: []string{id}})
	if err != nil {
		return err
	}
	if len(dls) == 0 {
		http.Error(w, "no dead letter "+id+" (replayed or dropped?)", http.StatusNotFound)
		return nil
	}
	d := deadLetterData{common: c.common(r, "Dead letter "+id, "dead-letters"), DL: dls[0], Payload: payload(dls[0].Pending.Event)}
	if c.deps.History != nil {
		p := dls[0].Pending
		d.Attempts, err = c.deps.History.Attempts(r.Context(), bridge.AttemptFilter{EventID: p.Event.ID, Sink: p.Queue.Target.Sink, Limit: 50})
		if err != nil {
			return err
		}
	}
	return c.render(w, "deadletter", d)
}

// payload is the event as sinks receive it, for inspection: the source's raw frame is left
// out, and attachment URLs lose their query strings (they may carry signed tokens). Nothing
// the sinks add (signatures, auth headers) is stored, so nothing of it can show.
func payload(e bridge.Event) string {
	e.Raw = nil
	if e.Message != nil {
		m := *e.Message
		m.Attachments = slices.Clone(m.Attachments)
		for i := range m.Attachments {
			if u, err := url.Parse(m.Attachments[i].URL); err == nil && (u.RawQuery != "" || u.User != nil) {
				u.RawQuery, u.User = "", nil
				m.Attachments[i].URL = u.String() + "?…"
			}
		}
		e.Message = &m
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return "unprintable: " + err.Error()
	}
	return string(b)
}

// replay and drop take either the checked ids, or (scope=filter) everything the list's
// filter matches, and call the same operations as the dlq API.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) error {
	return c.dlqAction(w, r, "replay")
}

func (c *Console) drop(w http.ResponseWriter, r *http.Request) error {
	return c.dlqAction(w, r, "drop")
}

func (c *Console) dlqAction(w http.ResponseWriter, r *http.Request, action string) error {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return nil
	}
	f, keep, err := deadLetterFilter(r.PostForm, c.deps.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil
	}
	ids := r.PostForm["id"]
	narrowed := r.PostForm.Get("discussion") != "" || r.PostForm.Get("event") != ""
	switch {
	case r.PostForm.Get("scope") == "filter":
		if action == "drop" && f.Sink == "" && f.Since.IsZero() && !narrowed && r.PostForm.Get("all") != "yes" {
			http.Error(w, "dropping every dead letter needs all=yes (as `kdbridge dlq drop -all`)", http.StatusBadRequest)
			return nil
		}
		if narrowed {
			// The dlq operations filter by sink and time; narrow to ids for the rest.
			dls, err := c.deps.DeadLetters.DeadLetters(r.Context(), f)
			if err != nil {
				return err
			}
			for _, dl := range dls {
				if keep(dl) {
					ids = append(ids, dl.ID)
				}
			}
			if len(ids) == 0 {
				redirect(w, r, "/dead-letters", "nothing matched")
				return nil
			}
			f = bridge.DeadLetterFilter{IDs: ids}
		}
	case len(ids) == 0:
		http.Error(w, "no dead letters chosen", http.StatusBadRequest)
		return nil
	default:
		f = bridge.DeadLetterFilter{IDs: ids}
	}
	n := 0
	if action == "replay" {
		dls, err := c.deps.DeadLetters.Replay(r.Context(), f)
		if err != nil {
			return err
		}
		n = len(dls)
	} else if n, err = c.deps.DeadLetters.Drop(r.Context(), f); err != nil {
		return err
	}
	verb := map[string]string{"replay": "replayed", "drop": "dropped"}[action]
	c.deps.Logger.Info("dead letters "+verb+" from the console", "count", n, "by", identityOf(r.Context()).Name)
	redirect(w, r, "/dead-letters", fmt.Sprintf("%s %d dead letter(s)", verb, n))
	return nil
}

func redirect(w http.ResponseWriter, r *http.Request, to, notice string) {
	http.Redirect(w, r, to+"?done="+url.QueryEscape(notice), http.StatusSeeOther)
}

// --- discussions

type discussionView struct {
	Source  string
	Status  kinetic.DiscussionStatus
	Targets []bridge.Target
	Last    *bridge.AttemptRecord
}

type discussionsData struct {
	common
	FailedOnly  bool // the last try shown is the last failed one
	Query       string
	Discussions []discussionView
	Total       int
	Page, Pages int
	PrevLink    string
	NextLink    string
}

func (c *Console) discussions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	needle := strings.ToLower(strings.TrimSpace(q.Get("q")))
	d := discussionsData{common: c.common(r, "Discussions", "discussions"), Query: q.Get("q"), FailedOnly: c.failedOnly()}
	var all []discussionView
	for _, src := range c.deps.Sources() {
		ss, ok := src.(statusSource)
		if !ok {
			continue
		}
		for _, ds := range ss.Status().Discussions {
			if needle != "" && !strings.Contains(strings.ToLower(ds.ID), needle) && !strings.Contains(strings.ToLower(ds.Title), needle) {
				continue
			}
			all = append(all, discussionView{Source: src.Name(), Status: ds})
		}
	}
	d.Total = len(all)
	d.Pages = max(1, (len(all)+pageSize-1)/pageSize)
	d.Page = min(max(1, atoi(q.Get("page"))), d.Pages)
	from := (d.Page - 1) * pageSize
	d.Discussions = all[from:min(from+pageSize, len(all))]
	for i := range d.Discussions {
		v := &d.Discussions[i]
		v.Targets = c.deps.Routes(v.Source, bridge.Discussion{ID: v.Status.ID, Title: v.Status.Title})
		if c.deps.History != nil {
			last, err := c.deps.History.Attempts(r.Context(), bridge.AttemptFilter{Discussion: v.Status.ID, Limit: 1})
			if err != nil {
				return err
			}
			if len(last) > 0 {
				v.Last = &last[0]
			}
		}
	}
	if d.Page > 1 {
		d.PrevLink = "/discussions?" + url.Values{"q": {d.Query}, "page": {strconv.Itoa(d.Page - 1)}}.Encode()
	}
	if d.Page < d.Pages {
		d.NextLink = "/discussions?" + url.Values{"q": {d.Query}, "page": {strconv.Itoa(d.Page + 1)}}.Encode()
	}
	return c.render(w, "discussions", d)
}
