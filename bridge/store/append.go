package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// Append stores each new record's event and one pending delivery per target, all in one
// durable commit, and returns the records it stored, in order. A record whose event ID is
// already known (until Prune forgets it) is skipped, also when the ID repeats within recs.
// A target repeated within a record is kept once: delivering the same event twice to the
// same target has no use. Concurrent calls share commits.
func (s *Bolt) Append(ctx context.Context, recs []bridge.Record) ([]bridge.Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	// Encode before queueing, so that the shared commit does not wait for it.
	for _, r := range recs {
		if r.Event.ID == "" {
			return nil, errors.New("store: append: event without an id")
		}
	}
	bodies := make([]*[]byte, len(recs))
	// bbolt keeps a value until its transaction ends, and no longer: the buffers go back
	// once the commit is over, whatever its outcome.
	defer func() {
		for _, bp := range bodies {
			putBodyBuf(bp)
		}
	}()
	var scratch []byte
	for i, r := range recs {
		// The reference count goes in front; appendOne fills it in.
		if cap(scratch) == 0 {
			scratch = make([]byte, 0, eventSizeHint(&r.Event))
		}
		bp := bodyBufs.Get().(*[]byte)
		*bp, scratch = appendEventBody(append((*bp)[:0], 0, 0, 0, 0), scratch, &r.Event)
		bodies[i] = bp
	}
	now := stamp(s.now())
	var stored []bridge.Record
	err := s.update(ctx, func(tx *bolt.Tx) error {
		stored = stored[:0]
		for i, r := range recs {
			rec, ok, err := s.appendOne(tx, r, *bodies[i], now)
			if err != nil {
				return fmt.Errorf("event %s: %w", r.Event.ID, err)
			}
			if ok {
				stored = append(stored, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append: %w", err)
	}
	return stored, nil
}

// appendOne writes one record in tx unless its event ID is known, and caches a copy of its
// event for Head if there is room. body is the event's binary form behind 4 bytes that
// appendOne fills with the reference count.
func (s *Bolt) appendOne(tx *bolt.Tx, r bridge.Record, body []byte, now []byte) (bridge.Record, bool, error) {
	ids, events := tx.Bucket(bucketIDs), tx.Bucket(bucketEvents)
	// These keys only grow at the end (of the bucket, or of a queue's range), so pages
	// that split are not written to again: fill them instead of leaving them half empty.
	// (FillPercent is per transaction; ids, merged in later, keep the default.)
	events.FillPercent = 0.9
	tx.Bucket(bucketStored).FillPercent = 0.9
	var idBuf [80]byte // event IDs are short hashes: their bytes on the stack, as Get does not keep them
	id := append(idBuf[:0], r.Event.ID...)
	if _, ok := s.recent.find(ids, id); ok {
		return r, false, nil
	}
	seq, err := events.NextSequence()
	if err != nil {
		return r, false, err
	}
	k := seqKey(seq)
	// The ID goes to ids later, with many others (ids.go); until then the age index and
	// memory know it.
	if err := tx.Bucket(bucketStored).Put(k, concat(now, id)); err != nil {
		return r, false, err
	}
	e := idEntry{seq: seq}
	copy(e.at[:], now)
	s.recent.add(r.Event.ID, e)
	r.Targets = bridge.UniqueTargets(r.Targets)
	if len(r.Targets) == 0 {
		return r, true, nil // remembered for dedupe; nobody needs the body
	}
	binary.BigEndian.PutUint32(body, uint32(len(r.Targets)))
	if err := events.Put(k, body); err != nil {
		return r, false, err
	}
	s.cacheInTx(seq, &r.Event, unstamp(now))
	pending := tx.Bucket(bucketPending)
	pending.FillPercent = 0.9
	for i, t := range r.Targets {
		d := delivery{Target: t, Discussion: r.Event.Discussion.ID, Index: uint32(i)}
		v, err := encodePending(seq, d)
		if err != nil {
			return r, false, err
		}
		if err := pending.Put(pendingKey(d.queue(), seq), v); err != nil {
			return r, false, err
		}
	}
	return r, true, nil
}

// bodyBufs holds the buffers Append encodes event bodies into (*[]byte, so that Put does
// not allocate): they were 7 % of the bytes a burst allocated.
var bodyBufs = sync.Pool{New: func() any { return new([]byte) }}

// putBodyBuf returns a body buffer to bodyBufs unless it grew for an unusually large event.
func putBodyBuf(bp *[]byte) {
	if bp != nil && cap(*bp) <= 64<<10 {
		bodyBufs.Put(bp)
	}
}

// concat returns a new slice holding a then b.
func concat(a, b []byte) []byte { return append(append(make([]byte, 0, len(a)+len(b)), a...), b...) }
