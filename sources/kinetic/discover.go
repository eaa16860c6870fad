package kinetic

// Discovery: besides the configured discussions, subscribe to every discussion that matches
// a rule of the discover: block, found by polling GET /discussions (protocol §4.1).
//
// The rules:
//
//   - A rule with related: asks the server for type=…(&key=…); a rule with title: is a glob
//     (path.Match syntax, letters compared case-insensitively, and '/' an ordinary character:
//     a title is not a path). The server's title filter is a substring match, so the query
//     carries the longest literal run of the glob ("Incident " for "Incident *") and the glob
//     itself is applied here; a glob without a literal run lists every discussion. A rule
//     with both must satisfy both. Every page is read (nextPageToken until null).
//   - The wanted set is the configured discussions plus every discussion that matched a rule
//     in the last successful poll. A discussion that is deleted, archived (unless
//     include_archived) or no longer matches is unsubscribed, unless it is configured.
//   - A poll that fails in any way (REST error, odd answer, too many pages) changes nothing:
//     the current set is kept and the next tick tries again.
//   - History: a discovered discussion with a checkpoint is caught up from it, like any
//     other. One without a checkpoint that was created after discovery started watching —
//     the watermark, the time of this source's first poll ever, kept with the checkpoints so
//     that it survives restarts — has its whole history emitted: its messages were posted
//     while kdbridge could not yet be subscribed, and that includes discussions created
//     while kdbridge was down. One created before the watermark (it existed, but did not
//     match, or discovery was not on) starts from now, as on a first start, or from
//     backfill if that is set. The watermark has a minute of margin for clock skew between
//     kdbridge and the server.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// Discovery limits.
const (
	DefaultDiscoverEvery = time.Minute
	minDiscoverEvery     = time.Second
	maxDiscoverEvery     = 24 * time.Hour
	maxDiscoverPages     = 1000 // per query: with page_size 100, 100 000 discussions
)

// watermarkKey is where the discovery watermark is kept among the checkpoints: '~' cannot
// start a discussion id, so it never collides with one.
const watermarkKey = "~discover"

// DiscoverConfig is the discover: block of a Kinetic source.
type DiscoverConfig struct {
	Every           config.Duration    `yaml:"every"`            // poll interval; default 1m, at least 1s
	Match           []bridge.MatchRule `yaml:"match"`            // a discussion that matches any rule is subscribed
	IncludeArchived bool               `yaml:"include_archived"` // default false: archived discussions are not (or no longer) subscribed
}

func (d *DiscoverConfig) defaults() {
	if d.Every == 0 {
		d.Every = config.Duration(DefaultDiscoverEvery)
	}
}

func (d *DiscoverConfig) validate(add func(field, format string, args ...any)) {
	if e := d.Every.D(); e < minDiscoverEvery || e > maxDiscoverEvery {
		add("discover.every", "%s is out of range (%s to %s)", e, minDiscoverEvery, maxDiscoverEvery)
	}
	for _, err := range bridge.ValidateMatch("discover.match", d.Match) {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			add(fe.Field, "%s", fe.Msg)
		}
	}
}

// matches reports whether a listed discussion satisfies the rule. The server filtered by
// related type and key already; the rule checks them again when the answer lists the related
// items, in case a server ignores the filter and lists everything, and trusts the server's
// filter when it does not.
func matches(r bridge.MatchRule, d listedDiscussion) bool {
	if d.Related == nil {
		r.Related = nil
	}
	return r.Matches(d.Title, d.Related)
}

// globLiteral returns the longest run of literal characters of a valid glob, trimmed:
// every title the glob matches contains it, so it can go to the server's substring filter.
func globLiteral(pattern string) string {
	var best, cur []byte
	flush := func() {
		if t := strings.TrimSpace(string(cur)); len(t) > len(best) {
			best = []byte(t)
		}
		cur = cur[:0]
	}
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?':
			flush()
		case '[':
			flush()
			// Skip the class: a valid glob closes it with the first unescaped ']'.
			for i++; i < len(pattern) && pattern[i] != ']'; i++ {
				if pattern[i] == '\\' {
					i++
				}
			}
		case '\\':
			if i++; i < len(pattern) {
				cur = append(cur, pattern[i])
			}
		default:
			cur = append(cur, c)
		}
	}
	flush()
	return string(best)
}

