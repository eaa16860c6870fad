package kinetic

import (
	"maps"
	"sync"
	"time"
)

// Subscription states of a discussion, as Status reports them.
const (
	StateIdle         = "idle"         // not connected
	StateSubscribing  = "subscribing"  // subscribe sent, no ack yet
	StateSubscribed   = "subscribed"   // ack-ok received
	StateRefused      = "refused"      // ack-error received; retried on a slow schedule
	StateUnsubscribed = "unsubscribed" // the server ended the subscription; retried on a slow schedule
)

// Status is a snapshot of the source's health, for /readyz and metrics.
type Status struct {
	Identified  bool               // the current connection is identified
	Username    string             // the user the token was issued to
	Connects    uint64             // connections identified since Run started
	LastError   string             // the most recent failure, "" if none since the last success
	LastErrorAt time.Time          // when LastError happened
	Discussions []DiscussionStatus // in configuration order
	BadInput    map[string]uint64  // unusable frames and payloads by kind (malformed_json, unknown_event, …)
	Dropped     uint64             // live events dropped because a discussion's queue was full (messages among them are caught up)
	Emitted     uint64             // events accepted by the emitter
}

// DiscussionStatus is the state of one discussion.
type DiscussionStatus struct {
	ID         string
	Title      string
	State      string    // one of the State constants
	Error      string    // the ack-error payload when refused
	CaughtUp   bool      // the catch-up after the latest subscribe is done
	Queued     int       // live events waiting to be emitted (behind a catch-up or a refusing emitter)
	Checkpoint string    // id of the newest message handed over
	CheckedAt  time.Time // CreatedAt of that message
}

// Ready reports whether the source is identified and every discussion is subscribed and
// caught up.
func (s Status) Ready() bool {
	if !s.Identified {
		return false
	}
	for _, d := range s.Discussions {
		if d.State != StateSubscribed || !d.CaughtUp {
			return false
		}
	}
	return true
}

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
}

func newStatus(ids []string) *status {
	st := &status{order: ids, discussions: map[string]*DiscussionStatus{}, badInput: map[string]uint64{}}
	for _, id := range ids {
		st.discussions[id] = &DiscussionStatus{ID: id, State: StateIdle}
	}
	return st
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
