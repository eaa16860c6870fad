package bridge

import "slices"

// defaultHoldBackAt is the default of DispatcherOptions.HoldBackAt. Smaller keeps less of
// a restart's backlog in the store (the bench's 50,000-message catch-up: a 16.8 MB store at
// 1,024, 33 MB at 4,096, 65 MB without holding back); larger keeps a fast sink busy while
// held-back catch-ups get going again (a slot, the discussion's REST read, its pages): 2,048
// is ~0.2 s of a webhook at the bench's ~10,000 deliveries a second.
const defaultHoldBackAt = 2048

// Behind reports whether a source should hold back events it can read again later (a
// catch-up, whose messages stay in Kinetic and whose checkpoint does not move until they are
// emitted): every target events are routed to already has at least
// DispatcherOptions.HoldBackAt deliveries waiting and is taking them. Holding back then costs
// those targets no delivery time, and the store does not grow with the whole backlog of a
// restart, which a catch-up reads far faster than a sink takes it.
//
// It is false — emit now — when any target has room, so that a slow target never holds
// back another's events (not even another channel of the same sink); when a target is
// failing (its last attempt failed), disabled, or its sink halted, so that what it cannot
// take yet is kept in our store, where nothing can take it away; when no route selects the
// events; and when the dispatcher is not running. It reads counters and flags only, never
// the store.
func (d *Dispatcher) Behind(events ...Event) bool {
	d.mu.RLock()
	running := d.runCtx != nil
	d.mu.RUnlock()
	if !running || len(events) == 0 {
		return false
	}
	router := d.router.Load()
	var targets []Target
	for _, e := range events {
		for _, t := range router.Targets(e) {
			if !slices.Contains(targets, t) {
				targets = append(targets, t)
			}
		}
	}
	if len(targets) == 0 {
		return false
	}
	for _, t := range targets {
		d.mu.RLock()
		r := d.sinks[t.Sink]
		d.mu.RUnlock()
		if r == nil || !r.delivering(t) || d.backlog.targetPending(t) < d.opts.HoldBackAt {
			return false
		}
	}
	return true
}

// delivering reports whether t is taking deliveries: its sink is not halted, and t is not
// disabled and its last attempt did not fail.
func (r *sinkRunner) delivering(t Target) bool {
	if r.isHalted.Load() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.targets[t.Key()]
	return ts == nil || (ts.failSince.IsZero() && ts.disabled == "")
}