// discoverQuery is one GET /discussions query and the rules whose candidates it lists.
type discoverQuery struct {
	q     url.Values // filters only: no limit, pageToken or archived
	rules []bridge.MatchRule
}

// queries turns the rules into as few queries as it can: identical ones are merged, and when
// one title-only rule needs the unfiltered list, every title-only rule reads that one.
func (d *DiscoverConfig) queries() []discoverQuery {
	unfiltered := slices.ContainsFunc(d.Match, func(r bridge.MatchRule) bool { return r.Related == nil && globLiteral(r.Title) == "" })
	var out []discoverQuery
	index := map[string]int{}
	for _, r := range d.Match {
		q := url.Values{}
		if r.Related != nil {
			q.Set("type", r.Related.Type)
			if r.Related.Key != "" {
				q.Set("key", r.Related.Key)
			}
		}
		if lit := globLiteral(r.Title); lit != "" && (r.Related != nil || !unfiltered) {
			q.Set("title", lit)
		}
		k := q.Encode()
		if i, ok := index[k]; ok {
			out[i].rules = append(out[i].rules, r)
			continue
		}
		index[k] = len(out)
		out = append(out, discoverQuery{q: q, rules: []bridge.MatchRule{r}})
	}
	return out
}

// discover polls on the discovery interval until ctx is done; the first poll is at once, so
// that the discovered discussions are subscribed with the configured ones.
func (s *Source) discover(ctx context.Context) {
	every := s.cfg.Discover.Every.D()
	if s.t.discoverEvery > 0 {
		every = s.t.discoverEvery
	}
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.discoverOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.st.mu.Lock()
			s.st.discErr = err.Error()
			s.st.mu.Unlock()
			// One line when polls start failing, not one per tick.
			level := slog.LevelWarn
			if failing {
				level = slog.LevelDebug
			}
			s.log.Log(ctx, level, "kinetic: discovery failed, keeping the current discussions", "error", err, "retry_in", every)
			failing = true
		case failing:
			s.log.Info("kinetic: discovery recovered")
			failing = false
		}
		t.Reset(every)
	}
}

// discoverOnce runs one poll and applies its outcome; on error nothing changes.
func (s *Source) discoverOnce(ctx context.Context) error {
	mark, err := s.discoveryWatermark(ctx)
	if err != nil {
		return err
	}
	found, archived, err := s.listMatching(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]listedDiscussion, len(found))
	for _, d := range found {
		byID[d.ID] = d
	}
	added, removed := s.updateWanted(func() {
		next := make([]wanted, 0, len(found))
		known := make(map[string]bool, len(s.discovered))
		for _, w := range s.discovered {
			known[w.id] = true
			if _, ok := byID[w.id]; ok {
				next = append(next, w)
			}
		}
		for _, d := range found {
			if !known[d.ID] {
				next = append(next, wanted{id: d.ID, discovered: true, fromStart: d.CreatedAt.After(mark)})
			}
		}
		s.discovered = next
	})
	for _, id := range added {
		d := byID[id]
		history := "from now"
		switch {
		case d.CreatedAt.After(mark):
			history = "all (created after discovery started)"
		case s.cfg.Backfill > 0:
			history = "backfill " + s.cfg.Backfill.String()
		}
		s.log.Info("kinetic: discussion discovered", "discussion", id, "title", truncate(d.Title, 200), "history", history)
	}
	for _, id := range removed {
		reason := "no longer listed: deleted, archived or no longer matching"
		if archived[id] {
			reason = "archived"
		}
		s.log.Info("kinetic: discussion no longer discovered", "discussion", id, "reason", reason)
	}
	switch {
	case len(found) == 0 && !s.discoveredNone:
		// Once per change to "none": GET /discussions may list only the discussions the
		// caller is involved in (issue 17; protocol §9.7 leaves the default filter open), so a user in none finds none.
		s.log.Warn("kinetic: discovery found no matching discussion; the Discussions API may list only the discussions kdbridge's user is involved in: check the user's access and the discover rules",
			"user", s.SelfUser())
		s.discoveredNone = true
	case len(found) > 0:
		s.discoveredNone = false
	}
	s.st.mu.Lock()
	s.st.discovered = len(found)
	s.st.lastDisc = time.Now()
	s.st.discErr = ""
	s.st.mu.Unlock()
	s.log.Debug("kinetic: discovery poll", "matched", len(found), "added", len(added), "removed", len(removed))
	return nil
}

