package kinetic

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Subscription states of a discussion, as Status reports them.
const (
	StateIdle        = "idle"        // not connected
	StateSubscribing = "subscribing" // subscribe sent, no ack yet
	StateSubscribed  = "subscribed"  // ack-ok received
	StateRefused     = "refused"     // ack-error received; retried on a slow schedule
	StateRemoved     = "removed"     // the server ended the subscription (kdbridge's user was removed); subscribed again on reload
)

// Status is a snapshot of the source's health, for /readyz and metrics.
type Status struct {
	Identified  bool               // the current connection is identified
	Username    string             // the user the token was issued to
	Connects    uint64             // connections identified since Run started
	LastError   string             // the most recent failure, "" if none since the last success
	LastErrorAt time.Time          // when LastError happened
	Discussions []DiscussionStatus // the wanted discussions: configured ones in configuration order, then discovered ones
	BadInput    map[string]uint64  // unusable frames and payloads by kind (malformed_json, unknown_event, …)
	Dropped     uint64             // live events dropped because a discussion's queue was full (messages among them are caught up)
	Emitted     uint64             // events accepted by the emitter
	Refusals    uint64             // subscribes answered with ack-error (each is retried on a slow schedule)
	Evictions   uint64             // server-initiated unsubscribes (each leaves its discussion removed)

	// CatchUpEvents counts the events emitted by REST catch-ups (they are among Emitted).
	CatchUpEvents uint64
	// CatchUpsHeldBack counts the catch-ups that waited before reading their messages
	// because every target they go to was far behind and taking deliveries (see worker.holdBack).
	CatchUpsHeldBack uint64
	// LiveWaits counts the times reading the websocket waited for the store, because live
	// events it could not yet take held the source's budget (see fleet.paceLive).
	LiveWaits uint64
	// TokenRequests counts requests to the OAuth token endpoint (the first token and every
	// renewal) by result: TokenOK, TokenRefused (credentials rejected), TokenError.
	TokenRequests map[string]uint64
	// TokenRenewsAt is when the current access token will be replaced: its expiry less a
	// safety margin (a minute for real lifetimes). Zero before the first token.
	TokenRenewsAt time.Time

	// Discovery (zero without a discover: block).
	Discovering    bool      // discovery is configured
	Discovered     int       // discussions that matched in the last successful poll (configured ones included)
	LastDiscovery  time.Time // when the last successful poll ended
	DiscoveryError string    // why the last poll failed; "" once one succeeds
}

// DiscussionStatus is the state of one discussion.
type DiscussionStatus struct {
	ID         string
	Title      string
	State      string    // one of the State constants
	Error      string    // the ack-error payload when refused
	CaughtUp   bool      // the catch-up after the latest subscribe is done
	HeldBack   bool      // that catch-up was held back until the sinks it goes to, far behind, deliver more (worker.holdBack), and has not ended; counts as caught up for Ready
	Queued     int       // live events waiting to be emitted (behind a catch-up or a refusing emitter)
	Checkpoint string    // id of the newest message handed over
	CheckedAt  time.Time // CreatedAt of that message
	Discovered bool      // wanted because discovery matched it, not (only) because it is configured
}

// Ready reports whether the source is identified, discovery (if configured) has found what
// to subscribe to, and every discussion is subscribed and caught up.
func (s Status) Ready() bool {
	if !s.Identified || (s.Discovering && s.LastDiscovery.IsZero()) {
		return false
	}
	for _, d := range s.Discussions {
		if d.State != StateSubscribed || d.CatchingUp() {
			return false
		}
	}
	return true
}

// CatchingUp reports whether the discussion's catch-up is still running: not done, and not
// held back for its sinks (which counts as caught up, see DiscussionStatus.HeldBack).
func (d DiscussionStatus) CatchingUp() bool { return !d.CaughtUp && !d.HeldBack }

// Results of token requests, as Status.TokenRequests counts them.
const (
	TokenOK      = "ok"
	TokenRefused = "refused"
	TokenError   = "error"
)

// status is the mutable state behind Status, guarded by mu.
type status struct {
	mu          sync.Mutex
	identified  bool
	connects    uint64
	lastErr     string
	lastErrAt   time.Time
	order       []string
	discussions map[string]*DiscussionStatus
	badInput    map[string]uint64
	dropped     uint64
	emitted     uint64
	refusals    uint64
	evictions   uint64
	discovered  int
	lastDisc    time.Time
	discErr     string

	catchUpEvents uint64
	heldBack      uint64
	liveWaits     uint64
}

func newStatus(ids []string) *status {
	st := &status{discussions: map[string]*DiscussionStatus{}, badInput: map[string]uint64{}}
	st.setWanted(plainWanted(ids))
	return st
}

// setWanted makes ws the discussions that Status lists. Entries of discussions no longer
// wanted stay behind the scenes until forget: the session may still be leaving them, and
// one wanted again before that keeps its state, as its subscription does.
func (st *status) setWanted(ws []wanted) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.order = make([]string, len(ws))
	for i, w := range ws {
		st.order[i] = w.id
		d := st.discussions[w.id]
		if d == nil {
			d = &DiscussionStatus{ID: w.id, State: StateIdle}
			st.discussions[w.id] = d
		}
		d.Discovered = w.discovered
	}
}

// forget drops the entry of a discussion that is not wanted (any more).
func (st *status) forget(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !slices.Contains(st.order, id) {
		delete(st.discussions, id)
	}
}

func (st *status) snapshot() Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Status{
		Identified:  st.identified,
		Connects:    st.connects,
		LastError:   st.lastErr,
		LastErrorAt: st.lastErrAt,
		BadInput:    maps.Clone(st.badInput),
		Dropped:     st.dropped,
		Emitted:     st.emitted,
		Refusals:    st.refusals,
		Evictions:   st.evictions,

		Discovered:     st.discovered,
		LastDiscovery:  st.lastDisc,
		DiscoveryError: st.discErr,

		CatchUpEvents:    st.catchUpEvents,
		CatchUpsHeldBack: st.heldBack,
		LiveWaits:        st.liveWaits,
	}
	for _, id := range st.order {
		out.Discussions = append(out.Discussions, *st.discussions[id])
	}
	return out
}

// update runs fn on a discussion's status under the lock.
func (st *status) update(id string, fn func(d *DiscussionStatus)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if d := st.discussions[id]; d != nil {
		fn(d)
	}
}

func (st *status) setError(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err == nil {
		st.lastErr = ""
		return
	}
	st.lastErr = err.Error()
	st.lastErrAt = time.Now()
}

// subscribedCaughtUp reports whether every wanted discussion that is subscribed is caught up.
func (st *status) subscribedCaughtUp() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range st.order {
		if d := st.discussions[id]; d.State == StateSubscribed && !d.CaughtUp {
			return false
		}
	}
	return true
}

// caughtUp returns how many discussions are subscribed and caught up, and the events the
// catch-ups have emitted.
func (st *status) caughtUp() (discussions int, events uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range st.order {
		if d := st.discussions[id]; d.State == StateSubscribed && d.CaughtUp {
			discussions++
		}
	}
	return discussions, st.catchUpEvents
}
