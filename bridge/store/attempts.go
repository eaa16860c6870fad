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
//	attempts     stamp(at) ‖ n → the record (encodeAttempt); n is the bucket's sequence, so keys
//	             are unique and byte order is time order. A record whose time is before
//	             the newest already written (concurrent workers' clocks differ by
//	             microseconds) is placed at that newest time instead, so that keys only grow
//	             from batch to batch; the record keeps its own time.
//	attempt-idx  'd' ‖ uvarint(len) ‖ discussion ‖ last → list: the history by discussion;
//	             'h' ‖ part ‖ last → list, where part is one of eventParts, from a hash of
//	             the event ID: the history by event; one entry per discussion (per part)
//	             and batch, where last is the newest key of the batch's records that it
//	             lists and list is listTag followed by their keys, oldest first (for 'h',
//	             each key followed by uvarint(len) ‖ event ID). And per record, for the
//	             rare outcomes (retry, dead letter), 'o' ‖ uvarint(len) ‖ outcome ‖ key →
//	             empty. A history written before lists has per-record entries: 'd' … key →
//	             empty and 'h' ‖ part ‖ key → event ID; both kinds are read.
//
// Event IDs are hashes, so an index keyed by them puts every record's entry on a page of its
// own: a batch of 4,096 records rewrote up to 4,096 index pages. Keyed by part and time, the
// entries of a batch go at the end of eventParts runs instead, and a search by event reads
// its part — a 64th of the history — comparing IDs. An entry per batch instead of per record
// makes a batch's index writes a few hundred instead of 8,192 (BenchmarkLogAttempts).
//
// Before history.db, the same buckets were in kdbridge.db (added without a schema bump);
// Open moves them over. The history is written in its own transactions about once a second
// (LogAttempts), on its own file, so it never lengthens or delays an Append or a Done.
var (
	bucketAttempts   = []byte("attempts")
	bucketAttemptIdx = []byte("attempt-idx")
)

var _ bridge.AttemptLog = (*Bolt)(nil)

// attemptBinary starts a record in the binary form encodeAttempt writes. Records written
// before it are JSON (attemptJSON), which starts with '{'; both are read.
//
// The binary form is about two thirds of the JSON's size (106 bytes for a delivery's record
// instead of 169: the history file grows by a third less an attempt) and a tenth of its
// encoding cost, which was a third of writing the history (docs/performance.md, seventh
// round).
const attemptBinary byte = 1

// encodeAttempt returns r's stored form: attemptBinary, then its fields in the order below,
// strings and the two times as in event bodies (codec.go), a zero NextTry as one zero byte.
func encodeAttempt(r bridge.AttemptRecord) []byte {
	b := make([]byte, 0, 64+len(r.Queue.Target.Route)+len(r.Queue.Target.Sink)+len(r.Queue.Target.Channel)+len(r.Queue.Discussion)+
		len(r.EventID)+len(r.EventType)+len(r.Outcome)+len(r.Status)+len(r.Error)+len(r.Response)+len(r.DeadLetter))
	b = append(b, attemptBinary)
	b = binary.AppendUvarint(b, r.Seq)
	b = appendStr(b, r.Queue.Target.Route)
	b = appendStr(b, r.Queue.Target.Sink)
	b = appendStr(b, r.Queue.Target.Channel)
	b = appendStr(b, r.Queue.Discussion)
	b = appendStr(b, r.EventID)
	b = appendStr(b, r.EventType)
	b = binary.AppendVarint(b, int64(r.Attempt))
	b = appendTime(b, r.At)
	b = binary.AppendVarint(b, int64(r.Latency))
	b = appendStr(b, r.Outcome)
	b = appendStr(b, r.Status)
	b = appendStr(b, r.Error)
	b = appendStr(b, r.Response)
	if r.NextTry.IsZero() {
		b = append(b, 0) // appendTime's length byte is never 0
	} else {
		b = appendTime(b, r.NextTry)
	}
	return appendStr(b, r.DeadLetter)
}

