package kinetic

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// actUnsubscribe ends a subscription (protocol §3.3).
const actUnsubscribe = "unsubscribe"

// wanted is one discussion the source should be subscribed to.
type wanted struct {
	id         string
	discovered bool // matched by discovery (and not configured)
	// fromStart: without a checkpoint, the first catch-up emits the discussion's whole
	// history instead of starting from now. Set for discussions that discovery found created
	// after it started watching (see discover.go).
	fromStart bool
}

func plainWanted(ids []string) []wanted {
	out := make([]wanted, len(ids))
	for i, id := range ids {
		out[i] = wanted{id: id}
	}
	return out
}

// SetDiscussions replaces the configured discussions (the discussions: list), before or
// while Run runs; it is safe to call from any goroutine. On the current connection, new
// discussions are subscribed and caught up after their ack (one without a checkpoint starts
// from now, as on a first start, unless backfill is set) and discussions no longer wanted
// are unsubscribed and dropped from Status. Discussions in both sets are left alone: the
// connection is not re-established and their subscriptions are not sent again. Discussions
// that discovery matched stay subscribed whether or not they are configured. Ids that cannot
// be discussion ids are logged and ignored.
func (s *Source) SetDiscussions(ids []string) {
	clean := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		switch {
		case !idPattern.MatchString(id):
			s.log.Warn("kinetic: ignoring an invalid discussion id", "discussion", truncate(id, 100))
		case !seen[id]:
			seen[id] = true
			clean = append(clean, id)
		}
	}
	added, removed := s.updateWanted(func() {
		s.configured = clean
		// A reload: discussions the server removed kdbridge from are subscribed again.
		clear(s.removed)
	})
	for _, id := range added {
		s.log.Info("kinetic: discussion added", "discussion", id)
	}
	for _, id := range removed {
		s.log.Info("kinetic: discussion removed", "discussion", id)
	}
}

// desired returns the wanted discussions: the configured ones, then the discovered ones
// that are not configured.
func (s *Source) desired() []wanted {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	return s.desiredLocked()
}

func (s *Source) desiredLocked() []wanted {
	out := make([]wanted, 0, len(s.configured)+len(s.discovered))
	static := make(map[string]bool, len(s.configured))
	for _, id := range s.configured {
		static[id] = true
		out = append(out, wanted{id: id})
	}
	for _, w := range s.discovered {
		if !static[w.id] {
			out = append(out, w)
		}
	}
	return out
}

// updateWanted runs change (which edits s.configured or s.discovered) under the lock,
// publishes the result to Status and tells Run. It returns the discussions that became
// wanted and those that no longer are.
func (s *Source) updateWanted(change func()) (added, removed []string) {
	s.setMu.Lock()
	before := s.desiredLocked()
	change()
	after := s.desiredLocked()
	s.st.setWanted(after)
	// A removal is forgotten once the discussion is no longer wanted: wanting it again (a
	// new discovery match, a configuration change) subscribes it again.
	still := make(map[string]bool, len(after))
	for _, w := range after {
		still[w.id] = true
	}
	for id := range s.removed {
		if !still[id] {
			delete(s.removed, id)
		}
	}
	s.setMu.Unlock()

	was := make(map[string]bool, len(before))
	for _, w := range before {
		was[w.id] = true
	}
	for _, w := range after {
		if !was[w.id] {
			added = append(added, w.id)
		}
		delete(was, w.id)
	}
	for _, w := range before {
		if was[w.id] {
			removed = append(removed, w.id)
		}
	}
	select {
	case s.changed <- struct{}{}:
	default: // a change is already pending; Run reads the latest set anyway
	}
	return added, removed
}

