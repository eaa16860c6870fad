package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// doneBatch bounds the Done calls (and values put later) committed together.
const doneBatch = 512

// commitTimeout bounds one group commit.
const commitTimeout = 30 * time.Second

type doneReq struct {
	p   bridge.Pending
	res chan error
}

// Done removes a delivered pending delivery and releases its event's body when nothing else
// needs it (the ID stays, for dedupe, until Prune). Done of a delivery that is no longer
// pending is a no-op.
//
// Done is the hottest write, so concurrent calls share one transaction (group commit): a
// single goroutine takes every Done queued while the previous commit ran and commits them,
// with the values put later, in one round trip-ish transaction. Done returns once its
// removal is committed.
func (s *Store) Done(ctx context.Context, p bridge.Pending) error {
	r := &doneReq{p: p, res: make(chan error, 1)}
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return fmt.Errorf("pgstore: done: %w", ErrClosed)
	}
	// The committer drains the channel, so this send waits at most one commit; holding
	// closeMu keeps Close from stopping the committer before it takes r.
	select {
	case s.doneC <- r:
	case <-ctx.Done():
		s.closeMu.Unlock()
		return fmt.Errorf("pgstore: done: %w", ctx.Err())
	}
	s.closeMu.Unlock()
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("pgstore: done: %w", ctx.Err())
	}
}

// doneCommitter commits the queued Done calls and values put later until Close, then
// commits what is left.
func (s *Store) doneCommitter() {
	defer s.wg.Done()
	for {
		var batch []*doneReq
		select {
		case r := <-s.doneC:
			batch = append(batch, r)
		case <-s.laterKick:
		case <-s.quit:
			// Close stopped new calls: commit those queued, and the values put later, once.
			for batch = s.takeQueued(nil); len(batch) > 0; batch = s.takeQueued(nil) {
				s.commit(batch)
			}
			if s.hasLater() {
				s.commit(nil)
			}
			return
		}
		s.commit(s.takeQueued(batch))
	}
}

// takeQueued adds the Done calls waiting in the channel to batch, up to doneBatch.
func (s *Store) takeQueued(batch []*doneReq) []*doneReq {
	for len(batch) < doneBatch {
		select {
		case r := <-s.doneC:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit writes one group: the Done calls of batch and the values put later.
func (s *Store) commit(batch []*doneReq) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	later := s.takeLater()
	if len(batch) == 0 && len(later) == 0 {
		return
	}
	b, err := s.newBatch(true)
	if err == nil {
		if len(batch) > 0 {
			tks := make([][]byte, len(batch))
			discs := make([]string, len(batch))
			seqs := make([]int64, len(batch))
			for i, r := range batch {
				tks[i], discs[i], seqs[i] = []byte(r.p.Queue.Target.Key()), r.p.Queue.Discussion, int64(r.p.Seq)
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
	if err != nil {
		if len(later) > 0 {
			if errors.Is(err, ErrFenced) {
				// A replica that no longer leads must not write them; the leader has its own.
				s.laterWritten(later)
				s.log.Warn("pgstore: values put later dropped: this replica no longer leads", "values", len(later))
			} else {
				s.log.Error("pgstore: could not write values put later; retrying with the next commit", "values", len(later), "err", err)
			}
		}
		if len(batch) > 0 && !errors.Is(err, ErrFenced) {
			s.log.Error("pgstore: could not record deliveries as done", "deliveries", len(batch), "err", err)
		}
		err = s.fail("done", err)
	} else {
		s.laterWritten(later)
	}
	for _, r := range batch {
		r.res <- err
	}
}
