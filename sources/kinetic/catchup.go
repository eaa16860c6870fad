package kinetic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/kdbridge/kdbridge/bridge"
)

// maxCatchUpPages bounds one catch-up: 1000 pages of page_size messages.
const maxCatchUpPages = 1000

// maxBatch is the most live events handed to the emitter in one call.
const maxBatch = 256

// catchUpBatch is the most caught-up messages handed to the emitter in one call. Each batch
// is decoded as it is handed over and stays in memory, decoded, until the store has made it
// durable, for every catch-up running (16) at once; at 256 those batches were a quarter of a
// 50,000-message catch-up's live heap. At 64 its peak RSS fell from 106.8 to 95.0 MB at ~2 %
// of its CPU (docs/performance.md, eleventh round); the commits stay full, as 8 Emits run
// at once.
const catchUpBatch = 64

// rememberIDs is how many recent event ids and message versions a discussion remembers to
// drop live events that a catch-up already handed over.
const rememberIDs = 4096

// worker hands over the events of one discussion, in order: live events as they come, and
// on every subscribe ack a catch-up from the REST API. Both go through one FIFO queue, so a
// live event that arrives during a catch-up waits until the catch-up has emitted everything
// older.
//
// A worker costs little while its discussion is quiet, since a source may have tens of
// thousands: its goroutine (with the context that stops it) runs only while the queue has
// work and ends when the queue is empty; the rings that remember what was handed over are
// allocated on first use; the logger is derived when there is something to log.
type worker struct {
	s  *Source
	f  *fleet // the Run the worker belongs to: its context, WaitGroup and emitter
	id string

	fromStart bool            // without a checkpoint, catch up the whole history (see wanted)
	first     atomic.Bool     // counted in the fleet's firstStarts until settled
	after     <-chan struct{} // if set, closed when an earlier worker of the discussion has stopped

	mu           sync.Mutex
	queue        []item
	holding      bool               // a subscribe is in flight: live events wait in held until its ack
	held         []lazyEvent        // live events that arrived on the connection before the subscribe's ack
	subscribedAt time.Time          // when the first subscribe was sent
	running      bool               // a goroutine is handing over the queue
	starting     bool               // waiting in the fleet's starter for a catch-up slot (see startLocked)
	slot         bool               // holds a catch-up slot taken by the starter, for its first catch-up
	stopped      bool               // no longer wanted: no goroutine is started any more
	cancel       context.CancelFunc // stops the running goroutine
	done         chan struct{}      // made by stop while a goroutine runs; closed when it has ended

	// Owned by the running goroutine (there is at most one at a time).
	loaded   bool // the checkpoint has been read
	cp       Checkpoint
	haveCP   bool
	title    string
	related  []bridge.RelatedItem // nil until read; replaced, never changed in place (events share it)
	recent   ring                 // ids of events handed over
	versions ring                 // message id → versionId handed over
}

// item is a queued live event, not decoded yet (see decoder.deferEvents), or a catch-up to
// run (ev empty). Items are values: a queued live event allocates nothing but its payload.
type item struct {
	ev lazyEvent
}

// isCatchUp reports whether the item is a catch-up to run.
func (it *item) isCatchUp() bool { return it.ev.payload == nil }

func (s *Source) newWorker(f *fleet, id string) *worker {
	return &worker{
		s:        s,
		f:        f,
		id:       id,
		recent:   ring{limit: rememberIDs},
		versions: ring{limit: rememberIDs},
	}
}

// log is the worker's logger. It is derived on each use, not kept: most discussions log
// once or never, and a kept logger costs every discussion.
func (w *worker) log() *slog.Logger { return w.s.log.With("discussion", w.id) }

// startLocked starts the worker's goroutine if there is work and none runs. w.mu is held.
// Work that begins with a catch-up waits for a catch-up slot in the fleet's starter first,
// without a goroutine of its own: at start-up every subscribe ack asks for a catch-up, and
// 10,000 goroutines waiting for 16 slots cost their stacks and descriptors (which the Go
// runtime keeps) for nothing. Goroutines are started by the goroutine running Run (the
// session) or by the starter, which Run's WaitGroup counts, so the WaitGroup is never
// added to while its count is zero and Run waits on it.
func (w *worker) startLocked() {
	if w.running || w.starting || w.stopped || len(w.queue) == 0 || w.f.ctx.Err() != nil {
		return
	}
	if w.queue[0].isCatchUp() && !w.slot {
		w.starting = true
		w.f.queueStart(w)
		return
	}
	ctx, cancel := context.WithCancel(w.f.ctx)
	w.running, w.cancel = true, cancel
	w.f.wg.Go(func() { w.run(ctx) })
}