// RetryRemoved subscribes again, on the live connection, to the discussions the server
// removed kdbridge from (see session.unsubscribed). A reload calls it, also when the source's
// configuration did not change; it is safe to call from any goroutine.
func (s *Source) RetryRemoved() {
	s.setMu.Lock()
	n := len(s.removed)
	clear(s.removed)
	s.setMu.Unlock()
	if n == 0 {
		return
	}
	s.log.Info("kinetic: subscribing again to discussions the server had removed kdbridge from", "discussions", n)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// markRemoved records that the server removed kdbridge from a discussion.
func (s *Source) markRemoved(id string) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if s.removed == nil {
		s.removed = map[string]bool{}
	}
	s.removed[id] = true
}

func (s *Source) isRemoved(id string) bool {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	return s.removed[id]
}

// fleet is the set of discussion workers of one Run, owned by the goroutine running Run:
// it starts a worker for each wanted discussion and stops those no longer wanted.
type fleet struct {
	s       *Source
	ctx     context.Context
	emit    bridge.Emitter
	pace    pacer // emit's advice to hold catch-ups back; nil when it gives none
	wg      *sync.WaitGroup
	byID    map[string]*worker
	retired map[string]<-chan struct{} // done channels of stopped workers that may still be running
	firsts  firstStarts                // the first-start mark of this Run's discussions without checkpoints

	// Workers whose work begins with a catch-up, waiting for a slot (see startLocked), in
	// order; the starter goroutine serves them.
	startMu  sync.Mutex
	toStart  []pendingStart
	startReq chan struct{} // 1-buffered: toStart has an entry

	// liveBytes estimates the memory of the live events the workers hold, from the moment
	// one is queued until its batch has a decoding slot (liveCost); paceLive keeps it near
	// Config.ReadAhead while the emitter is the bottleneck.
	liveBytes atomic.Int64
	drained   chan struct{} // 1-buffered: live events were let go, or an emit slot came free
}

// pendingStart is a worker waiting in the starter, since queued.
type pendingStart struct {
	w      *worker
	queued time.Time
}

