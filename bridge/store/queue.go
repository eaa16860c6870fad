package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// Queues lists every (target, discussion) that has pending deliveries. It reads one entry
// per queue and seeks past the rest, so it costs the number of queues, not of deliveries.
// Deliveries whose Done is not committed yet do not count.
func (s *Bolt) Queues(ctx context.Context) ([]bridge.Queue, error) {
	var qs []bridge.Queue
	s.doneMu.RLock()
	defer s.doneMu.RUnlock()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; {
			prefix, _, err := splitPendingKey(k)
			if err != nil {
				return err
			}
			for k != nil && bytes.HasPrefix(k, prefix) && s.doneQueued(k) {
				k, v = c.Next()
			}
			if k != nil && bytes.HasPrefix(k, prefix) {
				_, d, err := decodePending(v)
				if err != nil {
					return err
				}
				qs = append(qs, d.queue())
			}
			k, v = c.Seek(pastPrefix(prefix))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: queues: %w", err)
	}
	return qs, nil
}

// Head returns the oldest pending delivery of q with its attempt history. It costs one
// cursor seek whatever the length of the queue. A recently appended event comes from the
// cache, not decoded again, and is the same for every target: its Message and slices are
// shared, read-only (see bridge.Delivery), along with p.Shared.
func (s *Bolt) Head(ctx context.Context, q bridge.Queue) (bridge.Pending, bool, error) {
	var one [1]bridge.Pending
	ps, err := s.peek(ctx, q, 1, one[:0], "head")
	if err != nil || len(ps) == 0 {
		return bridge.Pending{}, false, err
	}
	return ps[0], true, nil
}

// Peek appends to buf[:0] up to n of the oldest pending deliveries of q, oldest first, as
// Head would return them one by one (bridge.Peeker): one read transaction and one cursor
// seek for all of them.
func (s *Bolt) Peek(ctx context.Context, q bridge.Queue, n int, buf []bridge.Pending) ([]bridge.Pending, error) {
	return s.peek(ctx, q, n, buf, "peek")
}

func (s *Bolt) peek(ctx context.Context, q bridge.Queue, n int, buf []bridge.Pending, op string) ([]bridge.Pending, error) {
	out := buf[:0]
	if n <= 0 {
		return out, nil
	}
	prefix := queuePrefix(q)
	// Held across the read transaction: see forgetDones.
	s.doneMu.RLock()
	defer s.doneMu.RUnlock()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		c := tx.Bucket(bucketPending).Cursor()
		var events, stored *bolt.Bucket // opened at the first event not cached
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < n; k, v = c.Next() {
			if s.doneQueued(k) {
				continue // delivered; its removal is in the next commit
			}
			_, seq, err := splitPendingKey(k)
			if err != nil {
				return err
			}
			eventSeq, d, err := decodePending(v)
			if err != nil {
				return err
			}
			ce, cached := s.cache.get(eventSeq)
			if !cached {
				if events == nil {
					events, stored = tx.Bucket(bucketEvents), tx.Bucket(bucketStored)
				}
				e, err := loadEvent(events, eventSeq)
				if err != nil {
					return err
				}
				ce = s.cache.addDecoded(eventSeq, e, storedIn(stored, eventSeq))
			}
			out = append(out, bridge.Pending{
				Seq: seq, Queue: q, Event: ce.event, Shared: ce.shared,
				Attempts: d.Attempts, FirstTry: d.FirstTry, LastError: d.LastError, NextTry: d.NextTry,
				StoredAt: ce.storedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// Attempted records p's attempt history (Attempts, FirstTry, LastError, NextTry) in its
// pending entry, for Head and for the next start. It is a no-op when p is no longer pending.
func (s *Bolt) Attempted(ctx context.Context, p bridge.Pending) error {
	key := pendingKey(p.Queue, p.Seq)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		pending := tx.Bucket(bucketPending)
		v := pending.Get(key)
		if v == nil {
			return nil
		}
		eventSeq, d, err := decodePending(v)
		if err != nil {
			return err
		}
		d.Attempts, d.FirstTry, d.LastError, d.NextTry = p.Attempts, p.FirstTry, p.LastError, p.NextTry
		nv, err := encodePending(eventSeq, d)
		if err != nil {
			return err
		}
		return pending.Put(key, nv)
	})
	if err != nil {
		return fmt.Errorf("store: attempted: %w", err)
	}
	return nil
}