// stop stops the worker for good: its queued events are dropped. The returned channel is
// closed once no goroutine of the worker runs.
func (w *worker) stop() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	// Its queued events are dropped: they no longer count against the live budget. A batch
	// its goroutine took already is let go by deliver.
	w.f.releaseLive(queuedLiveCost(w.queue))
	if !w.running {
		return closedChan
	}
	if w.done == nil {
		w.done = make(chan struct{})
	}
	w.cancel()
	return w.done
}

// exitLocked marks the running goroutine as ended; it returns right after. w.mu is held.
func (w *worker) exitLocked() {
	w.running = false
	if w.slot { // ended before its first catch-up
		w.slot = false
		<-w.s.catchUps
	}
	w.cancel()
	w.cancel = nil
	if w.done != nil {
		close(w.done)
		w.done = nil
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// live queues a live event. It never blocks. When the queue is full the live events in it
// are dropped and replaced by a catch-up: the messages among them come back from the REST
// API; other events (participants, invitations…) are lost and counted in Status.Dropped.
func (w *worker) live(l lazyEvent) {
	w.mu.Lock()
	if w.holding {
		// The catch-up that the subscribe's ack starts may end before this event: emitting it
		// first would move the checkpoint past the gap the catch-up is there to fill. Past
		// the queue's bound the event is dropped: a message among them is caught up anyway.
		full := len(w.held) >= w.s.t.queueCap
		if !full {
			w.held = append(w.held, l)
		}
		w.mu.Unlock()
		if full {
			w.s.st.mu.Lock()
			w.s.st.dropped++
			w.s.st.mu.Unlock()
		}
		return
	}
	if len(w.queue) >= w.s.t.queueCap {
		freed := queuedLiveCost(w.queue)
		kept := w.queue[:0]
		dropped := 0
		for _, it := range w.queue {
			if it.isCatchUp() {
				kept = append(kept, it)
			} else {
				dropped++
			}
		}
		w.queue = kept
		w.f.releaseLive(freed)
		w.queueCatchUpLocked()
		w.startLocked()
		w.mu.Unlock()
		w.s.st.mu.Lock()
		w.s.st.dropped += uint64(dropped)
		w.s.st.mu.Unlock()
		w.s.bad.warn("overflow:"+w.id, "kinetic: event queue full, dropping live events and catching up instead",
			"discussion", w.id, "dropped", dropped)
		return
	}
	w.queue = append(w.queue, item{ev: l})
	w.f.liveBytes.Add(liveCost(&l))
	w.startLocked()
	w.mu.Unlock()
}

// hold makes live events wait (a subscribe was sent): a server may deliver events of the
// discussion before its acknowledgement, and they must not be handed over before the
// catch-up that the acknowledgement starts.
func (w *worker) hold() {
	w.mu.Lock()
	w.holding = true
	if w.subscribedAt.IsZero() {
		// The first subscribe is the start of "now" for a first start (see catchUpOnce):
		// sent before the server can register it, so nothing posted after it is history. A
		// later reconnect's must not move it while that catch-up is still to run.
		w.subscribedAt = time.Now()
	}
	w.mu.Unlock()
}

// catchUp queues a catch-up (after a subscribe ack), followed by the live events held since
// the subscribe was sent.
func (w *worker) catchUp() {
	w.mu.Lock()
	w.queueCatchUpLocked()
	w.releaseLocked()
	w.startLocked()
	w.mu.Unlock()
}

// release queues the held live events without a catch-up (the subscribe was refused).
func (w *worker) release() {
	w.mu.Lock()
	w.releaseLocked()
	w.startLocked()
	w.mu.Unlock()
}

func (w *worker) releaseLocked() {
	for _, l := range w.held {
		w.queue = append(w.queue, item{ev: l})
	}
	w.f.liveBytes.Add(batchLiveCost(w.held))
	w.held, w.holding = nil, false
}

func (w *worker) queueCatchUpLocked() {
	// Two catch-ups in a row are one: the second would find nothing new.
	if n := len(w.queue); n > 0 && w.queue[n-1].isCatchUp() {
		return
	}
	w.queue = append(w.queue, item{})
}

// next takes the next work: a catch-up, or a run of consecutive live events (at most
// maxBatch), which go to the emitter together. When the queue is empty, or ctx is done, the
// goroutine ends (ok false): a later event starts another.
func (w *worker) next(ctx context.Context) (catchUp bool, evs []lazyEvent, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 || ctx.Err() != nil {
		w.exitLocked()
		return false, nil, false
	}
	if w.queue[0].isCatchUp() {
		w.queue = w.queue[1:]
		return true, nil, true
	}
	n := 0
	for n < len(w.queue) && n < maxBatch && !w.queue[n].isCatchUp() {
		n++
	}
	evs = make([]lazyEvent, n)
	for i := range n {
		evs[i] = w.queue[i].ev
		w.queue[i] = item{}
	}
	w.queue = w.queue[n:]
	if len(w.queue) == 0 {
		w.queue = nil // let an emptied backlog's array go
	}
	return false, evs, true
}

// queued counts the live events waiting.
func (w *worker) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i := range w.queue {
		if !w.queue[i].isCatchUp() {
			n++
		}
	}
	return n
}

// pendingCatchUp reports whether another catch-up is queued.
func (w *worker) pendingCatchUp() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.ContainsFunc(w.queue, func(it item) bool { return it.isCatchUp() })
}