// newFleet makes the fleet of a Run and starts its starter, which ends with ctx.
func (s *Source) newFleet(ctx context.Context, emit bridge.Emitter, wg *sync.WaitGroup) *fleet {
	f := &fleet{s: s, ctx: ctx, emit: emit, wg: wg, byID: map[string]*worker{}, retired: map[string]<-chan struct{}{},
		firsts: firstStarts{s: s}, startReq: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
	f.pace, _ = emit.(pacer)
	wg.Go(f.starter)
	return f
}

// queueStart queues w for the starter. w.mu is held (the starter takes it only after
// startMu is released).
func (f *fleet) queueStart(w *worker) {
	f.startMu.Lock()
	f.toStart = append(f.toStart, pendingStart{w: w, queued: time.Now()})
	f.startMu.Unlock()
	select {
	case f.startReq <- struct{}{}:
	default:
	}
}

// starter starts, in order, the goroutines of workers whose work begins with a catch-up, each
// once it has taken a catch-up slot for it. While the connection still has subscribes
// queued, it waits for them to be sent first — at most timing.catchUpYield after the
// worker was queued: on two cores, the catch-ups that the first acks start would otherwise
// take the CPU that sends the rest, and a slow server's subscribes (minutes of them) must
// not hold up its discussions' live events for long.
func (f *fleet) starter() {
	var yield *time.Timer
	defer func() {
		if yield != nil {
			yield.Stop()
		}
	}()
	for {
		f.startMu.Lock()
		var next pendingStart
		if len(f.toStart) > 0 {
			next = f.toStart[0]
			f.toStart[0] = pendingStart{}
			f.toStart = f.toStart[1:]
			if len(f.toStart) == 0 {
				f.toStart = nil // let the backing array go
			}
		}
		f.startMu.Unlock()
		if next.w == nil {
			select {
			case <-f.startReq:
				continue
			case <-f.ctx.Done():
				return
			}
		}
		if ch := f.s.subscribing.Load(); ch != nil {
			if wait := time.Until(next.queued.Add(f.s.t.catchUpYield)); wait > 0 {
				if yield == nil {
					yield = time.NewTimer(wait)
				} else {
					yield.Reset(wait)
				}
				select {
				case <-*ch:
					yield.Stop()
				case <-yield.C:
				case <-f.ctx.Done():
					return
				}
			}
		}
		select {
		case f.s.catchUps <- struct{}{}:
		case <-f.ctx.Done():
			return
		}
		w := next.w
		w.mu.Lock()
		w.starting = false
		if w.stopped || f.ctx.Err() != nil || len(w.queue) == 0 {
			<-f.s.catchUps
		} else {
			w.slot = true
			w.startLocked()
		}
		w.mu.Unlock()
	}
}

// sync starts and stops workers to match want.
func (f *fleet) sync(want []wanted) {
	changed := false
	added := 0
	keep := make(map[string]bool, len(want))
	for _, wd := range want {
		keep[wd.id] = true
		if f.byID[wd.id] != nil {
			continue
		}
		// No goroutine yet: the worker starts one when it has work (a subscribe ack).
		w := f.s.newWorker(f, wd.id)
		w.fromStart = wd.fromStart
		w.first.Store(true) // until its checkpoint is known (see firstStarts)
		added++
		// A worker stopped a moment ago for the same discussion may still be handing over
		// events and setting the checkpoint; the new one reads the checkpoint after it.
		w.after = f.retired[wd.id]
		delete(f.retired, wd.id)
		f.byID[wd.id] = w
		changed = true
	}
	for id, w := range f.byID {
		if keep[id] {
			continue
		}
		// Events still queued for it are dropped: the discussion is no longer wanted. Its
		// checkpoint stays, so that wanting it again catches up from there.
		f.retired[id] = w.stop()
		w.settle(f.ctx)
		delete(f.byID, id)
		f.s.st.forget(id)
		changed = true
	}
	for id, done := range f.retired {
		select {
		case <-done:
			delete(f.retired, id)
		default:
		}
	}
	// Before the new discussions' subscribes are sent (the session sends them after sync).
	f.firsts.begin(f.ctx, added)
	if changed {
		m := maps.Clone(f.byID)
		f.s.workers.Store(&m)
	}
}

// Subscription states on one connection.
const (
	subPending = iota // subscribe sent, no ack yet
	subOK             // ack-ok
	subWaiting        // refused: a subscribe is due later
	subRemoved        // ended by the server (unsubscribed): left alone until RetryRemoved or a change
)

// subscription is the state of one wanted discussion on the current connection.
type subscription struct {
	state int
	tag   string // of the latest subscribe sent: an ack for an earlier one is stale
	sent  bool   // the subscribe is sent (a pending one may still be queued; see session.pump)
	// firstSeq numbers the first subscribe sent for this subscription: an ack for it or a
	// later one answers it (a retried subscribe may be answered by the first), an ack for
	// an earlier one is stale.
	firstSeq uint64
}

// reconcile brings the connection's subscriptions in line with the wanted discussions:
// unsubscribe those no longer wanted, subscribe the new ones, leave the rest alone.
func (ss *session) reconcile() error {
	want := ss.s.desired()
	ss.fleet.sync(want)
	keep := make(map[string]bool, len(want))
	for _, w := range want {
		keep[w.id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ss.subs)) {
		if !keep[id] {
			if err := ss.leave(id); err != nil {
				return err
			}
		}
	}
	for _, w := range want {
		sub := ss.subs[w.id]
		switch {
		case ss.s.isRemoved(w.id):
			if sub == nil {
				ss.subs[w.id] = &subscription{state: subRemoved}
				ss.s.st.update(w.id, func(d *DiscussionStatus) { d.State = StateRemoved })
			}
		case sub == nil || sub.state == subRemoved:
			ss.subscribe(w.id)
		}
	}
	return nil
}

// leave unsubscribes from a discussion no longer wanted. The ack is awaited like any other:
// one that does not come within ack_timeout ends the connection, and the next one
// subscribes only to what is wanted then.
func (ss *session) leave(id string) error {
	sub := ss.subs[id]
	delete(ss.subs, id)
	delete(ss.due, id)
	ss.armTimer()
	if ss.firstRound[id] {
		delete(ss.firstRound, id)
		ss.firstRoundDone()
	}
	if sub == nil || sub.state == subWaiting || sub.state == subRemoved || !sub.sent {
		return nil // not subscribed on the server
	}
	ss.leaving[id]++
	return ss.c.request(actUnsubscribe, map[string]string{"topic": discussionTopic(id)}, "unsubscribe:"+id)
}

// unsubscribeAcked handles the ack of an unsubscribe.
func (ss *session) unsubscribeAcked(id string, f frame) {
	if ss.leaving[id]--; ss.leaving[id] <= 0 {
		delete(ss.leaving, id)
	}
	if f.Event == evAckOK {
		ss.s.log.Info("kinetic: unsubscribed", "discussion", id)
		return
	}
	// Nothing to retry: the server does not send the discussion's events either way.
	ss.s.log.Info("kinetic: unsubscribe answered with an error", "discussion", id, "answer", payloadText(f.Payload))
}

// liveOverhead is what a queued live event costs besides its payload: its slot in the queue
// (64 bytes, and up to as much again of the queue's spare capacity) and its copy in the
// batch taken from the queue (64), rounded up for the allocator's size classes.
const liveOverhead = 256

// liveCost estimates the memory a live event costs while the source holds it. It depends
// only on l, so that the cost added when the event is queued is the cost released later.
func liveCost(l *lazyEvent) int64 {
	return int64(len(l.payload)) + liveOverhead
}

// batchLiveCost is the live cost of a batch of events (see liveCost).
func batchLiveCost(ls []lazyEvent) int64 {
	var n int64
	for i := range ls {
		n += liveCost(&ls[i])
	}
	return n
}

// queuedLiveCost is the live cost of the events in a worker's queue (its catch-up markers
// cost nothing).
func queuedLiveCost(q []item) int64 {
	var n int64
	for i := range q {
		if !q[i].isCatchUp() {
			n += liveCost(&q[i].ev)
		}
	}
	return n
}

// releaseLive counts n bytes of live events off the fleet's budget.
func (f *fleet) releaseLive(n int64) {
	if n == 0 {
		return
	}
	f.liveBytes.Add(-n)
	f.signalDrained()
}

func (f *fleet) signalDrained() {
	select {
	case f.drained <- struct{}{}:
	default:
	}
}

// paceLive is called by the session before it queues a live event. While the workers hold
// more than read_ahead bytes of live events and every emit slot is taken — the store is the
// bottleneck — it waits for live events to be let go or a slot to come free: events read
// ahead of the store only wait in memory (the bench's burst over 200 discussions reads
// ~19 MiB ahead by this count when nothing bounds it). Meanwhile the session reads no frame,
// so what follows waits in the socket's buffers and the server's, and the reader is paced at
// the store's speed. One wait lasts at most timing.liveWaitMax: a store that takes no events
// at all slows reading to a trickle, which keeps the connection alive (its read deadline is
// renewed by every frame), rather than stopping it. A discussion whose queue waits for its
// own catch-up takes no emit slot, so it never holds the others' events back.
func (f *fleet) paceLive() {
	s := f.s
	blocked := func() bool { return f.liveBytes.Load() > s.cfg.ReadAhead && len(s.emits) == cap(s.emits) }
	if !blocked() {
		return
	}
	s.st.mu.Lock()
	s.st.liveWaits++
	s.st.mu.Unlock()
	t := time.NewTimer(s.t.liveWaitMax)
	defer t.Stop()
	for blocked() {
		select {
		case <-f.drained:
		case <-t.C:
			return
		case <-f.ctx.Done():
			return
		}
	}
}