// decodeAttempt decodes a stored record of either form; k is its key, for errors.
func decodeAttempt(k, v []byte) (bridge.AttemptRecord, error) {
	if len(v) > 0 && v[0] == attemptBinary {
		r := eventReader{s: string(v[1:])} // a copy: bbolt owns v only for the transaction
		var a bridge.AttemptRecord
		a.Seq = r.uvarint()
		a.Queue.Target = bridge.Target{Route: r.str(), Sink: r.str(), Channel: r.str()}
		a.Queue.Discussion = r.str()
		a.EventID, a.EventType = r.str(), r.str()
		a.Attempt = int(r.varint())
		a.At = r.time()
		a.Latency = time.Duration(r.varint())
		a.Outcome, a.Status, a.Error, a.Response = r.str(), r.str(), r.str(), r.str()
		if r.err == nil && r.off < len(r.s) && r.s[r.off] == 0 {
			r.off++ // a zero NextTry
		} else {
			a.NextTry = r.time()
		}
		a.DeadLetter = r.str()
		if err := r.end(); err != nil {
			return bridge.AttemptRecord{}, fmt.Errorf("attempt %x: %w", k, err)
		}
		return a, nil
	}
	var a attemptJSON
	if err := json.Unmarshal(v, &a); err != nil {
		return bridge.AttemptRecord{}, fmt.Errorf("attempt %x: %w", k, err)
	}
	return bridge.AttemptRecord{Seq: a.Seq, Queue: bridge.Queue{Target: bridge.Target{Route: a.Route, Sink: a.Sink, Channel: a.Channel}, Discussion: a.Discussion},
		EventID: a.EventID, EventType: a.EventType, Attempt: a.Attempt, At: a.At, Latency: a.Latency, Outcome: a.Outcome, Status: a.Status,
		Error: a.Error, Response: a.Response, NextTry: a.NextTry, DeadLetter: a.DeadLetter}, nil
}

// attemptJSON is how kdbridge stored an attempt before attemptBinary: short keys, zero fields
// left out. Such records stay in a history until it is pruned, and are read as they are.
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

// eventParts is how many runs the event index is split into (see above).
const eventParts = 64

// listTag starts an index value that lists a batch's records (see above). Per-record entries
// of older histories have an empty value or an event ID, which never starts with it.
const listTag = 0

// eventPart is the run of the event index that holds eventID's entries.
func eventPart(eventID string) int {
	h := fnv.New32a()
	h.Write([]byte(eventID))
	return int(h.Sum32() % eventParts)
}

// eventIndexPrefix is the start of the event index run that holds eventID's entries.
func eventIndexPrefix(eventID string) []byte { return []byte{'h', byte(eventPart(eventID))} }

// listed is a record an index entry names: its key, and for the event index its event ID.
type listed struct {
	key, eventID []byte // both in the entry's memory
}

// entryRecords returns the records an index entry names, oldest first: the records of its
// list, or the one record of a per-record entry (whose key ends the entry's key). withIDs
// says the entry is the event index's, whose lists carry event IDs.
func entryRecords(k, v []byte, prefixLen int, withIDs bool, buf []listed) ([]listed, error) {
	buf = buf[:0]
	if len(v) == 0 || v[0] != listTag {
		return append(buf, listed{k[prefixLen:], v}), nil
	}
	for rest := v[1:]; len(rest) > 0; {
		if len(rest) < 16 {
			return nil, fmt.Errorf("malformed index list in entry %x", k)
		}
		it := listed{key: rest[:16]}
		rest = rest[16:]
		if withIDs {
			n, w := binary.Uvarint(rest)
			if w <= 0 || uint64(len(rest)-w) < n {
				return nil, fmt.Errorf("malformed index list in entry %x", k)
			}
			it.eventID = rest[w : w+int(n)]
			rest = rest[w+int(n):]
		}
		buf = append(buf, it)
	}
	return buf, nil
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
		values[i] = encodeAttempt(r)
	}
	// Oldest first, so that keys follow the attempts' times (see the layout above).
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return recs[a].At.Compare(recs[b].At) })
	err := s.observed(s.hist, HistoryFileName, func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bucketAttempts), tx.Bucket(bucketAttemptIdx)
		// Keys grow with time, so pages can be filled: bbolt's default of half-full pages
		// suits random inserts, not appends.
		b.FillPercent = 0.95
		idx.FillPercent = 0.95
		var floor []byte // the newest key's time
		if k, _ := b.Cursor().Last(); len(k) == 16 {
			floor = bytes.Clone(k[:8])
		}
		discs := map[string][]byte{}           // discussion → its list
		var parts, partLast [eventParts][]byte // part → its list, and the list's newest key
		for _, i := range order {
			r := recs[i]
			n, err := b.NextSequence()
			if err != nil {
				return err
			}
			at := stamp(r.At)
			if floor != nil && bytes.Compare(at, floor) < 0 {
				at = floor
			}
			floor = at
			k := binary.BigEndian.AppendUint64(slices.Clip(at), n)
			if err := b.Put(k, values[i]); err != nil {
				return err
			}
			l, ok := discs[r.Queue.Discussion]
			if !ok {
				l = []byte{listTag}
			}
			discs[r.Queue.Discussion] = append(l, k...)
			p := eventPart(r.EventID)
			if parts[p] == nil {
				parts[p] = []byte{listTag}
			}
			parts[p] = append(binary.AppendUvarint(append(parts[p], k...), uint64(len(r.EventID))), r.EventID...)
			partLast[p] = k
			if r.Outcome != bridge.OutcomeDelivered {
				if err := idx.Put(attemptIndexKey('o', r.Outcome, k), nil); err != nil {
					return err
				}
			}
		}
		for d, l := range discs {
			if err := idx.Put(attemptIndexKey('d', d, l[len(l)-16:]), l); err != nil {
				return err
			}
		}
		for p, l := range parts {
			if l == nil {
				continue
			}
			if err := idx.Put(append([]byte{'h', byte(p)}, partLast[p]...), l); err != nil {
				return err
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
		k, iv := seekBefore(c, pastPrefix(prefix))
		return walkIndex(c, prefix, k, iv, false, func(l listed) (bool, error) {
			v := b.Get(l.key)
			if v == nil || len(l.key) != 16 {
				return false, nil // pruned (the index goes in the same transaction, so never)
			}
			return match(l.key, v)
		})
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
	// An entry is keyed by the newest record it lists: the first entry at or after f.Until
	// may list older records too, so reading starts there.
	k, v := c.Seek(from)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		k, v = seekBefore(c, pastPrefix(prefix))
	}
	return walkIndex(c, prefix, k, v, true, func(l listed) (bool, error) {
		if len(l.key) != 16 {
			return false, fmt.Errorf("malformed event index key %x", l.key)
		}
		if !f.Since.IsZero() && unstamp(l.key[:8]).Before(f.Since) {
			return true, nil
		}
		if string(l.eventID) != f.EventID {
			return false, nil
		}
		rv := b.Get(l.key)
		if rv == nil {
			return false, nil // pruned (the index goes in the same transaction, so never)
		}
		return match(l.key, rv)
	})
}