// run hands over the queue until it is empty or ctx is done.
func (w *worker) run(ctx context.Context) {
	ok := true
	if w.after != nil {
		select {
		case <-w.after:
			w.after = nil
		case <-ctx.Done():
			ok = false
		}
	}
	if ok && !w.loaded {
		ok = w.loadCheckpoint(ctx)
		w.loaded = ok
	}
	if !ok {
		w.mu.Lock()
		w.exitLocked()
		w.mu.Unlock()
		return
	}
	for {
		catchUp, evs, ok := w.next(ctx)
		switch {
		case !ok:
			return
		case catchUp:
			w.catchUpWithRetry(ctx)
		default:
			w.deliver(ctx, evs)
		}
	}
}

func (w *worker) loadCheckpoint(ctx context.Context) bool {
	logged := false
	b := w.s.backoff(w.s.t.catchUpFirst, w.s.t.catchUpMax)
	for {
		cp, ok, err := w.s.cps.Checkpoint(ctx, w.s.name, w.id)
		if err == nil {
			w.cp, w.haveCP = cp, ok
			w.publishCheckpoint()
			if ok {
				w.settle(ctx)
			}
			return true
		}
		if !logged {
			w.log().Error("kinetic: cannot read the checkpoint", "error", err)
			logged = true
		}
		if !sleep(ctx, b.NextBackOff()) {
			return false
		}
	}
}

// deliver hands over live events, leaving out those handed over already.
//
// The events are decoded only once a decoding slot is free (at most twice as many as emit
// slots): a queued live event is its payload (see decoder.deferEvents), its decoded form
// several times that, and in a burst every discussion has a batch ready — all decoded at
// once, they would wait for an emit slot in memory. Twice as many keep the next emits
// decoded and ready when a commit ends.
func (w *worker) deliver(ctx context.Context, ls []lazyEvent) {
	// The batch counts against the live budget (see fleet.paceLive) until it has a decoding
	// slot: from then on it is one of the few batches the slots bound.
	select {
	case w.s.decodes <- struct{}{}:
		w.f.releaseLive(batchLiveCost(ls))
	case <-ctx.Done():
		w.f.releaseLive(batchLiveCost(ls))
		return
	}
	defer func() { <-w.s.decodes }()
	evs := make([]bridge.Event, 0, len(ls))
	batch := make(map[string]bool, len(ls))
	for i := range ls {
		d, err := w.s.dec.resolve(w.id, ls[i])
		if err != nil {
			w.s.bad.badInput(badKind(err), err, "discussion", w.id)
			continue
		}
		if d.title != "" {
			w.title = d.title
		}
		w.trackRelated(d)
		ev := d.event
		if w.recent.has(ev.ID) || batch[ev.ID] {
			continue
		}
		batch[ev.ID] = true
		ev.Discussion.Title, ev.Discussion.Related = w.title, w.related
		evs = append(evs, ev)
	}
	w.emitAll(ctx, evs)
}

