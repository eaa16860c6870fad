package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kdbridge/kdbridge/bridge/statecopy"
)

// Export reads the whole state in one read transaction, for `kdbridge state copy`: every
// event remembered (with its body while a delivery or dead letter needs it), the pending
// deliveries, the dead letters and every key/value namespace, with their sequence numbers.
// It is meant for a store just opened (the daemon stopped): what is still queued in memory
// for a commit (a Done, a PutLater) is not in it.
func (s *Bolt) Export(ctx context.Context) (*statecopy.Snapshot, error) {
	snap := &statecopy.Snapshot{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		err := tx.Bucket(bucketStored).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 8 {
				return fmt.Errorf("malformed stored entry %x", k)
			}
			e := statecopy.Event{Seq: binary.BigEndian.Uint64(k), ID: string(v[8:]), StoredAt: unstamp(v[:8]).UTC()}
			if body := events.Get(k); len(body) >= 4 {
				// The copy's bodies are the JSON of bridge.Event (statecopy.Event.Body):
				// schema 3 keeps new ones in its binary form.
				b, err := eventJSON(body[4:])
				if err != nil {
					return fmt.Errorf("event %d: %w", e.Seq, err)
				}
				e.Body = b
			}
			snap.Events = append(snap.Events, e)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			_, seq, err := splitPendingKey(k)
			if err != nil {
				return err
			}
			eventSeq, d, err := decodePending(v)
			if err != nil {
				return err
			}
			snap.Pending = append(snap.Pending, exported(d, seq, eventSeq))
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			eventSeq, _, err := splitDeadKey(k)
			if err != nil {
				return err
			}
			var d dead
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode dead letter %x: %w", k, err)
			}
			snap.Dead = append(snap.Dead, statecopy.Dead{Pending: exported(d.delivery, d.Seq, eventSeq), Reason: d.Reason, FailedAt: d.FailedAt})
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketKV).ForEachBucket(func(ns []byte) error {
			return tx.Bucket(bucketKV).Bucket(ns).ForEach(func(k, v []byte) error {
				if v == nil {
					return nil // a nested bucket: not a value
				}
				snap.Values = append(snap.Values, statecopy.Value{Namespace: string(ns), Key: string(k), Value: bytes.Clone(v)})
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: export: %w", err)
	}
	return snap, nil
}

func exported(d delivery, seq, eventSeq uint64) statecopy.Pending {
	return statecopy.Pending{Queue: d.queue(), Seq: seq, EventSeq: eventSeq, Index: d.Index,
		Attempts: d.Attempts, FirstTry: d.FirstTry, LastError: d.LastError, NextTry: d.NextTry}
}