// listMatching reads every page of every query and returns the matching discussions, oldest
// first, and the ids of matching-by-query discussions left out because they are archived.
func (s *Source) listMatching(ctx context.Context) (found []listedDiscussion, archived map[string]bool, err error) {
	dc := s.cfg.Discover
	modes := []bool{false}
	if dc.IncludeArchived {
		modes = append(modes, true) // the list holds active or archived discussions, not both (§4.1)
	}
	seen := map[string]bool{}
	archived = map[string]bool{}
	for _, dq := range dc.queries() {
		for _, arch := range modes {
			q := maps.Clone(dq.q)
			q.Set("limit", strconv.Itoa(s.cfg.PageSize))
			if arch {
				q.Set("archived", "true")
			}
			token := ""
			for page := 0; ; page++ {
				if page == maxDiscoverPages {
					return nil, nil, fmt.Errorf("kinetic: discovery: more than %d pages for %s", maxDiscoverPages, dq.q.Encode())
				}
				if token != "" {
					q.Set("pageToken", token)
				}
				p, err := s.rest.discussions(ctx, q)
				if err != nil {
					return nil, nil, err
				}
				for _, d := range p.Discussions {
					switch {
					case !idPattern.MatchString(d.ID):
						// It could never have been subscribed, so leaving it out unsubscribes nothing.
						s.bad.badInput(badREST, errors.New("a listed discussion without a usable id"), "id", truncate(d.ID, 100))
					case d.IsArchived && !dc.IncludeArchived:
						archived[d.ID] = true
					case seen[d.ID]:
					case slices.ContainsFunc(dq.rules, func(r bridge.MatchRule) bool { return matches(r, d) }):
						seen[d.ID] = true
						found = append(found, d)
					}
				}
				if p.NextPageToken == nil || *p.NextPageToken == "" {
					break
				}
				if *p.NextPageToken == token {
					return nil, nil, fmt.Errorf("kinetic: discovery: %w: the same nextPageToken twice", errBadAnswer)
				}
				token = *p.NextPageToken
			}
		}
	}
	// Oldest first; the list is newest first, so that ties keep the server's order.
	slices.Reverse(found)
	slices.SortStableFunc(found, func(a, b listedDiscussion) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return found, archived, nil
}

// discoveryWatermark returns when discovery first polled for this source (see the rules at
// the top of this file), stored on the first poll ever.
func (s *Source) discoveryWatermark(ctx context.Context) (time.Time, error) {
	if !s.watermark.IsZero() {
		return s.watermark, nil
	}
	cp, ok, err := s.cps.Checkpoint(ctx, s.name, watermarkKey)
	if err != nil {
		return time.Time{}, fmt.Errorf("kinetic: reading the discovery watermark: %w", err)
	}
	if ok && !cp.CreatedAt.IsZero() {
		s.watermark = cp.CreatedAt
		return s.watermark, nil
	}
	mark := time.Now().Add(-s.t.discoverSkew)
	if err := s.cps.SetCheckpoint(ctx, s.name, watermarkKey, Checkpoint{CreatedAt: mark}); err != nil {
		return time.Time{}, fmt.Errorf("kinetic: storing the discovery watermark: %w", err)
	}
	s.watermark = mark
	return mark, nil
}
