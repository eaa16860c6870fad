package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// DeadLetter moves p from its queue to the dead letters with reason and the time of
// failure. The attempt history is taken from p (the caller's final count), and the event
// body is kept for as long as the dead letter exists. It is a no-op when p is no longer
// pending.
func (s *Bolt) DeadLetter(ctx context.Context, p bridge.Pending, reason string) error {
	key := pendingKey(p.Queue, p.Seq)
	failedAt := s.now()
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
		js, err := json.Marshal(dead{delivery: d, Seq: p.Seq, Reason: reason, FailedAt: failedAt})
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketDead).Put(deadKey(eventSeq, d.Index), js); err != nil {
			return err
		}
		// The event's reference moves from the pending entry to the dead letter: no change.
		return pending.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("store: dead-letter: %w", err)
	}
	return nil
}

// DeadLetters lists the dead letters that match f, oldest event first.
func (s *Bolt) DeadLetters(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	var out []bridge.DeadLetter
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ms, err := matching(tx, f)
		if err != nil {
			return err
		}
		out, err = letters(tx, ms)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: dead letters: %w", err)
	}
	return out, nil
}

// Replay moves the dead letters that match f to the end of their queues, with a fresh
// attempt history, and returns them as they were before the replay. Letters of one queue
// keep their relative order. A replayed delivery that fails for good again gets the same ID.
func (s *Bolt) Replay(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	var out []bridge.DeadLetter
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ms, err := matching(tx, f)
		if err != nil {
			return err
		}
		if out, err = letters(tx, ms); err != nil {
			return err
		}
		events, pending, deadB := tx.Bucket(bucketEvents), tx.Bucket(bucketPending), tx.Bucket(bucketDead)
		for _, m := range ms {
			seq, err := events.NextSequence()
			if err != nil {
				return err
			}
			d := delivery{Target: m.Target, Discussion: m.Discussion, Index: m.index}
			v, err := encodePending(m.eventSeq, d)
			if err != nil {
				return err
			}
			if err := pending.Put(pendingKey(d.queue(), seq), v); err != nil {
				return err
			}
			if err := deadB.Delete(m.key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: replay: %w", err)
	}
	return out, nil
}

// Drop deletes the dead letters that match f, and the event bodies nothing else needs.
func (s *Bolt) Drop(ctx context.Context, f bridge.DeadLetterFilter) (int, error) {
	var n int
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ms, err := matching(tx, f)
		if err != nil {
			return err
		}
		deadB := tx.Bucket(bucketDead)
		for _, m := range ms {
			if err := deadB.Delete(m.key); err != nil {
				return err
			}
			if err := s.release(tx, m.eventSeq); err != nil {
				return err
			}
		}
		n = len(ms)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: drop: %w", err)
	}
	return n, nil
}

// match is a dead letter selected by a filter.
type match struct {
	dead
	key      []byte // a copy, valid after the cursor moves
	eventSeq uint64
	index    uint32
}

// matching collects the dead letters that match f in key order (event order). IDs that do
// not name a dead letter match nothing.
func matching(tx *bolt.Tx, f bridge.DeadLetterFilter) ([]match, error) {
	b := tx.Bucket(bucketDead)
	var ms []match
	visit := func(k, v []byte) error {
		eventSeq, index, err := splitDeadKey(k)
		if err != nil {
			return err
		}
		var d dead
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode dead letter %s: %w", deadLetterID(eventSeq, index), err)
		}
		if f.Sink != "" && d.Target.Sink != f.Sink || !f.Since.IsZero() && d.FailedAt.Before(f.Since) {
			return nil
		}
		ms = append(ms, match{dead: d, key: bytes.Clone(k), eventSeq: eventSeq, index: index})
		return nil
	}
	if len(f.IDs) == 0 {
		err := b.ForEach(visit)
		return ms, err
	}
	var keys [][]byte
	for _, id := range f.IDs {
		if k, ok := parseDeadLetterID(id); ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	keys = slices.CompactFunc(keys, bytes.Equal)
	for _, k := range keys {
		if v := b.Get(k); v != nil {
			if err := visit(k, v); err != nil {
				return nil, err
			}
		}
	}
	return ms, nil
}

// letters turns matches into the interface's form, with their event bodies.
func letters(tx *bolt.Tx, ms []match) ([]bridge.DeadLetter, error) {
	events := tx.Bucket(bucketEvents)
	out := make([]bridge.DeadLetter, 0, len(ms))
	for _, m := range ms {
		e, err := loadEvent(events, m.eventSeq)
		if err != nil {
			return nil, err
		}
		out = append(out, bridge.DeadLetter{
			ID: deadLetterID(m.eventSeq, m.index),
			Pending: bridge.Pending{
				Seq: m.Seq, Queue: m.queue(), Event: e,
				Attempts: m.Attempts, FirstTry: m.FirstTry, LastError: m.LastError, NextTry: m.NextTry,
			},
			Reason:   m.Reason,
			FailedAt: m.FailedAt,
		})
	}
	return out, nil
}
