package kinetic

import (
	"context"
	"sync"
	"time"
)

// firstsKey is where the first-start mark is kept among the checkpoints ('~' cannot begin a
// discussion id, see watermarkKey).
const firstsKey = "~firsts"

// firstStarts is the first-start mark: since when discussions of this source have been
// wanted without a checkpoint of their own.
//
// A discussion without a checkpoint starts from "now" (catchUpOnce): history is not
// replayed. Its first checkpoint is stored when its first catch-up ends. A process that
// stops before that — killed, or a replica losing the lead a moment after it started —
// used to leave nothing saying it had started, so the next process (or the next leader)
// took its own "now", later, and skipped what was posted in between, which the first had
// been there to deliver. The mark closes that window: written durably before the first
// subscribe of a round of discussions without checkpoints, read back by the next start
// while it is pending, and cleared once each of those discussions has a checkpoint, or is
// refused or no longer wanted. A discussion's "now" is the mark when the mark is older.
//
// The mark is kept while any of its discussions has no checkpoint: one whose first catch-up
// never succeeds keeps it, and a discussion added at a later start then replays from the
// mark too — more delivered, never less.
//
// Each Run has its own (in its fleet): a new leader's Run reads what the last left.
type firstStarts struct {
	s *Source

	mu    sync.Mutex // held across the store's writes: a clear must not overtake a newer mark
	since time.Time  // the pending mark; zero when none
	open  int        // workers of the mark's round that may still have no checkpoint
}

// load reads the mark an earlier start left pending, retrying until ctx is done (false).
func (f *firstStarts) load(ctx context.Context) bool {
	s := f.s
	logged := false
	b := s.backoff(s.t.catchUpFirst, s.t.catchUpMax)
	for {
		cp, ok, err := s.cps.Checkpoint(ctx, s.name, firstsKey)
		if err == nil {
			f.mu.Lock()
			if ok && !cp.CreatedAt.IsZero() {
				f.since = cp.CreatedAt
				s.log.Warn("kinetic: an earlier start ended before every discussion had a checkpoint; those without one catch up from then",
					"since", cp.CreatedAt.UTC().Format(time.RFC3339))
			}
			f.mu.Unlock()
			return true
		}
		if !logged {
			s.log.Error("kinetic: cannot read the first-start mark", "error", err)
			logged = true
		}
		if !sleep(ctx, b.NextBackOff()) {
			return false
		}
	}
}

// begin counts n new workers, which may have no checkpoint, and stores a mark unless one is
// pending. It runs before their subscribes are sent. A failure to store it is logged: those
// discussions then start from their own "now", as before the mark existed.
func (f *firstStarts) begin(ctx context.Context, n int) {
	if n == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open += n
	if !f.since.IsZero() {
		return
	}
	f.since = time.Now()
	if err := f.s.cps.SetCheckpoint(ctx, f.s.name, firstsKey, Checkpoint{CreatedAt: f.since}); err != nil && ctx.Err() == nil {
		f.s.bad.warn("firsts", "kinetic: cannot store the first-start mark", "error", err)
	}
}

// mark returns the pending mark (zero when none).
func (f *firstStarts) mark() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.since
}

// settled counts a worker of the round off: it has a checkpoint, or was refused or stopped.
// The last one clears the mark.
func (f *firstStarts) settled(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open--
	if f.open > 0 || f.since.IsZero() {
		return
	}
	f.open = 0
	f.since = time.Time{}
	if err := f.s.cps.SetCheckpoint(ctx, f.s.name, firstsKey, Checkpoint{}); err != nil && ctx.Err() == nil {
		f.s.bad.warn("firsts", "kinetic: cannot clear the first-start mark", "error", err)
	}
}
