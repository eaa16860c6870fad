package store

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxGroup caps how many writes share one transaction, so that one commit (and the memory
// of its dirty pages) stays small even when many writers queue up behind a slow disk.
const maxGroup = 128

// doneDelay is how long Done calls wait for a write to share their commit with. In a burst
// most commits would otherwise carry only Done calls, one fsync each; waiting lets them ride
// on the next Append instead. It is also the longest a Done stays uncommitted (see Done).
const doneDelay = 20 * time.Millisecond

// write is one caller's share of a group commit.
type write struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction shared with the writes of other goroutines that are
// waiting at the same moment, and returns once that transaction is durable (fsynced).
//
// This is the group commit behind Append and the other writes. We use our own committer
// rather than bbolt's DB.Batch: Batch holds every call for MaxBatchDelay (10ms by default)
// hoping for company, which caps a lone sequential writer at ~100 commits a second and adds
// 10ms to every Emit, whereas the committer starts a commit the moment it is idle and
// merges whatever queued up during the previous one, so it adds no latency when idle and
// coalesces under load. On our test machine a lone writer of one event gets ~2,000 commits
// a second this way and ~90 with Batch (figures in bench_test.go).
//
// fn may run more than once (a second time, alone, when another write of its group failed),
// each time on a fresh transaction: it must reset any result it collects.
func (s *Bolt) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &write{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err() // not handed over: nothing was written
	}
	// Once handed over, the write happens whatever ctx does: wait so the caller learns
	// whether it is durable.
	return <-w.done
}

// commitLoop owns the single writer. It commits writes and queued Done calls together (Done
// calls alone only after doneDelay, or once doneBatch are queued), and
// stops when Close is called, after answering every write it has accepted and recording
// the last Done calls; writes cannot be accepted after it returns because s.writes is
// unbuffered.
func (s *Bolt) commitLoop() {
	defer s.wg.Done()
	group := make([]*write, 0, maxGroup)
	company := time.NewTimer(s.opts.doneDelay)
	company.Stop()
	for {
		group = group[:0]
		select {
		case w := <-s.writes:
			group = append(group, w)
		case <-s.kick:
			// Only Done calls so far. Nobody waits for them, so give a write up to
			// doneDelay to come and share the fsync, rather than paying one for them alone.
			company.Reset(s.opts.doneDelay)
			select {
			case w := <-s.writes:
				group = append(group, w)
			case <-company.C:
			case <-s.doneFull:
			case <-s.quit:
				s.commit(nil, s.takeDones())
				return
			}
			company.Stop()
		case <-s.quit:
			s.commit(nil, s.takeDones())
			return
		}
	gather:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break gather
			}
		}
		s.commit(group, s.takeDones())
		clear(group)
	}
}

// commit runs a group of writes and Done calls in one transaction. If it fails, the
// transaction is rolled back as a whole, so each write is then run on its own to get its
// own answer; failures are rare (a bug, a full disk), so the extra commits do not matter.
func (s *Bolt) commit(group []*write, dones []string) {
	later := s.takeLater()
	if len(group) == 0 && len(dones) == 0 && len(later) == 0 {
		return
	}
	step, merging := s.recent.nextStep()
	defer s.forgetDones(dones)
	rest := func(tx *bolt.Tx) error {
		// Dones first: a Done that returned before some write was made applies before it,
		// as if it had been committed at once.
		if err := s.applyDones(tx, dones); err != nil {
			return err
		}
		for _, w := range group {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	}
	err := s.runTx(func(tx *bolt.Tx) error {
		// A step of the dedupe index's merge goes first: a Prune in this group must find
		// the IDs it forgets in ids (ids.go).
		if merging {
			if err := s.recent.write(tx, step); err != nil {
				return err
			}
		}
		// Values put later go first too: a Put of the same key that is in this group was
		// made after them (Put drops the value put later that it replaces).
		if err := applyLater(tx, later); err != nil {
			return err
		}
		return rest(tx)
	})
	if merging {
		if err == nil {
			s.recent.written(step)
		} else {
			s.recent.failed(step) // written with a later commit; the retries below go without it
		}
	}
	if err != nil && len(later) > 0 {
		// Try the values put later on their own: one that cannot be written must not fail
		// every commit from now on, so it is dropped (it costs a longer catch-up at most).
		if err := s.runTx(func(tx *bolt.Tx) error { return applyLater(tx, later) }); err != nil {
			s.log.Error("store: could not write values put later; they are dropped", "values", len(later), "err", err)
		}
		err = s.runTx(rest)
	}
	s.later.Written(later)
	if err == nil {
		for _, w := range group {
			w.done <- nil
		}
		return
	}
	if len(dones) > 0 && len(group) == 0 {
		s.logLostDones(len(dones), err)
		return
	}
	if len(dones) == 0 && len(group) == 1 {
		group[0].done <- err
		return
	}
	s.log.Warn("store group commit failed; retrying its writes one by one", "writes", len(group), "dones", len(dones), "err", err)
	if len(dones) > 0 {
		if err := s.runTx(func(tx *bolt.Tx) error { return s.applyDones(tx, dones) }); err != nil {
			s.logLostDones(len(dones), err)
		}
	}
	for _, w := range group {
		w.done <- s.runTx(w.fn)
	}
}

// observed runs fn in a write transaction of db (file names it) and tells
// Options.ObserveCommit about it once it is durable.
func (s *Bolt) observed(db *bolt.DB, file string, fn func(*bolt.Tx) error) error {
	if s.opts.ObserveCommit == nil {
		return db.Update(fn)
	}
	start := time.Now()
	var last *bolt.Tx
	err := db.Update(func(tx *bolt.Tx) error {
		last = tx
		return fn(tx)
	})
	if err == nil && last != nil {
		// A committed transaction's statistics stay readable; nothing else uses it.
		st := last.Stats()
		s.opts.ObserveCommit(Commit{File: file, Took: time.Since(start), Pages: st.GetWrite()})
	}
	return err
}
