package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// delivery is what the store keeps about one delivery of an event to one target, in its
// queue and, once dead, in the dead letters. The target is kept whole (the key holds only
// Target.Key()) so that Queues can rebuild it.
type delivery struct {
	Target     bridge.Target `json:"target"`
	Discussion string        `json:"discussion"`
	Index      uint32        `json:"index"` // of the target in its record; names the dead letter
	Attempts   int           `json:"attempts,omitempty"`
	FirstTry   time.Time     `json:"first_try,omitzero"`
	LastError  string        `json:"last_error,omitempty"`
	NextTry    time.Time     `json:"next_try,omitzero"`
}

func (d delivery) queue() bridge.Queue {
	return bridge.Queue{Target: d.Target, Discussion: d.Discussion}
}

// encodePending makes a pending value: the event's seq in a fixed header, so Done can
// release the event without decoding the rest, then the delivery (binary since schema 3,
// codec.go). It cannot fail; the error is kept for the callers' sake.
func encodePending(eventSeq uint64, d delivery) ([]byte, error) {
	b := make([]byte, 8, 48+len(d.Target.Route)+len(d.Target.Sink)+len(d.Target.Channel)+len(d.Discussion)+len(d.LastError))
	binary.BigEndian.PutUint64(b, eventSeq)
	return appendDeliveryBinary(b, &d), nil
}

// decodePending decodes a pending value of any schema: the delivery is JSON before schema 3.
func decodePending(v []byte) (eventSeq uint64, d delivery, err error) {
	eventSeq, rest, err := splitEventSeq(v)
	if err != nil {
		return 0, d, err
	}
	if len(rest) > 0 && rest[0] == '{' {
		err = json.Unmarshal(rest, &d)
	} else {
		d, err = decodeDelivery(rest)
	}
	if err != nil {
		return 0, d, fmt.Errorf("decode pending delivery: %w", err)
	}
	return eventSeq, d, nil
}

// splitEventSeq reads only the header of a pending value.
func splitEventSeq(v []byte) (eventSeq uint64, rest []byte, err error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("malformed pending value %x", v)
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

// dead is a dead letter as stored.
type dead struct {
	delivery
	Seq      uint64    `json:"seq"` // the pending seq it had when it died
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failed_at"`
}

// loadEvent decodes the body of the event with seq.
func loadEvent(events *bolt.Bucket, eventSeq uint64) (bridge.Event, error) {
	var k [8]byte // a key that Get does not keep: on the stack
	binary.BigEndian.PutUint64(k[:], eventSeq)
	v := events.Get(k[:])
	if len(v) < 4 {
		return bridge.Event{}, fmt.Errorf("event %d is missing", eventSeq)
	}
	e, err := decodeEvent(v[4:])
	if err != nil {
		return e, fmt.Errorf("decode event %d: %w", eventSeq, err)
	}
	return e, nil
}

// release drops one reference to an event and deletes its body when nothing needs it any
// more, from the file and the cache. The ids entry stays, so the event is still deduplicated
// until Prune.
//
// The references left are the count in front of the body minus the count of releases in the
// released bucket. Schema 1 rewrote the body with a smaller count instead, once per target's
// Done; its files have no released entries, so their counts read the same here.
func (s *Bolt) release(tx *bolt.Tx, eventSeq uint64) error {
	return s.releaseWith(newReleaser(tx), eventSeq)
}

// releaser holds the cursors that release uses, for a transaction that releases many events
// (applyDones): a cursor's seek finds the body and then deletes it, where Get and Delete
// each made a cursor and searched the tree again.
type releaser struct {
	events   *bolt.Cursor
	released *bolt.Bucket
}

func newReleaser(tx *bolt.Tx) releaser {
	return releaser{events: tx.Bucket(bucketEvents).Cursor(), released: tx.Bucket(bucketReleased)}
}

func (s *Bolt) releaseWith(r releaser, eventSeq uint64) error {
	var kb [8]byte
	k := binary.BigEndian.AppendUint64(kb[:0], eventSeq)
	found, v := r.events.Seek(k)
	if !bytes.Equal(found, k) || len(v) < 4 {
		return nil // already gone: nothing left to release
	}
	refs := binary.BigEndian.Uint32(v)
	var n uint32
	if rv := r.released.Get(k); len(rv) == 4 {
		n = binary.BigEndian.Uint32(rv)
	}
	n++
	if n < refs {
		return r.released.Put(seqKey(eventSeq), binary.BigEndian.AppendUint32(nil, n))
	}
	s.cache.remove(eventSeq)
	if n > 1 {
		if err := r.released.Delete(k); err != nil {
			return err
		}
	}
	return r.events.Delete() // the cursor is still on the body: released is another bucket
}

// stamp encodes a time for the dedupe index.
func stamp(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

func unstamp(b []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(b))) }
