package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A target (route, sink, channel) that is gone (410) or has failed continuously for the
// sink's retry.disable_after is disabled: its deliveries are dead-lettered at once with the
// reason, instead of piling up retries against a dead endpoint. The flag is kept in the
// store, so it survives restarts, and replaying the target's dead letters clears it.

const disabledNS = "disabled-targets"

type disabledRecord struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// targetState is what a sink runner knows about one of its targets.
type targetState struct {
	target    Target
	loaded    bool      // disabled was read from the store
	disabled  string    // reason; "" when enabled
	failSince time.Time // start of the current run of failures; zero after a success
}

func (r *sinkRunner) target(t Target) *targetState {
	ts := r.targets[t.Key()]
	if ts == nil {
		ts = &targetState{target: t}
		r.targets[t.Key()] = ts
	}
	return ts
}

// disabledReason returns why t is disabled, or "".
func (r *sinkRunner) disabledReason(ctx context.Context, t Target) string {
	r.mu.Lock()
	ts := r.target(t)
	loaded, reason := ts.loaded, ts.disabled
	r.mu.Unlock()
	if loaded {
		return reason
	}
	b, ok, err := r.d.store.Get(ctx, disabledNS, t.Key())
	var rec disabledRecord
	if err == nil && ok && len(b) > 0 {
		if json.Unmarshal(b, &rec) != nil {
			rec.Reason = "disabled (unreadable record)"
		}
	}
	if err != nil {
		r.log.Error("read target state", "route", t.Route, "err", err)
		return "" // try delivering; the store trouble will show elsewhere
	}
	r.mu.Lock()
	ts.loaded, ts.disabled = true, rec.Reason
	r.mu.Unlock()
	return rec.Reason
}

// failing records a failure of t and returns when its current run of failures began: the
// earlier of what this process saw and the failing delivery's first attempt (persisted, so a
// restart does not reset the clock).
func (r *sinkRunner) failing(t Target, firstTry, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.target(t)
	if ts.failSince.IsZero() {
		ts.failSince = now
	}
	if !firstTry.IsZero() && firstTry.Before(ts.failSince) {
		ts.failSince = firstTry
	}
	return ts.failSince
}

func (r *sinkRunner) succeeded(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.targets[t.Key()]; ts != nil {
		ts.failSince = time.Time{}
	}
}

// disable marks t disabled, persists it, and wakes every queue of t so that its waiting
// deliveries are dead-lettered now rather than at their next retry.
func (r *sinkRunner) disable(ctx context.Context, t Target, reason string) {
	b, _ := json.Marshal(disabledRecord{Reason: reason, Since: r.d.now()})
	if err := r.d.store.Put(ctx, disabledNS, t.Key(), b); err != nil {
		r.log.Error("persist disabled target", "route", t.Route, "err", err)
	}
	r.mu.Lock()
	ts := r.target(t)
	already := ts.disabled != ""
	ts.loaded, ts.disabled = true, reason
	var wake []Queue
	for _, s := range r.queues {
		if s.q.Target.Key() == t.Key() && s.timer != nil && s.timer.Stop() {
			s.timer = nil
			wake = append(wake, s.q)
		}
	}
	r.mu.Unlock()
	if !already {
		r.log.Error("target disabled: its deliveries go to the dead letters until `kdbridge dlq replay` re-enables it",
			"route", t.Route, "channel", t.Channel, "reason", reason)
	}
	for _, q := range wake {
		r.schedule(q, true)
	}
}

// enabled forgets that t was disabled or failing (after a replay).
func (r *sinkRunner) enabled(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.target(t)
	if ts.disabled != "" {
		r.log.Info("target re-enabled by a dead-letter replay", "route", t.Route, "channel", t.Channel)
	}
	ts.loaded, ts.disabled, ts.failSince = true, "", time.Time{}
}

// EnableTargets clears the disabled flag of the targets of the given dead letters. Replay
// calls it; so does `kdbridge dlq replay` when the daemon is not running.
func EnableTargets(ctx context.Context, st Store, dls []DeadLetter) error {
	done := map[string]bool{}
	for _, dl := range dls {
		k := dl.Pending.Queue.Target.Key()
		if done[k] {
			continue
		}
		done[k] = true
		if err := st.Put(ctx, disabledNS, k, nil); err != nil {
			return fmt.Errorf("re-enable target %s/%s: %w", dl.Pending.Queue.Target.Route, dl.Pending.Queue.Target.Sink, err)
		}
	}
	return nil
}

// DisabledTarget is a target whose deliveries go straight to the dead letters.
type DisabledTarget struct {
	Target Target
	Reason string
}

// ListDisabledTargets lists the disabled targets this process knows of: those disabled since it
// started and those whose stored flag it has read (at their first delivery since the start).
func (d *Dispatcher) ListDisabledTargets() []DisabledTarget {
	d.mu.RLock()
	runners := slices.Collect(maps.Values(d.sinks))
	d.mu.RUnlock()
	var out []DisabledTarget
	for _, r := range runners {
		r.mu.Lock()
		for _, ts := range r.targets {
			if ts.disabled != "" {
				out = append(out, DisabledTarget{Target: ts.target, Reason: ts.disabled})
			}
		}
		r.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b DisabledTarget) int { return strings.Compare(a.Target.Key(), b.Target.Key()) })
	return out
}

// DisabledTargets counts, per configured sink (0 included), the targets ListDisabledTargets
// lists, for the kdbridge_targets_disabled metric: those this process disabled, and those
// whose stored flag it read because a delivery for them came up (a target disabled before a
// restart counts again as soon as an event is routed to it). It reads the sink runners'
// memory, never the store, so it is cheap enough for every metrics scrape.
func (d *Dispatcher) DisabledTargets() map[string]int {
	d.mu.RLock()
	out := make(map[string]int, len(d.sinks))
	for name := range d.sinks {
		out[name] = 0
	}
	d.mu.RUnlock()
	for _, t := range d.ListDisabledTargets() {
		out[t.Target.Sink]++
	}
	return out
}

// EnableTarget clears t's disabled flag without replaying anything: its dead letters stay
// where they are, and new deliveries are tried again.
func (d *Dispatcher) EnableTarget(ctx context.Context, t Target) error {
	if err := d.store.Put(ctx, disabledNS, t.Key(), nil); err != nil {
		return fmt.Errorf("re-enable target %s/%s: %w", t.Route, t.Sink, err)
	}
	d.mu.RLock()
	r, ok := d.sinks[t.Sink]
	d.mu.RUnlock()
	if ok {
		r.enabled(t)
	}
	return nil
}