// emitAll emits evs (in one call) until the emitter accepts them or ctx ends (false). Events
// that were not accepted are never skipped: everything behind them in this discussion
// waits. Once accepted, the checkpoint moves to the newest message created among them.
func (w *worker) emitAll(ctx context.Context, evs []bridge.Event) bool {
	if len(evs) == 0 {
		return true
	}
	failed := false
	b := w.s.backoff(w.s.t.emitFirst, w.s.t.emitMax)
	for {
		err := w.emit(ctx, evs)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		if !failed {
			w.log().Warn("kinetic: events not accepted, retrying", "event_id", evs[0].ID, "events", len(evs), "error", err)
			failed = true
		}
		if !sleep(ctx, b.NextBackOff()) {
			return false
		}
	}
	if failed {
		w.log().Info("kinetic: events accepted after retries", "event_id", evs[0].ID, "events", len(evs))
	}
	cp, moved := w.cp, false
	for _, ev := range evs {
		w.recent.add(ev.ID, "")
		m := ev.Message
		if m == nil || ev.Type == bridge.MessageDeleted {
			continue
		}
		w.versions.add(m.ID, m.VersionID)
		if ev.Type == bridge.MessageCreated && cp.advancedBy(m.CreatedAt) {
			cp, moved = Checkpoint{MessageID: m.ID, CreatedAt: m.CreatedAt}, true
		}
	}
	w.s.st.mu.Lock()
	w.s.st.emitted += uint64(len(evs))
	w.s.st.mu.Unlock()
	if moved {
		w.setCheckpoint(ctx, cp)
	}
	return true
}

