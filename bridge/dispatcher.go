package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SinkSpec is a sink with the delivery settings the dispatcher applies to it.
type SinkSpec struct {
	Sink        Sink
	MaxInFlight int // deliveries at once across discussions; default 4
	Retry       RetryConfig
}

// DispatcherOptions tune a Dispatcher.
type DispatcherOptions struct {
	Logger *slog.Logger
	Grace  time.Duration    // how long in-flight deliveries may finish after Run's context ends; default 10s
	Now    func() time.Time // default time.Now
	// Observer, if set, hears about each delivery outcome (metrics, tests).
	Observer func(Outcome)
	// HoldBackAt is how many deliveries a sink must have waiting before Behind tells a
	// catch-up to hold back for it (holdback.go); default 2048.
	HoldBackAt int
	// FailedAttemptsOnly keeps only the attempts that did not deliver in the attempt
	// history (state.attempts.record: failures): a healthy bridge then writes none, and
	// the history costs neither the memory nor the disk of a record per delivery.
	FailedAttemptsOnly bool
}

// Outcome is the result of one delivery attempt.
type Outcome struct {
	Delivery Delivery
	Err      error // nil on success
	Dead     bool  // the delivery was dead-lettered
	Wait     time.Duration
}

// Dispatcher is the delivery half of the bridge. Emit routes events and stores them durably
// before returning; Run delivers stored events to sinks, in order per discussion and target,
// concurrently across discussions, with retries and dead letters. A slow or failing sink,
// target or discussion never holds up another: each has its own queue.
type Dispatcher struct {
	store  Store
	router atomic.Pointer[Router]
	log    *slog.Logger
	opts   DispatcherOptions
	now    func() time.Time

	backlog backlog // pending deliveries per sink, for metrics (backlog.go)

	attempts *attemptRecorder // nil when the store keeps no attempt history (attempts.go)

	mu         sync.RWMutex
	sinks      map[string]*sinkRunner
	runCtx     context.Context // set while Run runs: runners started later use it
	deliverCtx context.Context
}

// NewDispatcher wires the store, router and sinks. Every sink the router can name must be given.
func NewDispatcher(store Store, router *Router, sinks []SinkSpec, opts DispatcherOptions) *Dispatcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HoldBackAt <= 0 {
		opts.HoldBackAt = defaultHoldBackAt
	}
	d := &Dispatcher{store: store, log: opts.Logger, opts: opts, now: opts.Now, sinks: map[string]*sinkRunner{}}
	d.router.Store(router)
	if l, ok := store.(AttemptLog); ok {
		d.attempts = newAttemptRecorder(l, opts.Logger)
	}
	for _, s := range sinks {
		d.sinks[s.Sink.Name()] = d.newRunner(s)
	}
	return d
}

func (d *Dispatcher) newRunner(s SinkSpec) *sinkRunner {
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = 4
	}
	s.Retry.Defaults()
	return &sinkRunner{d: d, spec: s, queues: map[queueID]*queueState{}, wake: make(chan struct{}, 1),
		log: d.opts.Logger.With("sink", s.Sink.Name()), targets: map[string]*targetState{}}
}

// SetRouter replaces the routes; events emitted from now on use them.
func (d *Dispatcher) SetRouter(r *Router) { d.router.Store(r) }

// Router returns the routes in use.
func (d *Dispatcher) Router() *Router { return d.router.Load() }

// SetSinks makes specs the dispatcher's sinks: a sink whose Sink value is unchanged keeps
// running untouched; a new or replaced one starts (and resumes its stored queues); a
// replaced or removed one stops after its in-flight deliveries. Pending deliveries of a
// removed sink stay in the store.
func (d *Dispatcher) SetSinks(ctx context.Context, specs []SinkSpec) error {
	d.mu.Lock()
	want := map[string]SinkSpec{}
	for _, s := range specs {
		s = d.newRunner(s).spec // with defaults, to compare like with like
		want[s.Sink.Name()] = s
	}
	var stop []*sinkRunner
	var started []string
	for name, r := range d.sinks {
		if s, ok := want[name]; !ok || s.Sink != r.spec.Sink || s.MaxInFlight != r.spec.MaxInFlight || s.Retry != r.spec.Retry {
			stop = append(stop, r)
			delete(d.sinks, name)
		}
	}
	for name, s := range want {
		if _, ok := d.sinks[name]; ok {
			continue
		}
		r := d.newRunner(s)
		d.sinks[name] = r
		started = append(started, name)
		if d.runCtx != nil {
			r.start(d.runCtx, d.deliverCtx)
		}
	}
	running := d.runCtx != nil
	d.mu.Unlock()
	for _, r := range stop {
		r.stop(d.opts.Grace)
	}
	if !running || len(started) == 0 {
		return nil
	}
	return d.resume(ctx, started...)
}

