package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// maxQueuedDones bounds the Done calls held in memory between two commits; beyond it Done
// waits for the committer.
const maxQueuedDones = 8192

// commitTimeout bounds one group commit.
const commitTimeout = 30 * time.Second

// doneKey names a pending delivery.
type doneKey struct {
	queue queueKey
	seq   uint64
}

type queueKey struct{ target, discussion string }

func keyOf(p bridge.Pending) doneKey {
	return doneKey{queue: queueKey{p.Queue.Target.Key(), p.Queue.Discussion}, seq: p.Seq}
}

// dones are the Done calls not yet committed. Head, Queues and Backlog leave them out, so
// that from the moment Done returns nobody sees the delivery.
type dones struct {
	mu      sync.Mutex
	room    *sync.Cond
	queue   []doneKey
	byQueue map[queueKey]map[uint64]struct{}
	closed  bool
}

func newDones() *dones {
	d := &dones{byQueue: make(map[queueKey]map[uint64]struct{})}
	d.room = sync.NewCond(&d.mu)
	return d
}

// Done removes a delivered pending delivery and releases its event's body when nothing else
// needs it (the ID stays, for dedupe, until Prune). Done of a delivery that is no longer
// pending is a no-op.
//
// Done is the hottest write, so, as with bbolt, it does not wait for its commit: it queues
// the removal for the next group commit, which one goroutine makes as soon as the previous
// one is over, with every Done queued meanwhile and the values put later, in one round trip
// (fenced, when the store has an elector). From the moment Done returns, Head, Queues and
// Backlog no longer see the delivery. A commit that fails (PostgreSQL unreachable, this
// replica deposed) is logged and its deliveries become visible again, to be delivered once
// more: a redelivery, which the at-least-once contract allows; nothing is lost. Done fails
// at once with ErrFenced when this replica is known not to lead.
func (s *Store) Done(ctx context.Context, p bridge.Pending) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: done: %w", err)
	}
	if f := s.fence.Load(); f != nil && f.epoch.Load() == 0 {
		return fmt.Errorf("pgstore: done: %w", ErrFenced)
	}
	k := keyOf(p)
	d := s.dones
	d.mu.Lock()
	for len(d.queue) >= maxQueuedDones && !d.closed {
		d.room.Wait()
	}
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("pgstore: done: %w", ErrClosed)
	}
	seqs := d.byQueue[k.queue]
	if seqs == nil {
		seqs = make(map[uint64]struct{})
		d.byQueue[k.queue] = seqs
	}
	if _, dup := seqs[k.seq]; !dup {
		seqs[k.seq] = struct{}{}
		d.queue = append(d.queue, k)
	}
	d.mu.Unlock()
	s.kickCommitter()
	return nil
}

func (s *Store) kickCommitter() {
	select {
	case s.kick <- struct{}{}:
	default: // the committer has been told already
	}
}

// queued reports whether p's Done is queued.
func (d *dones) queued(p bridge.Pending) bool {
	k := keyOf(p)
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.byQueue[k.queue][k.seq]
	return ok
}

// of returns the queued Done calls of queue q, as sequence numbers.
func (d *dones) of(q bridge.Queue) []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	seqs := d.byQueue[queueKey{q.Target.Key(), q.Discussion}]
	out := make([]int64, 0, len(seqs))
	for seq := range seqs {
		out = append(out, int64(seq))
	}
	return out
}

// all returns every queued Done as arrays for SQL.
func (d *dones) all() (tks [][]byte, discs []string, seqs []int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for q, ss := range d.byQueue {
		for seq := range ss {
			tks, discs, seqs = append(tks, []byte(q.target)), append(discs, q.discussion), append(seqs, int64(seq))
		}
	}
	return tks, discs, seqs
}

// take hands the queued Done calls to the committer; they stay hidden until forget.
func (d *dones) take() []doneKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queue
	d.queue = nil
	d.room.Broadcast()
	return q
}

// forget makes keys visible again (their commit is over: they are gone, or they failed).
func (d *dones) forget(keys []doneKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		seqs := d.byQueue[k.queue]
		delete(seqs, k.seq)
		if len(seqs) == 0 {
			delete(d.byQueue, k.queue)
		}
	}
}

// close makes later Done calls fail and wakes those waiting for room.
func (d *dones) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.room.Broadcast()
}

// Flush commits the Done calls and values put later that are queued now, as Close does. A
// leader calls it when its term ends, while it still holds the lease, so that the
// deliveries it finished are not made again by the next leader. A commit that fails (or is
// fenced) leaves them to be delivered again, as always.
func (s *Store) Flush() { s.commit() }

// committer commits the queued Done calls and values put later until Close, then commits
// what is left, once.
func (s *Store) committer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.kick:
			s.commit()
		case <-s.quit:
			s.commit()
			return
		}
	}
}

// commit writes one group: the queued Done calls and the values put later. Commits are
// serialised, so that once a call returns every Done queued before it is committed (or
// failed): see Prune.
func (s *Store) commit() {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	keys := s.dones.take()
	later := s.later.Take()
	if len(keys) == 0 && len(later) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	b, err := s.newBatch(true)
	if err == nil {
		if len(keys) > 0 {
			tks := make([][]byte, len(keys))
			discs := make([]string, len(keys))
			seqs := make([]int64, len(keys))
			for i, k := range keys {
				tks[i], discs[i], seqs[i] = []byte(k.queue.target), k.queue.discussion, int64(k.seq)
			}
			// One statement: delete the deliveries and drop the bodies of their events that
			// nothing else needs. The UPDATE sees the table as before the DELETE, hence the
			// deleted rows are excluded by hand.
			b.Queue(`
WITH d AS (
	DELETE FROM kdbridge_pending p
	USING unnest($1::bytea[], $2::text[], $3::bigint[]) AS u(tk, d, s)
	WHERE p.target_key = u.tk AND p.discussion = u.d AND p.seq = u.s
	RETURNING p.event_seq, p.target_key, p.discussion, p.seq
)
UPDATE kdbridge_events e SET body = NULL
WHERE e.seq IN (SELECT event_seq FROM d) AND e.body IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM kdbridge_pending p WHERE p.event_seq = e.seq
		AND NOT EXISTS (SELECT 1 FROM d WHERE d.target_key = p.target_key AND d.discussion = p.discussion AND d.seq = p.seq))
	AND NOT EXISTS (SELECT 1 FROM kdbridge_dead x WHERE x.event_seq = e.seq)`, tks, discs, seqs)
		}
		putKVs(b, later)
		err = s.send(ctx, b)
	}
	// Committed or not, the deliveries are no longer hidden: gone, or to be made again.
	s.dones.forget(keys)
	if err == nil {
		s.later.Written(later)
		return
	}
	if errors.Is(err, ErrFenced) {
		// A replica that no longer leads must not write; the leader delivers them again.
		s.later.Written(later)
		s.log.Warn("pgstore: deliveries not recorded as done: this replica no longer leads; the leader makes them again",
			"deliveries", len(keys), "values", len(later))
		return
	}
	s.log.Error("pgstore: could not record deliveries as done; they will be delivered again",
		"deliveries", len(keys), "err", s.fail("done", err))
	if len(later) > 0 {
		s.log.Error("pgstore: could not write values put later; retrying with the next commit", "values", len(later))
	}
}
