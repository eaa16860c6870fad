package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// AttemptDetail is implemented by sink errors that know what the far side answered, so
// that the attempt history can show it without parsing error text. errors.As finds it
// anywhere in the chain.
type AttemptDetail interface {
	error
	// AttemptStatus is the HTTP status ("503") or the Slack error code ("channel_not_found").
	AttemptStatus() string
	// AttemptResponse is the start (at most 1 KiB) of the answer's body, redacted; "" if none.
	AttemptResponse() string
}

// MaxAttemptResponse is the most of a response an attempt record keeps.
const MaxAttemptResponse = 1024

// Attempt history buffering: records wait in memory and are written by one goroutine every
// attemptFlush or once attemptBatch are waiting; beyond attemptBuffer waiting the oldest are
// dropped (and counted), so a slow or failing history write never holds up a delivery.
//
// A write costs mostly the index pages it touches (an event's entries land anywhere in the
// index), nearly as many for 512 records as for 4,096: in a burst, batches of 4,096 wrote
// the same history for a fraction of the CPU that batches of 512 took (docs/performance.md).
const (
	attemptFlush  = time.Second
	attemptBatch  = 4096
	attemptBuffer = 16384
)

// attemptRecorder writes the attempt history behind the deliveries.
type attemptRecorder struct {
	log     AttemptLog
	logger  *slog.Logger
	flushed func() // tests: called after each flush; may be nil

	mu      sync.Mutex
	buf     []AttemptRecord
	spare   []AttemptRecord // the previous batch's array, for the next batch: no regrowing
	kick    chan struct{}
	dropped atomic.Uint64
	written atomic.Uint64
}

func newAttemptRecorder(l AttemptLog, logger *slog.Logger) *attemptRecorder {
	return &attemptRecorder{log: l, logger: logger, kick: make(chan struct{}, 1)}
}

// add queues rec; it never blocks on the store.
func (a *attemptRecorder) add(rec AttemptRecord) {
	a.mu.Lock()
	if len(a.buf) >= attemptBuffer {
		// Drop the oldest eighth at once, so that a store that has fallen behind costs
		// a copy every attemptBuffer/8 attempts, not one per attempt.
		n := copy(a.buf, a.buf[attemptBuffer/8:])
		clear(a.buf[n:])
		a.buf = a.buf[:n]
		a.dropped.Add(attemptBuffer / 8)
	}
	a.buf = append(a.buf, rec)
	full := len(a.buf) >= attemptBatch
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// run flushes until ctx ends, then flushes what is left once more.
func (a *attemptRecorder) run(ctx context.Context) {
	t := time.NewTicker(attemptFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.flush()
			return
		case <-t.C:
		case <-a.kick:
		}
		a.flush()
	}
}

func (a *attemptRecorder) flush() {
	a.mu.Lock()
	batch := a.buf
	a.buf, a.spare = a.spare[:0], nil
	a.mu.Unlock()
	defer func() {
		clear(batch) // LogAttempts keeps nothing of it
		a.mu.Lock()
		a.spare = batch[:0]
		a.mu.Unlock()
	}()
	if len(batch) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.log.LogAttempts(ctx, batch)
		cancel()
		if err != nil {
			a.dropped.Add(uint64(len(batch)))
			a.logger.Warn("attempt history not written; only the history is lost, not a delivery", "records", len(batch), "err", err)
		} else {
			a.written.Add(uint64(len(batch)))
		}
	}
	if a.flushed != nil {
		a.flushed()
	}
}

// AttemptHistory is how the attempt history is being kept.
type AttemptHistory struct {
	Enabled    bool   // the store keeps attempt history (it is an AttemptLog)
	FailedOnly bool   // only attempts that did not deliver are kept (FailedAttemptsOnly)
	Written    uint64 // records written since the dispatcher was made
	Dropped    uint64 // records lost: the buffer overflowed or a write failed
}

// AttemptHistory reports how the attempt history is being kept.
func (d *Dispatcher) AttemptHistory() AttemptHistory {
	if d.attempts == nil {
		return AttemptHistory{}
	}
	return AttemptHistory{Enabled: true, FailedOnly: d.opts.FailedAttemptsOnly,
		Written: d.attempts.written.Load(), Dropped: d.attempts.dropped.Load()}
}

// logAttempt queues the history record of one attempt, if the store keeps history.
func (r *sinkRunner) logAttempt(p Pending, attempt int, start time.Time, outcome string, err error, next time.Time) {
	a := r.d.attempts
	if a == nil || outcome == OutcomeDelivered && r.d.opts.FailedAttemptsOnly {
		return
	}
	rec := AttemptRecord{Seq: p.Seq, Queue: p.Queue, EventID: p.Event.ID, EventType: p.Event.Type, Attempt: attempt,
		At: start, Latency: r.d.now().Sub(start), Outcome: outcome, NextTry: next}
	if err != nil {
		rec.Error = err.Error()
		if det, ok := errors.AsType[AttemptDetail](err); ok {
			rec.Status = det.AttemptStatus()
			rec.Response = truncateUTF8(det.AttemptResponse(), MaxAttemptResponse)
		}
	}
	a.add(rec)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