// emit makes one Emit call once a slot is free: at most timing.emits run at once, so that
// events waiting for the store wait in their queues, not in memory as commit batches.
func (w *worker) emit(ctx context.Context, evs []bridge.Event) error {
	select {
	case w.s.emits <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() {
		<-w.s.emits
		w.f.signalDrained() // a reader waiting for a free slot (see paceLive) may go on
	}()
	return w.f.emit.Emit(ctx, evs...)
}

// setCheckpoint records the newest message handed over. A failure to store it costs only
// redeliveries (with the same event ids) after a restart, so it is logged, not retried.
func (w *worker) setCheckpoint(ctx context.Context, cp Checkpoint) {
	w.cp, w.haveCP = cp, true
	w.publishCheckpoint()
	if err := w.s.cps.SetCheckpoint(ctx, w.s.name, w.id, cp); err != nil {
		if ctx.Err() == nil {
			w.s.bad.warn("checkpoint:"+w.id, "kinetic: cannot store the checkpoint", "discussion", w.id, "error", err)
		}
		return
	}
	w.settle(ctx)
}

// settle counts the worker off the first-start mark (see firstStarts), once: its checkpoint
// is stored, or it was refused or is no longer wanted.
func (w *worker) settle(ctx context.Context) {
	if w.first.CompareAndSwap(true, false) {
		w.f.firsts.settled(ctx)
	}
}

// trackRelated keeps the discussion's related items current as relatedItem events pass.
// It copies: the slice already handed over with events is shared by them.
func (w *worker) trackRelated(d decoded) {
	if d.related == nil {
		return
	}
	ri := *d.related
	same := func(x bridge.RelatedItem) bool { return strings.EqualFold(x.Type, ri.Type) && x.Key == ri.Key }
	switch d.event.Type {
	case bridge.RelatedItemCreated:
		if !slices.ContainsFunc(w.related, same) {
			w.related = append(slices.Clip(w.related), ri)
		}
	case bridge.RelatedItemDeleted:
		w.related = slices.DeleteFunc(slices.Clone(w.related), same)
	}
}

func (w *worker) publishCheckpoint() {
	cp, title := w.cp, w.title
	w.s.st.update(w.id, func(d *DiscussionStatus) {
		d.Checkpoint, d.CheckedAt = cp.MessageID, cp.CreatedAt
		if title != "" {
			d.Title = title
		}
	})
}

func (w *worker) catchUpWithRetry(ctx context.Context) {
	defer w.s.st.update(w.id, func(d *DiscussionStatus) { d.HeldBack = false })
	logged := false
	b := w.s.backoff(w.s.t.catchUpFirst, w.s.t.catchUpMax)
	for {
		// At most catchUps catch-ups of the source run at once (F5): at start-up every
		// subscribe ack asks for one, and 10,000 concurrent REST conversations cost hundreds
		// of megabytes for no gain in time. A worker whose goroutine the starter started
		// holds a slot already; others wait here. Waiters are served in order (a channel's
		// blocked senders queue FIFO); a stopped worker stops waiting.
		w.mu.Lock()
		held := w.slot
		w.slot = false
		w.mu.Unlock()
		if !held {
			select {
			case w.s.catchUps <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil { // select picks at random when both are ready
			<-w.s.catchUps
			return
		}
		n, err := w.catchUpOnce(ctx)
		<-w.s.catchUps
		if errors.Is(err, errHeldBack) {
			// Wait without the slot: other discussions' catch-ups may go to sinks with room.
			if !w.holdBack(ctx) {
				return
			}
			continue
		}
		w.s.st.mu.Lock()
		w.s.st.catchUpEvents += uint64(n) // emitted, also when a shutdown cut the catch-up short
		w.s.st.mu.Unlock()
		if err == nil {
			if logged || (n > 0 && w.s.returned.Load()) {
				w.log().Info("kinetic: caught up", "events", n)
			} else {
				// Start-up's catch-ups (each finds the "joined" message its subscribe
				// posted) are summed up in one line once they are over (see checkRest).
				w.s.log.Debug("kinetic: caught up", "discussion", w.id, "events", 0) // no logger derived for this
			}
			if !w.pendingCatchUp() {
				w.s.st.update(w.id, func(d *DiscussionStatus) { d.CaughtUp = true })
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.s.st.setError(err)
		if !logged {
			w.log().Warn("kinetic: catch-up failed, retrying", "error", err)
			logged = true
		}
		if !sleep(ctx, b.NextBackOff()) {
			return
		}
	}
}

// catchUpOnce pages the discussion's messages newest first back to the checkpoint and
// emits what is new, oldest first: message.created for messages newer than the checkpoint,
// message.updated for older ones (on the pages read) edited since. Without a checkpoint it
// replays backfill's worth of history (none by default) — or all of it for a discussion
// discovered after discovery started watching (fromStart) — and sets the checkpoint to the
// newest message. It returns the number of events emitted.
func (w *worker) catchUpOnce(ctx context.Context) (int, error) {
	s := w.s
	// A catch-up let go after a wait asks again before it reads anything: several take
	// their slots when the sinks have room, the first ones fill it, and the others would
	// each read their discussion only to wait again. The title and related items it asks
	// with are those read last time (w.related is nil until a first read).
	if w.related != nil && w.shouldHoldBack() {
		return 0, errHeldBack
	}
	// The title and related items go with every event: routes select discussions by them
	// (match:), so events wait until they are known, like any catch-up that fails.
	d, err := s.rest.discussion(ctx, w.id)
	if err != nil {
		return 0, fmt.Errorf("reading the discussion: %w", err)
	}
	if d.Title != "" {
		w.title = d.Title
	}
	if d.Related != nil || w.related == nil {
		w.related = d.Related
		if w.related == nil {
			w.related = []bridge.RelatedItem{}
		}
	}
	w.publishCheckpoint()
	if w.shouldHoldBack() {
		return 0, errHeldBack
	}

	cp, have := w.cp, w.haveCP
	backfill := s.cfg.Backfill.D()
	started := time.Now()
	everything := !have && w.fromStart
	var cutoff time.Time // without a checkpoint: replay messages created since
	if !have {
		// A first start replays no history, but its "now" is when it first subscribed, not
		// when this page is read: a message posted in between is news, and the live
		// stream may not survive to deliver it (a server may drop a slow connection).
		// "When" is on the space's clock, which stamps the messages: ours plus the offset
		// read from the token, less a margin for the token's whole seconds; without an
		// offset, ours less a margin for clock skew. Either margin can only cause the
		// messages of its last seconds to be delivered, never one to be missed.
		// An earlier first-start mark, still pending, is older "now" (see firstStarts).
		w.mu.Lock()
		since := w.subscribedAt
		w.mu.Unlock()
		if since.IsZero() {
			since = started
		}
		if m := w.f.firsts.mark(); !m.IsZero() && m.Before(since) {
			since = m
		}
		if off, ok := s.tokens.clockOffset(); ok && s.t.serverClock {
			cutoff = since.Add(off - s.t.clockMargin)
		} else {
			cutoff = since.Add(-s.t.startSkew)
		}
		if b := started.Add(-backfill); backfill > 0 && b.Before(cutoff) {
			cutoff = b
		}
	}
	// What is collected while paging back is kept small: a new message is kept as its raw
	// payload (one allocation, owned: the page's decoder copied it) and decoded into its event
	// only when its batch is handed over, oldest first. Only the rare edits of older messages
	// are kept decoded. Collecting is unavoidable — the API pages newest first, and events
	// must go oldest first — but a decoded event costs several times its payload.
	var fresh []freshMessage // newest first
	var edits []pending
	var newest messageKeys
	pageToken := ""
	for range maxCatchUpPages {
		page, err := s.rest.messages(ctx, w.id, s.cfg.PageSize, pageToken)
		if err != nil {
			return 0, err
		}
		reached := false
		for _, raw := range page.Messages {
			k, ok := readMessageKeys(raw)
			if !ok {
				// An unusual shape: the full lenient decode says what the keys are, or why
				// the message is unreadable.
				m, err := s.dec.message(w.id, raw)
				if err != nil {
					s.bad.badInput(badREST, err, "discussion", w.id)
					continue
				}
				k = messageKeys{id: m.ID, versionID: m.VersionID, createdAt: m.CreatedAt, updatedAt: m.UpdatedAt}
			}
			if newest.id == "" {
				newest = k
			}
			switch {
			case have:
				if !reached && (k.id == cp.MessageID || (!k.createdAt.IsZero() && k.createdAt.Before(cp.CreatedAt))) {
					reached = true
				}
				if !reached && !w.recent.has(bridge.EventID(s.dec.source, w.id, k.id, "", bridge.MessageCreated)) {
					fresh = append(fresh, freshMessage{raw, k.createdAt})
					continue
				}
				// Handed over already; an edit since is an update.
				if w.editedSince(k, cp) {
					m, err := s.dec.message(w.id, raw)
					if err != nil {
						s.bad.badInput(badREST, err, "discussion", w.id)
						continue
					}
					edits = append(edits, pending{s.dec.messageEvent(w.id, bridge.MessageUpdated, m, raw, started), m.UpdatedAt})
				}
			case everything || (!cutoff.IsZero() && !k.createdAt.Before(cutoff)):
				fresh = append(fresh, freshMessage{raw, k.createdAt})
			default:
				reached = true // no checkpoint: history before now (or before the backfill) is not replayed
			}
		}
		if reached || page.NextPageToken == nil || *page.NextPageToken == "" {
			break
		}
		pageToken = *page.NextPageToken
	}

	// Oldest first: the new messages in list order, and the edits of older messages (by
	// edit time) merged in where they happened. Each batch is decoded as it is handed over,
	// and its payloads are released once it is accepted.
	slices.Reverse(fresh)
	slices.SortStableFunc(edits, func(a, b pending) int { return a.at.Compare(b.at) })
	n := 0
	batch := make([]bridge.Event, 0, min(len(fresh)+len(edits), catchUpBatch))
	for len(fresh) > 0 || len(edits) > 0 {
		var ev bridge.Event
		if len(edits) > 0 && (len(fresh) == 0 || edits[0].at.Before(fresh[0].at)) {
			ev = edits[0].ev
			edits[0] = pending{}
			edits = edits[1:]
		} else {
			raw := fresh[0].raw
			fresh[0] = freshMessage{}
			fresh = fresh[1:]
			m, err := s.dec.message(w.id, raw)
			if err != nil { // not expected: readMessageKeys accepts only what message accepts
				s.bad.badInput(badREST, err, "discussion", w.id)
				continue
			}
			ev = s.dec.messageEvent(w.id, bridge.MessageCreated, m, raw, started)
		}
		if !w.recent.has(ev.ID) {
			ev.Discussion.Title, ev.Discussion.Related = w.title, w.related
			batch = append(batch, ev)
		}
		if len(batch) == catchUpBatch || (len(fresh) == 0 && len(edits) == 0 && len(batch) > 0) {
			if !w.emitAll(ctx, batch) {
				return n, ctx.Err()
			}
			n += len(batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	if !w.haveCP {
		switch {
		case newest.id != "":
			w.setCheckpoint(ctx, Checkpoint{MessageID: newest.id, CreatedAt: newest.createdAt})
		default:
			// An empty discussion: remember when it was seen empty, so that what is posted
			// while this process is down is caught up after a restart. The margin covers
			// clock skew to the server; it can only cause redeliveries.
			w.setCheckpoint(ctx, Checkpoint{CreatedAt: started.Add(-time.Minute)})
		}
	}
	return n, nil
}

// pacer is an emitter that can advise a catch-up to hold back (bridge.Dispatcher.Behind):
// every target its events would go to is far behind and taking deliveries.
type pacer interface {
	Behind(events ...bridge.Event) bool
}

// errHeldBack ends a catch-up before it reads any message: its sinks are far behind (see
// holdBack). It is no failure: the catch-up runs again once they have room.
var errHeldBack = errors.New("held back: the sinks are far behind")

// shouldHoldBack reports whether the catch-up about to read the discussion's messages should
// wait instead. A restart's catch-ups read from the REST API far faster than sinks deliver,
// and whatever they read goes to the store at once: the whole backlog would be on disk (and,
// through bbolt's map, in memory) at the peak. Messages not read yet stay in Kinetic, and the
// checkpoint does not move past them, so waiting loses nothing. It does not wait once live
// events of the discussion fill a quarter of its queue behind the catch-up (a full one would
// overflow, and its events other than messages be lost), but a few do not stop it: every
// subscribe posts a "joined" message of its own, which arrives during the catch-up. The
// emitter decides for whom waiting is free (bridge.Dispatcher.Behind: never for a target
// with room, nor a failing, disabled or halted one). The question is asked with the event a new message of
// the discussion would be, so routes select as they would for it.
func (w *worker) shouldHoldBack() bool {
	if w.f.pace == nil || w.queued() >= w.s.t.queueCap/4 {
		return false
	}
	return w.f.pace.Behind(bridge.Event{
		Source: w.s.name,
		Type:   bridge.MessageCreated,
		Discussion: bridge.Discussion{
			ID:      w.id,
			Title:   w.title,
			Related: w.related,
		},
	})
}

// holdBack waits, holding no catch-up slot, until the catch-up should go on: its targets
// have room (or stopped taking deliveries), or live events of the discussion fill a quarter of its queue
// behind it (see shouldHoldBack). It
// returns false when ctx ends. Each wait is counted in Status.CatchUpsHeldBack.
func (w *worker) holdBack(ctx context.Context) bool {
	w.s.st.mu.Lock()
	w.s.st.heldBack++
	w.s.st.mu.Unlock()
	w.s.log.Debug("kinetic: catch-up held back while its sinks deliver what waits", "discussion", w.id)
	// Ready meanwhile, and until this catch-up ends (catchUpWithRetry clears it): readiness
	// says whether kdbridge is connected and reads what it should, not how fast the sinks
	// take it — a stored backlog never made it unready either — and must not flap as
	// held-back catch-ups take turns while a long backlog drains.
	w.s.st.update(w.id, func(d *DiscussionStatus) { d.HeldBack = true })
	t := time.NewTicker(w.s.t.holdBackPoll)
	defer t.Stop()
	for w.shouldHoldBack() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// editedSince reports whether m, a message at or before the checkpoint, has a version that
// was not handed over: one different from the version emitted for it, or — when this
// process never emitted it — one edited after the checkpoint.
func (w *worker) editedSince(m messageKeys, cp Checkpoint) bool {
	if found, same := w.versions.holds(m.id, m.versionID); found {
		return m.versionID != "" && !same
	}
	return m.updatedAt.After(m.createdAt) && m.updatedAt.After(cp.CreatedAt)
}

// pending is a decoded catch-up event and the time it sorts by.
type pending struct {
	ev bridge.Event
	at time.Time
}

// freshMessage is a new message collected by a catch-up: its payload, decoded when handed
// over, and its creation time.
type freshMessage struct {
	raw json.RawMessage
	at  time.Time
}

// backoff returns an exponential backoff with jitter.
func (s *Source) backoff(first, maxInterval time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     first,
		RandomizationFactor: 0.3,
		Multiplier:          2,
		MaxInterval:         maxInterval,
	}
	b.Reset()
	return b
}

// sleep waits d or until ctx is done (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