// walkIndex feeds visit the records named by the index entries under prefix, newest first,
// from the entry k, v (where c is) back, until visit says stop. withIDs is entryRecords's.
func walkIndex(c *bolt.Cursor, prefix, k, v []byte, withIDs bool, visit func(listed) (stop bool, err error)) error {
	var rs []listed
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		var err error
		if rs, err = entryRecords(k, v, len(prefix), withIDs, rs); err != nil {
			return err
		}
		for i := len(rs) - 1; i >= 0; i-- {
			if stop, err := visit(rs[i]); err != nil || stop {
				return err
			}
		}
	}
	return nil
}

// trimLists drops from the batch entries named in lists every record at or before last, and
// deletes the entries left empty.
func trimLists(idx *bolt.Bucket, lists map[string]bool, last []byte) error {
	var rs []listed
	for ek := range lists {
		k := []byte(ek)
		v := idx.Get(k)
		withIDs := k[0] == 'h'
		prefixLen := 2 // 'h' ‖ part
		if !withIDs {
			prefixLen = len(k) - 16
		}
		var err error
		if rs, err = entryRecords(k, v, prefixLen, withIDs, rs); err != nil {
			return err
		}
		kept := []byte{listTag}
		for _, r := range rs {
			if bytes.Compare(r.key, last) <= 0 {
				continue
			}
			kept = append(kept, r.key...)
			if withIDs {
				kept = append(binary.AppendUvarint(kept, uint64(len(r.eventID))), r.eventID...)
			}
		}
		if len(kept) == 1 {
			err = idx.Delete(k)
		} else {
			err = idx.Put(k, kept)
		}
		if err != nil {
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
		err := s.observed(s.hist, HistoryFileName, func(tx *bolt.Tx) error {
			n = 0
			b, idx := tx.Bucket(bucketAttempts), tx.Bucket(bucketAttemptIdx)
			type victim struct{ key, outcome []byte }
			var victims []victim
			var entries [][]byte       // per-record index entries of victims (older histories)
			lists := map[string]bool{} // the batch entries that list victims
			ic := idx.Cursor()
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
				vi := victim{key: key}
				if r.Outcome != bridge.OutcomeDelivered {
					vi.outcome = attemptIndexKey('o', r.Outcome, key)
				}
				victims = append(victims, vi)
				// Its discussion and event entries are the first at or after its own key:
				// its per-record entry (older histories), or the batch entry that lists it
				// (keys only grow from batch to batch).
				for _, prefix := range [][]byte{attemptIndexKey('d', r.Queue.Discussion, nil), eventIndexPrefix(r.EventID)} {
					own := append(prefix, key...)
					ik, iv := ic.Seek(own)
					switch {
					case ik == nil || !bytes.HasPrefix(ik, prefix):
					case len(iv) > 0 && iv[0] == listTag:
						lists[string(ik)] = true
					case bytes.Equal(ik, own):
						entries = append(entries, own)
					}
				}
			}
			// Delete after the walk: deleting under a bbolt cursor can make it skip entries.
			for _, e := range entries {
				if err := idx.Delete(e); err != nil {
					return err
				}
			}
			for _, vi := range victims {
				if err := b.Delete(vi.key); err != nil {
					return err
				}
				if vi.outcome != nil {
					if err := idx.Delete(vi.outcome); err != nil {
						return err
					}
				}
			}
			// The victims are every record up to the last of them, so a list keeps only what
			// is newer, and goes when nothing is.
			if len(victims) > 0 {
				if err := trimLists(idx, lists, victims[len(victims)-1].key); err != nil {
					return err
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
