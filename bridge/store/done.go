package store

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// maxQueuedDones bounds the Done calls held in memory between two commits. Beyond it Done
// waits for the committer, which is then the bottleneck anyway.
const maxQueuedDones = 8192

// doneBatch is how many queued Done calls are worth a commit of their own without waiting
// for doneDelay. It also bounds the delivered entries that Head must step over at the front
// of a queue (they stay in the file until their commit), which matters when one queue is
// drained very fast.
const doneBatch = 256

// Done removes a delivered pending delivery and releases its event; the event body goes as
// soon as no delivery or dead letter needs it (its ID stays, for dedupe, until Prune). Done
// of a delivery that is no longer pending is a no-op.
//
// Done is the hottest write: every delivery ends with one, from every worker of every sink.
// So it does not wait for its commit. It returns as soon as the removal is queued for the
// next group commit. That commit is the next write's (an Append, usually), or, when no write
// comes within doneDelay (20ms) or once doneBatch (256) Done calls are queued, one of their
// own: Done calls alone are not worth an fsync each. From the moment Done returns, Head and
// Queues no longer see the delivery. The price: a crash (kill -9, power loss) in the window
// before that commit — up to doneDelay plus one commit — loses the Done, so the delivery is
// made again after restart, with the same event ID and so the same webhook-id: a
// redelivery, which the at-least-once contract allows. Nothing can be lost this way; only
// delivered twice.
func (s *Bolt) Done(ctx context.Context, p bridge.Pending) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: done: %w", err)
	}
	var buf [128]byte // on the stack: the key is allocated once, as a string
	key := string(binary.BigEndian.AppendUint64(appendQueuePrefix(buf[:0], p.Queue), p.Seq))
	s.doneMu.Lock()
	for len(s.doneQ) >= maxQueuedDones && !s.closed {
		s.doneRoom.Wait()
	}
	if s.closed {
		s.doneMu.Unlock()
		return fmt.Errorf("store: done: %w", ErrClosed)
	}
	if _, dup := s.doneSet[key]; !dup {
		s.doneSet[key] = struct{}{}
		s.doneQ = append(s.doneQ, key)
	}
	full := len(s.doneQ) >= doneBatch
	s.doneMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // the committer has been told already
	}
	if full {
		// Enough of them: commit now rather than after doneDelay.
		select {
		case s.doneFull <- struct{}{}:
		default:
		}
	}
	return nil
}

// takeDones hands the queued Done calls to the committer. Their keys stay in doneSet, hiding
// the deliveries from Head, until forgetDones after the commit.
func (s *Bolt) takeDones() []string {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	q := s.doneQ
	s.doneQ = nil
	s.doneRoom.Broadcast()
	return q
}

// forgetDones drops keys from doneSet once their commit is over. Readers hold doneMu
// (shared) for the whole of their read transaction, so none of them can have a snapshot
// older than the commit and miss the key in doneSet as well.
func (s *Bolt) forgetDones(keys []string) {
	if len(keys) == 0 {
		return
	}
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	for _, k := range keys {
		delete(s.doneSet, k)
	}
}

// doneQueued reports whether a pending key has an uncommitted Done. Callers hold doneMu.
func (s *Bolt) doneQueued(k []byte) bool {
	_, ok := s.doneSet[string(k)]
	return ok
}

// closeDones makes later Done calls fail and wakes those waiting for room; the committer
// records the ones already queued before it stops.
func (s *Bolt) closeDones() {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	s.closed = true
	s.doneRoom.Broadcast()
}

// applyDones removes delivered pending entries in tx.
// One cursor per bucket for all of them: each key is sought once and deleted where the
// cursor found it (Get then Delete searched the tree twice, with a new cursor each time).
func (s *Bolt) applyDones(tx *bolt.Tx, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	pending := tx.Bucket(bucketPending).Cursor()
	rel := newReleaser(tx)
	for _, k := range keys {
		found, v := pending.Seek([]byte(k))
		if string(found) != k {
			continue // dead-lettered or done meanwhile
		}
		eventSeq, _, err := splitEventSeq(v)
		if err != nil {
			return err
		}
		if err := pending.Delete(); err != nil {
			return err
		}
		if err := s.releaseWith(rel, eventSeq); err != nil {
			return err
		}
	}
	return nil
}

// logLostDones reports Done calls that could not be committed. Their deliveries become
// visible again and are made once more: the at-least-once fallback.
func (s *Bolt) logLostDones(n int, err error) {
	s.log.Error("store: could not record deliveries as done; they will be delivered again", "deliveries", n, "err", err)
}