// Emit routes the events and appends them to the store with their targets in one durable
// commit. Events seen before (same id) are not stored or delivered again. It implements
// Emitter.
func (d *Dispatcher) Emit(ctx context.Context, events ...Event) error {
	recs := make([]Record, 0, len(events))
	router := d.router.Load()
	for _, e := range events {
		if ts := router.Targets(e); len(ts) > 0 {
			recs = append(recs, Record{Event: e, Targets: ts})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	d.backlog.gate.RLock()
	defer d.backlog.gate.RUnlock()
	now := d.now()
	stored, err := d.store.Append(ctx, recs)
	if err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	for _, r := range stored {
		for _, t := range r.Targets {
			q := Queue{Target: t, Discussion: r.Event.Discussion.ID}
			d.backlog.added(q, 1, now)
			d.notify(q)
		}
	}
	return nil
}

// notify tells the sink's runner that a queue has work.
func (d *Dispatcher) notify(q Queue) {
	d.mu.RLock()
	r, ok := d.sinks[q.Target.Sink]
	d.mu.RUnlock()
	if ok {
		r.schedule(q, false)
	}
}

// resume schedules every queue the store has pending work for, of the named sinks (all when
// none are named).
func (d *Dispatcher) resume(ctx context.Context, sinks ...string) error {
	qs, err := d.store.Queues(ctx)
	if err != nil {
		return fmt.Errorf("list pending queues: %w", err)
	}
	n, orphaned := 0, map[string]bool{}
	for _, q := range qs {
		if len(sinks) > 0 && !slices.Contains(sinks, q.Target.Sink) {
			continue
		}
		d.mu.RLock()
		_, ok := d.sinks[q.Target.Sink]
		d.mu.RUnlock()
		if !ok {
			if !orphaned[q.Target.Sink] {
				orphaned[q.Target.Sink] = true
				d.log.Warn("pending deliveries for a sink that is not configured; they stay in the store", "sink", q.Target.Sink)
			}
			continue
		}
		d.notify(q)
		n++
	}
	if n > 0 {
		d.log.Info("resuming pending deliveries", "queues", n)
	}
	return nil
}

// Run delivers until ctx ends, then lets in-flight deliveries finish for the grace period
// and returns. Undelivered events stay in the store for the next start.
func (d *Dispatcher) Run(ctx context.Context) error {
	deliverCtx, cancelDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliveries()
	if d.attempts != nil {
		// The history writer outlives the deliveries, to write the last of their attempts.
		histCtx, stopHistory := context.WithCancel(context.WithoutCancel(ctx))
		var histWG sync.WaitGroup
		histWG.Go(func() { d.attempts.run(histCtx) })
		defer histWG.Wait()
		defer stopHistory()
	}
	if err := d.countBacklog(ctx); err != nil {
		// Only the backlog metrics suffer: they count from zero.
		d.log.Error("count pending deliveries", "err", err)
	}
	d.mu.Lock()
	d.runCtx, d.deliverCtx = ctx, deliverCtx
	for _, r := range d.sinks {
		r.start(ctx, deliverCtx)
	}
	d.mu.Unlock()
	// A resume cut short by ctx ending is no failure, and the workers already started still
	// get their grace period below.
	if err := d.resume(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	<-ctx.Done()
	d.mu.Lock()
	runners := make([]*sinkRunner, 0, len(d.sinks))
	for _, r := range d.sinks {
		runners = append(runners, r)
	}
	d.runCtx = nil
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, r := range runners {
			r.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d.opts.Grace):
		d.log.Warn("grace period over; cancelling in-flight deliveries (they will be retried on the next start)", "grace", d.opts.Grace)
		cancelDeliveries()
		<-done
	}
	for _, r := range runners {
		r.stopTimers()
	}
	return nil
}

type queueID struct {
	target     string
	discussion string
}

func idOf(q Queue) queueID { return queueID{q.Target.Key(), q.Discussion} }

// queueState is the in-memory view of one queue; the deliveries themselves stay in the store,
// so memory grows with the number of active queues, never with the backlog.
type queueState struct {
	q         Queue
	scheduled bool        // in the ready list or being worked on
	dirty     bool        // new work arrived while being worked on
	timer     *time.Timer // waiting for a retry
}

type sinkRunner struct {
	d      *Dispatcher
	spec   SinkSpec
	log    *slog.Logger
	wg     sync.WaitGroup     // its workers
	cancel context.CancelFunc // stops its workers (taking no new work)

	mu      sync.Mutex
	queues  map[queueID]*queueState
	ready   []Queue
	wake    chan struct{}           // capacity 1: "the ready list may be non-empty"
	targets map[string]*targetState // by Target.Key()
	// failingSince is when the sink's current run of failed attempts began (zero: healthy);
	// it only decides what is logged.
	failingSince time.Time
	// halted says why the whole sink is halted ("" when it is not), until haltedUntil
	// (halt.go).
	halted      string
	haltedUntil time.Time
	isHalted    atomic.Bool // halted != "", read without the lock on the delivery path
}

// start runs the runner's workers until ctx ends or stop is called.
func (r *sinkRunner) start(ctx, deliverCtx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	for range r.spec.MaxInFlight {
		r.wg.Go(func() { r.work(ctx, deliverCtx) })
	}
	if v, ok := r.spec.Sink.(Verifier); ok {
		r.wg.Go(func() { r.verify(ctx, v) })
	}
}

// stop ends the runner: in-flight deliveries finish (for up to grace, after which they are
// abandoned to be retried later — their deliveries are still pending in the store).
func (r *sinkRunner) stop(grace time.Duration) {
	if r.cancel != nil {
		r.cancel()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		r.log.Warn("sink still busy after the grace period; leaving its in-flight deliveries to finish on their own")
	}
	r.stopTimers()
}

// schedule marks q as having work. fromTimer is true when a retry wait ended.
func (r *sinkRunner) schedule(q Queue, fromTimer bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := idOf(q)
	s := r.queues[id]
	if s == nil {
		s = &queueState{q: q}
		r.queues[id] = s
	}
	switch {
	case s.scheduled:
		s.dirty = true
		return
	case s.timer != nil && !fromTimer:
		return // waiting for a retry: order forbids delivering anything newer first
	}
	s.timer = nil
	s.scheduled = true
	r.ready = append(r.ready, q)
	r.signal()
}

func (r *sinkRunner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *sinkRunner) take(ctx context.Context) (Queue, bool) {
	for ctx.Err() == nil {
		r.mu.Lock()
		if len(r.ready) > 0 {
			q := r.ready[0]
			r.ready[0] = Queue{}
			r.ready = r.ready[1:]
			if len(r.ready) > 0 {
				r.signal() // pass the wake-up on to another worker
			}
			r.mu.Unlock()
			return q, true
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-r.wake:
		}
	}
	return Queue{}, false
}

// release ends a worker's turn on q: it goes idle, waits for a retry, or goes back to the
// end of the ready list.
func (r *sinkRunner) release(q Queue, wait time.Duration, more bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := idOf(q)
	s := r.queues[id]
	switch {
	case wait > 0:
		s.scheduled, s.dirty = false, false
		s.timer = time.AfterFunc(wait, func() { r.schedule(q, true) })
	case more || s.dirty:
		s.dirty = false
		r.ready = append(r.ready, q)
		r.signal()
	default:
		delete(r.queues, id)
	}
}

func (r *sinkRunner) stopTimers() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.queues {
		if s.timer != nil {
			s.timer.Stop()
		}
	}
}

// markFailing notes a failed attempt; it reports whether the sink was healthy until now.
func (r *sinkRunner) markFailing(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.failingSince.IsZero() {
		return false
	}
	r.failingSince = now
	return true
}

// markHealthy notes a delivery; it reports since when the sink was failing, if it was.
func (r *sinkRunner) markHealthy() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := r.failingSince
	r.failingSince = time.Time{}
	return since, !since.IsZero()
}

