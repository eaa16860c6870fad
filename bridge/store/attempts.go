package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kdbridge/kdbridge/bridge"
)

// The attempt history (bridge.AttemptLog) lives in a bbolt file of its own, history.db
// (history.go), in two buckets:
//
//	attempts     stamp(at) ‖ n → AttemptRecord JSON; n is the bucket's sequence, so keys
//	             are unique and byte order is time order
//	attempt-idx  'd' ‖ uvarint(len) ‖ discussion ‖ key → empty, and for the rare outcomes
//	             (retry, dead letter) 'o' ‖ uvarint(len) ‖ outcome ‖ key → empty: the
//	             history by discussion and by failure, newest last; and
//	             'h' ‖ part ‖ key → event ID, where part is one of eventParts, from a hash
//	             of the event ID: the history by event, newest last in each part
//
// Event IDs are hashes, so an index keyed by them puts every record's entry on a page of its
// own: a batch of 4,096 records rewrote up to 4,096 index pages. Keyed by part and time, the
// entries of a batch go at the end of eventParts runs instead, and a search by event reads
// its part — a 64th of the history — comparing IDs.
//
// Before history.db, the same buckets were in kdbridge.db (added without a schema bump);
// Open moves them over. The history is written in its own transactions about once a second
// (LogAttempts), on its own file, so it never lengthens or delays an Append or a Done.
var (
	bucketAttempts   = []byte("attempts")
	bucketAttemptIdx = []byte("attempt-idx")
)

var _ bridge.AttemptLog = (*Bolt)(nil)

// attemptJSON is how an attempt is stored: short keys, zero fields left out (most attempts
// are deliveries with no status, error, response or next try).
type attemptJSON struct {
	Seq        uint64        `json:"q,omitzero"`
	Route      string        `json:"r,omitzero"`
	Sink       string        `json:"s"`
	Channel    string        `json:"c,omitzero"`
	Discussion string        `json:"d"`
	EventID    string        `json:"e"`
	EventType  string        `json:"t,omitzero"`
	Attempt    int           `json:"a"`
	At         time.Time     `json:"at"`
	Latency    time.Duration `json:"l,omitzero"`
	Outcome    string        `json:"o"`
	Status     string        `json:"st,omitzero"`
	Error      string        `json:"er,omitzero"`
	Response   string        `json:"rb,omitzero"`
	NextTry    time.Time     `json:"n,omitzero"`
	DeadLetter string        `json:"dl,omitzero"`
}

func encodeAttempt(r bridge.AttemptRecord) ([]byte, error) {
	return json.Marshal(attemptJSON{Seq: r.Seq, Route: r.Queue.Target.Route, Sink: r.Queue.Target.Sink, Channel: r.Queue.Target.Channel,
		Discussion: r.Queue.Discussion, EventID: r.EventID, EventType: r.EventType, Attempt: r.Attempt, At: r.At, Latency: r.Latency,
		Outcome: r.Outcome, Status: r.Status, Error: r.Error, Response: r.Response, NextTry: r.NextTry, DeadLetter: r.DeadLetter})
}

func decodeAttempt(k, v []byte) (bridge.AttemptRecord, error) {
	var a attemptJSON
	if err := json.Unmarshal(v, &a); err != nil {
		return bridge.AttemptRecord{}, fmt.Errorf("attempt %x: %w", k, err)
	}
	return bridge.AttemptRecord{Seq: a.Seq, Queue: bridge.Queue{Target: bridge.Target{Route: a.Route, Sink: a.Sink, Channel: a.Channel}, Discussion: a.Discussion},
		EventID: a.EventID, EventType: a.EventType, Attempt: a.Attempt, At: a.At, Latency: a.Latency, Outcome: a.Outcome, Status: a.Status,
		Error: a.Error, Response: a.Response, NextTry: a.NextTry, DeadLetter: a.DeadLetter}, nil
}

// eventParts is how many runs the event index is split into (see above).
const eventParts = 64

