package bridge

import (
	"context"
	"slices"
	"time"
)

// Store is the durable memory of the bridge: events are written before they are routed,
// deliveries are marked per target, dead letters and source checkpoints live here. The
// embedded implementation is bridge/store (bbolt); the interface lets a shared backend take
// over when several replicas run.
type Store interface {
	// Append stores each record's event and one pending delivery per target, in one durable
	// commit. An event whose ID is already known (within the retention window) is skipped:
	// Append returns only the records it stored. Order of the slice is the delivery order.
	Append(ctx context.Context, recs []Record) ([]Record, error)
	// Queues lists every (target, discussion) with pending deliveries, for resuming on start.
	Queues(ctx context.Context) ([]Queue, error)
	// Head returns the oldest pending delivery of a queue; ok is false when it is empty.
	Head(ctx context.Context, q Queue) (p Pending, ok bool, err error)
	// Done removes a delivered pending delivery.
	Done(ctx context.Context, p Pending) error
	// Attempted records a failed attempt (count, last error, next try) of a pending delivery.
	Attempted(ctx context.Context, p Pending) error
	// DeadLetter moves a pending delivery to the dead letters with the reason.
	DeadLetter(ctx context.Context, p Pending, reason string) error
	// DeadLetters lists dead letters that match f, oldest first.
	DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error)
	// Replay moves matching dead letters back to the end of their queues and returns them.
	Replay(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error)
	// Drop deletes matching dead letters and returns how many.
	Drop(ctx context.Context, f DeadLetterFilter) (int, error)
	// Get and Put a small value in a named namespace (source checkpoints, the Slack ts map).
	Get(ctx context.Context, namespace, key string) ([]byte, bool, error)
	Put(ctx context.Context, namespace, key string, value []byte) error
	// Prune forgets delivered events and dedupe entries older than before.
	Prune(ctx context.Context, before time.Time) (int, error)
	Close() error
}

// Peeker is a Store that reads several deliveries of a queue at once. Peek appends to
// buf[:0] up to n of the oldest pending deliveries of q, oldest first — what Head would
// return n times in a row were each delivery Done in between — and returns it. The dispatcher, which alone works on a queue while
// it drains it, reads a turn's deliveries with one Peek instead of one Head each (one read
// transaction, or one database round trip, instead of n).
type Peeker interface {
	Peek(ctx context.Context, q Queue, n int, buf []Pending) ([]Pending, error)
}

// Record is an event with the targets the router chose for it.
type Record struct {
	Event   Event
	Targets []Target
}

// UniqueTargets drops repeated targets (same Key), keeping the first of each: the stores'
// Append keeps one delivery per target. Records have a handful of targets, so a linear
// search beats a map.
func UniqueTargets(ts []Target) []Target {
	out := make([]Target, 0, len(ts))
	for _, t := range ts {
		if !slices.ContainsFunc(out, func(o Target) bool { return o.Key() == t.Key() }) {
			out = append(out, t)
		}
	}
	return out
}

// Queue names one ordered delivery queue: a target and a discussion.
type Queue struct {
	Target     Target
	Discussion string
}

// Pending is one delivery waiting in a queue.
type Pending struct {
	Seq       uint64 // store order; increases with Append order
	Queue     Queue
	Event     Event
	Attempts  int       // failed attempts so far
	FirstTry  time.Time // zero until the first attempt
	LastError string
	NextTry   time.Time // zero: now
	// StoredAt is when the event was stored (for metrics: the age of a queue's head); zero
	// when the store does not say.
	StoredAt time.Time
	// Shared, if not nil, is shared by the deliveries of Event to its other targets.
	Shared *Shared
}

// QueueBacklog is what a store holds pending for one queue.
type QueueBacklog struct {
	Queue    Queue
	Pending  int       // deliveries waiting
	OldestAt time.Time // when the event of the head was stored
}

// BacklogCounter is a Store that can count its pending deliveries. The dispatcher asks once,
// when Run starts, and keeps the numbers itself from then on, so that reading them (each
// metrics scrape) never touches the store. It may cost a pass over every pending delivery.
type BacklogCounter interface {
	Backlog(ctx context.Context) ([]QueueBacklog, error)
}

// DeadLetter is a delivery that will not be retried until an operator replays it.
type DeadLetter struct {
	ID       string // stable, usable on the command line
	Pending  Pending
	Reason   string
	FailedAt time.Time
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	IDs   []string
	Sink  string
	Since time.Time
}

// AttemptLog is a Store that keeps a bounded history of delivery attempts, so that an
// operator (the console) can see what happened to a delivery after restarts. It is history,
// not bookkeeping: the dispatcher writes it in batches behind the deliveries, and losing the
// last batch in a crash loses only history, never a delivery.
type AttemptLog interface {
	// LogAttempts stores attempts; each is kept until PruneAttempts removes it.
	LogAttempts(ctx context.Context, recs []AttemptRecord) error
	// Attempts returns the attempts that match f, newest first, at most f.Limit of them.
	Attempts(ctx context.Context, f AttemptFilter) ([]AttemptRecord, error)
	// PruneAttempts forgets attempts made before before and returns how many.
	PruneAttempts(ctx context.Context, before time.Time) (int, error)
}

// Outcomes of an attempt.
const (
	OutcomeDelivered  = "delivered"   // the far side took it
	OutcomeRetry      = "retry"       // failed; another try is scheduled (NextTry)
	OutcomeDeadLetter = "dead_letter" // failed for good; moved to the dead letters
)

// AttemptRecord is one try of one delivery.
type AttemptRecord struct {
	Seq        uint64 // the pending delivery's store sequence
	Queue      Queue
	EventID    string
	EventType  string
	Attempt    int       // 1 for the first try
	At         time.Time // when the try started
	Latency    time.Duration
	Outcome    string // one of the Outcome constants
	Status     string // HTTP status ("503") or Slack error ("channel_not_found"); "" if none
	Error      string // the error, redacted as in logs; "" when delivered
	Response   string // first 1 KiB of the far side's answer, if any
	NextTry    time.Time
	DeadLetter string // the dead letter's ID when Outcome is OutcomeDeadLetter
}

// AttemptFilter selects attempts; zero fields match everything.
type AttemptFilter struct {
	Discussion string
	EventID    string
	Sink       string
	Outcome    string
	Since      time.Time
	Until      time.Time
	Limit      int // 0: 100
}