// turn is how many deliveries one queue gets before yielding to the others.
const turn = 32

func (r *sinkRunner) work(ctx, deliverCtx context.Context) {
	var buf []Pending // the turn's deliveries, reused from turn to turn
	for {
		q, ok := r.take(ctx)
		if !ok {
			return
		}
		var wait time.Duration
		var more bool
		wait, more, buf = r.drain(ctx, deliverCtx, q, buf)
		clear(buf[:cap(buf)]) // let the events go
		r.release(q, wait, more)
	}
}

// drain delivers up to `turn` deliveries of q in order. It returns a wait when the head must
// be retried later, and more when the queue still has work.
//
// The worker owns q while it drains it: nobody else delivers, dead-letters or records an
// attempt of q's deliveries meanwhile (Replay only adds to the end). So when the store is a
// Peeker, the turn's deliveries are read at once, and each is the queue's head when its turn
// comes: what a Head before each would have read.
//
// buf is storage for the deliveries read; drain returns it for the next turn.
func (r *sinkRunner) drain(ctx, deliverCtx context.Context, q Queue, buf []Pending) (wait time.Duration, more bool, _ []Pending) {
	var next []Pending
	for i := range turn {
		if ctx.Err() != nil {
			return 0, true, buf // shutting down: leave the rest in the store
		}
		if w := r.haltWait(); w > 0 {
			return w, false, buf // the whole sink is halted (halt.go)
		}
		if len(next) == 0 {
			var err error
			if buf, err = r.d.peek(deliverCtx, q, turn-i, buf); err != nil {
				r.log.Error("read pending delivery", "discussion", q.Discussion, "err", err)
				return time.Second, false, buf
			}
			next = buf
		}
		if len(next) == 0 {
			r.d.backlog.head(q, time.Time{}, false)
			return 0, false, buf
		}
		p := next[0]
		next = next[1:]
		r.d.backlog.head(q, p.StoredAt, true)
		if now := r.d.now(); p.NextTry.After(now) {
			return p.NextTry.Sub(now), false, buf
		}
		if w := r.deliver(deliverCtx, p); w > 0 {
			return w, false, buf
		}
	}
	return 0, true, buf
}