// eventIndexPrefix is the start of the event index run that holds eventID's entries.
func eventIndexPrefix(eventID string) []byte {
	h := fnv.New32a()
	h.Write([]byte(eventID))
	return []byte{'h', byte(h.Sum32() % eventParts)}
}

// eventIndexKey is the event index entry of the record at key.
func eventIndexKey(eventID string, key []byte) []byte {
	return append(eventIndexPrefix(eventID), key...)
}

// attemptIndexEntries are the index entries (key, value) of record r stored at key.
func attemptIndexEntries(r bridge.AttemptRecord, key []byte) [][2][]byte {
	es := [][2][]byte{{attemptIndexKey('d', r.Queue.Discussion, key), {}}, {eventIndexKey(r.EventID, key), []byte(r.EventID)}}
	if r.Outcome != bridge.OutcomeDelivered {
		es = append(es, [2][]byte{attemptIndexKey('o', r.Outcome, key), {}})
	}
	return es
}

func attemptIndexKey(kind byte, value string, key []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(value)+len(key))
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, key...)
}

// LogAttempts stores recs in one transaction of history.db: history must not lengthen or
// delay the commits deliveries wait for. The records are encoded before the transaction.
func (s *Bolt) LogAttempts(ctx context.Context, recs []bridge.AttemptRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	values := make([][]byte, len(recs))
	for i, r := range recs {
		v, err := encodeAttempt(r)
		if err != nil {
			return fmt.Errorf("store: log attempts: %w", err)
		}
		values[i] = v
	}
	err := s.hist.Update(func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bucketAttempts), tx.Bucket(bucketAttemptIdx)
		// Keys grow with time, so pages can be filled: bbolt's default of half-full pages
		// suits random inserts, not appends.
		b.FillPercent = 0.95
		for i, r := range recs {
			n, err := b.NextSequence()
			if err != nil {
				return err
			}
			k := binary.BigEndian.AppendUint64(stamp(r.At), n)
			if err := b.Put(k, values[i]); err != nil {
				return err
			}
			for _, e := range attemptIndexEntries(r, k) {
				if err := idx.Put(e[0], e[1]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: log attempts: %w", err)
	}
	return nil
}

// Attempts returns the attempts that match f, newest first. A filter on the event, the
// discussion or a failed outcome reads only that one's index entries; otherwise the history
// is read from the newest end (or from f.Until) and reading stops at f.Limit matches or
// f.Since.
func (s *Bolt) Attempts(ctx context.Context, f bridge.AttemptFilter) ([]bridge.AttemptRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []bridge.AttemptRecord
	err := s.hist.View(func(tx *bolt.Tx) error {
		out = nil
		b := tx.Bucket(bucketAttempts)
		match := func(k, v []byte) (stop bool, err error) {
			at := unstamp(k[:8])
			if !f.Until.IsZero() && !at.Before(f.Until) {
				return false, nil
			}
			if !f.Since.IsZero() && at.Before(f.Since) {
				return true, nil
			}
			r, err := decodeAttempt(k, v)
			if err != nil {
				return false, err
			}
			if (f.Discussion != "" && r.Queue.Discussion != f.Discussion) || (f.EventID != "" && r.EventID != f.EventID) ||
				(f.Sink != "" && r.Queue.Target.Sink != f.Sink) || (f.Outcome != "" && r.Outcome != f.Outcome) {
				return false, nil
			}
			out = append(out, r)
			return len(out) >= limit, nil
		}
		if f.EventID != "" {
			return eventAttempts(tx, f, match)
		}
		var prefix []byte
		switch {
		case f.Discussion != "":
			prefix = attemptIndexKey('d', f.Discussion, nil)
		case f.Outcome != "" && f.Outcome != bridge.OutcomeDelivered:
			prefix = attemptIndexKey('o', f.Outcome, nil)
		}
		if prefix == nil {
			c := b.Cursor()
			var k, v []byte
			if f.Until.IsZero() {
				k, v = c.Last()
			} else if k, v = c.Seek(stamp(f.Until)); k == nil {
				k, v = c.Last()
			}
			for ; k != nil; k, v = c.Prev() {
				if len(k) != 16 {
					return fmt.Errorf("malformed attempt key %x", k)
				}
				if stop, err := match(k, v); err != nil || stop {
					return err
				}
			}
			return nil
		}
		c := tx.Bucket(bucketAttemptIdx).Cursor()
		k, _ := seekBefore(c, pastPrefix(prefix))
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			key := k[len(prefix):]
			v := b.Get(key)
			if v == nil || len(key) != 16 {
				continue // pruned meanwhile (the index goes in the same transaction, so never)
			}
			if stop, err := match(key, v); err != nil || stop {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: attempts: %w", err)
	}
	return out, nil
}

// seekBefore puts c on the last key before seek (the last of all when none is at or after
// seek) and returns it.
func seekBefore(c *bolt.Cursor, seek []byte) (k, v []byte) {
	if k, _ := c.Seek(seek); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// eventAttempts feeds match the records of f.EventID, newest first, from its run of the event
// index (from f.Until back when it is set), until match says stop.
func eventAttempts(tx *bolt.Tx, f bridge.AttemptFilter, match func(k, v []byte) (bool, error)) error {
	b := tx.Bucket(bucketAttempts)
	prefix := eventIndexPrefix(f.EventID)
	c := tx.Bucket(bucketAttemptIdx).Cursor()
	from := pastPrefix(prefix)
	if !f.Until.IsZero() {
		from = append(slices.Clip(prefix), stamp(f.Until)...)
	}
	k, v := seekBefore(c, from)
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		key := k[len(prefix):]
		if len(key) != 16 {
			return fmt.Errorf("malformed event index key %x", k)
		}
		if !f.Since.IsZero() && unstamp(key[:8]).Before(f.Since) {
			return nil
		}
		if string(v) != f.EventID {
			continue
		}
		rv := b.Get(key)
		if rv == nil {
			continue // pruned meanwhile (the index goes in the same transaction, so never)
		}
		if stop, err := match(key, rv); err != nil || stop {
			return err
		}
	}
	return nil
}

// PruneAttempts forgets the attempts made before the cut-off, oldest first, in short
// transactions of at most pruneChunk records.
func (s *Bolt) PruneAttempts(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.hist.Update(func(tx *bolt.Tx) error {
			n = 0
			b, idx := tx.Bucket(bucketAttempts), tx.Bucket(bucketAttemptIdx)
			type victim struct{ key, disc, event, outcome []byte }
			var victims []victim
			c := b.Cursor()
			for k, v := c.First(); k != nil && len(victims) < pruneChunk; k, v = c.Next() {
				if len(k) != 16 {
					return fmt.Errorf("malformed attempt key %x", k)
				}
				if !unstamp(k[:8]).Before(before) {
					break
				}
				r, err := decodeAttempt(k, v)
				if err != nil {
					return err
				}
				key := bytes.Clone(k)
				vi := victim{key, attemptIndexKey('d', r.Queue.Discussion, key), eventIndexKey(r.EventID, key), nil}
				if r.Outcome != bridge.OutcomeDelivered {
					vi.outcome = attemptIndexKey('o', r.Outcome, key)
				}
				victims = append(victims, vi)
			}
			// Delete after the walk: deleting under a bbolt cursor can make it skip entries.
			for _, vi := range victims {
				if err := b.Delete(vi.key); err != nil {
					return err
				}
				if err := idx.Delete(vi.disc); err != nil {
					return err
				}
				if err := idx.Delete(vi.event); err != nil {
					return err
				}
				if vi.outcome != nil {
					if err := idx.Delete(vi.outcome); err != nil {
						return err
					}
				}
			}
			n = len(victims)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: prune attempts: %w", err)
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}
