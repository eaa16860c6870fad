package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

var _ bridge.BacklogCounter = (*Bolt)(nil)

// Backlog counts the pending deliveries of every queue and reads when each queue's head was
// stored. Unlike Queues it visits every pending key (not the values), so it costs the size
// of the backlog; the dispatcher calls it once per start and counts by itself afterwards.
// Deliveries whose Done is not committed yet do not count.
func (s *Bolt) Backlog(ctx context.Context) ([]bridge.QueueBacklog, error) {
	var out []bridge.QueueBacklog
	s.doneMu.RLock()
	defer s.doneMu.RUnlock()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		var prefix []byte // of the queue being counted
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if s.doneQueued(k) {
				continue
			}
			p, _, err := splitPendingKey(k)
			if err != nil {
				return err
			}
			if prefix != nil && bytes.Equal(p, prefix) {
				out[len(out)-1].Pending++
				continue
			}
			// The first delivery of the next queue: its head.
			eventSeq, d, err := decodePending(v)
			if err != nil {
				return err
			}
			prefix = bytes.Clone(p)
			out = append(out, bridge.QueueBacklog{Queue: d.queue(), Pending: 1, OldestAt: storedAt(tx, eventSeq)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: backlog: %w", err)
	}
	return out, nil
}

// storedAt is when the event with eventSeq was stored, from the age index (kept while the
// event has pending deliveries or dead letters); zero if it is missing.
func storedAt(tx *bolt.Tx, eventSeq uint64) time.Time {
	return storedIn(tx.Bucket(bucketStored), eventSeq)
}

// storedIn is storedAt with the stored bucket open already.
func storedIn(stored *bolt.Bucket, eventSeq uint64) time.Time {
	var k [8]byte // a key that Get does not keep: on the stack
	binary.BigEndian.PutUint64(k[:], eventSeq)
	v := stored.Get(k[:])
	if len(v) < 8 {
		return time.Time{}
	}
	return unstamp(v[:8])
}
