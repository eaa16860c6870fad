package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneChunk bounds the work of one Prune transaction, so that pruning a large backlog of
// IDs never holds up Append and Done for long: each chunk is its own short commit.
const pruneChunk = 4096

// Prune forgets the event IDs stored before the cut-off whose deliveries are all finished
// (no pending delivery, no dead letter), so that those events would be accepted again, and
// returns how many it forgot. Event bodies are not its concern: they go as soon as nothing
// needs them (see Done).
//
// Prune reads the age index from its oldest end and stops at the first entry that is new
// enough, so its cost follows what it deletes plus what is still in flight, not the size of
// the whole index. If the clock stepped back, some IDs are forgotten one Prune later, never
// earlier. The pages it frees are reused by later writes (see the package doc on disk space).
// ctx is checked between chunks.
func (s *Bolt) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	var from []byte
	for {
		var n int
		var next []byte
		err := s.update(ctx, func(tx *bolt.Tx) error {
			var err error
			n, next, err = pruneSome(tx, s.recent, from, before)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: prune: %w", err)
		}
		total += n
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// pruneSome prunes up to pruneChunk IDs, starting at the age-index key from (nil: the
// oldest). It returns where to go on, or nil when it reached the end or an entry too new.
func pruneSome(tx *bolt.Tx, recent *recentIDs, from []byte, before time.Time) (n int, next []byte, err error) {
	storedB, ids, events := tx.Bucket(bucketStored), tx.Bucket(bucketIDs), tx.Bucket(bucketEvents)
	type victim struct{ seqKey, id []byte }
	var victims []victim
	c := storedB.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	scanned := 0
	for ; k != nil; k, v = c.Next() {
		if len(victims) == pruneChunk || scanned == 4*pruneChunk {
			next = bytes.Clone(k)
			break
		}
		scanned++
		if len(v) < 8 {
			return 0, nil, fmt.Errorf("malformed age-index entry %x", k)
		}
		if !unstamp(v[:8]).Before(before) {
			break
		}
		if events.Get(k) != nil {
			continue // still pending or dead: keep it deduplicated
		}
		victims = append(victims, victim{bytes.Clone(k), bytes.Clone(v[8:])})
	}
	// Delete after the walk: deleting under a bbolt cursor can make it skip entries.
	for _, vi := range victims {
		// An ID is only ever stored once, but check it still points here to be safe. It
		// may be in memory, not merged into ids yet (ids.go), or in both after a crash.
		seq := binary.BigEndian.Uint64(vi.seqKey)
		recent.forget(vi.id, seq)
		if sameID(ids.Get(vi.id), seq) {
			if err := ids.Delete(vi.id); err != nil {
				return 0, nil, err
			}
		}
		if err := storedB.Delete(vi.seqKey); err != nil {
			return 0, nil, err
		}
	}
	return len(victims), next, nil
}