// peek reads into buf up to n of q's oldest deliveries: with one Peek when the store can,
// else its Head alone (the drain loop reads again for the next).
func (d *Dispatcher) peek(ctx context.Context, q Queue, n int, buf []Pending) ([]Pending, error) {
	if pk, ok := d.store.(Peeker); ok {
		return pk.Peek(ctx, q, n, buf)
	}
	p, ok, err := d.store.Head(ctx, q)
	if err != nil || !ok {
		return buf[:0], err
	}
	return append(buf[:0], p), nil
}

// deliver makes one attempt and records its outcome; it returns a wait when the delivery
// stays at the head of its queue for a later retry.
func (r *sinkRunner) deliver(ctx context.Context, p Pending) time.Duration {
	d := Delivery{Event: p.Event, Target: p.Queue.Target, Attempt: p.Attempts + 1, Shared: p.Shared}
	now := r.d.now()
	if p.FirstTry.IsZero() {
		p.FirstTry = now
	}
	// Built only when a line is written: With formats its attributes at once, which cost
	// an allocation-heavy call on every delivery when almost none logs anything.
	log := func() *slog.Logger {
		return r.log.With("route", d.Target.Route, "discussion", p.Queue.Discussion, "event_id", p.Event.ID)
	}
	if reason := r.disabledReason(ctx, d.Target); reason != "" {
		out := Outcome{Delivery: d, Err: errors.New("target disabled: " + reason), Dead: true}
		r.logAttempt(p, d.Attempt, now, OutcomeDeadLetter, out.Err, time.Time{})
		if r.d.opts.Observer != nil {
			r.d.opts.Observer(out)
		}
		if err := r.d.store.DeadLetter(ctx, p, out.Err.Error()); err != nil {
			log().Error("dead-letter delivery", "err", err)
			return time.Second
		}
		r.d.backlog.removed(p.Queue)
		return 0
	}
	err := r.spec.Sink.Deliver(ctx, d)
	out := Outcome{Delivery: d, Err: err}
	defer func() {
		if r.d.opts.Observer != nil {
			r.d.opts.Observer(out)
		}
	}()
	if err == nil {
		r.logAttempt(p, d.Attempt, now, OutcomeDelivered, nil, time.Time{})
		r.unhalt()
		r.succeeded(d.Target)
		if since, was := r.markHealthy(); was {
			log().Info("sink recovered", "failing_for", r.d.now().Sub(since).Round(time.Millisecond))
		}
		// Recorded even when the grace period has just ended: the delivery did happen.
		if err := r.d.store.Done(context.WithoutCancel(ctx), p); err != nil {
			// The delivery happened; failing to record it only means a redelivery, with
			// the same webhook-id. It is still the head: the queue waits as after a failed
			// read, and delivers it again before anything newer.
			log().Error("record delivery", "err", err)
			return time.Second
		}
		r.d.backlog.removed(p.Queue)
		return 0
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return time.Second // cancelled by shutdown, not a failure of the sink
	}
	if IsHalted(err) {
		// Not this delivery's fault: no attempt counted, nothing dead-lettered.
		r.halt(err, now.Add(haltRecheck))
		out.Wait = haltRecheck
		return haltRecheck
	}
	p.Attempts++
	p.LastError = err.Error()
	reason := ""
	since := r.failing(d.Target, p.FirstTry, now)
	switch wait, after := RetryAfterOf(err); {
	case IsGone(err):
		reason = "target gone: " + err.Error()
		r.disable(ctx, d.Target, reason)
	case IsPermanent(err):
		reason = "permanent failure: " + err.Error()
	case now.Sub(since) >= r.spec.Retry.DisableAfter.D():
		reason = fmt.Sprintf("target failing continuously since %s: %v", since.UTC().Format(time.RFC3339), err)
		r.disable(ctx, d.Target, reason)
	case now.Sub(p.FirstTry) >= r.spec.Retry.MaxAge.D():
		reason = fmt.Sprintf("gave up after %d attempts over %s: %v", p.Attempts, now.Sub(p.FirstTry).Round(time.Second), err)
	default:
		if !after {
			wait = r.spec.Retry.wait(p.Attempts)
		}
		p.NextTry = now.Add(wait)
		out.Wait = wait
		switch {
		case after:
			// The far side asked for a pause (a 429, a paced Slack channel): expected flow
			// control, not a failing sink.
			log().Debug("delivery paused", "err", err, "retry_in", wait.Round(time.Millisecond))
		case r.markFailing(now):
			// One line when the sink starts failing, not one per queue and retry.
			log().Warn("sink failing; deliveries are kept and retried", "err", err, "retry_in", wait.Round(time.Millisecond))
		default:
			log().Debug("delivery failed", "attempt", p.Attempts, "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		r.logAttempt(p, d.Attempt, now, OutcomeRetry, err, p.NextTry)
		if serr := r.d.store.Attempted(ctx, p); serr != nil {
			log().Error("record failed attempt", "err", serr)
		}
		return max(wait, time.Millisecond)
	}
	out.Dead = true
	r.logAttempt(p, d.Attempt, now, OutcomeDeadLetter, err, time.Time{})
	log().Error("delivery dead-lettered", "attempts", p.Attempts, "reason", reason)
	if err := r.d.store.DeadLetter(ctx, p, reason); err != nil {
		log().Error("dead-letter delivery", "err", err)
		return time.Second
	}
	r.d.backlog.removed(p.Queue)
	return 0
}

// Replay moves matching dead letters back into their queues, re-enables their targets if
// they were disabled, and schedules them.
func (d *Dispatcher) Replay(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	d.backlog.gate.RLock()
	dls, err := d.store.Replay(ctx, f)
	if err != nil {
		d.backlog.gate.RUnlock()
		return nil, err
	}
	for _, dl := range dls {
		d.backlog.added(dl.Pending.Queue, 1, time.Time{}) // the head's time is read when it is delivered
	}
	d.backlog.gate.RUnlock()
	if err := EnableTargets(ctx, d.store, dls); err != nil {
		return dls, err
	}
	for _, dl := range dls {
		d.mu.RLock()
		r, ok := d.sinks[dl.Pending.Queue.Target.Sink]
		d.mu.RUnlock()
		if ok {
			r.enabled(dl.Pending.Queue.Target)
		}
		d.notify(dl.Pending.Queue)
	}
	return dls, nil
}
