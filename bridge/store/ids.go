package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The dedupe index (bucket ids: event ID → seq ‖ stored-at) is keyed by event ID, which is a
// hash: each new ID lands on a page of its own, and bbolt reads that whole page into memory,
// grows it and writes it back, in every commit. In a burst that was 40 % of the store's time
// and more than half of its allocations (BenchmarkBurstShape: 51 → 31 µs an event without it).
//
// So new IDs are first only in the age index (bucket stored: seq → stored-at ‖ ID, appended
// at its end), and in memory: recentIDs holds the IDs stored after the watermark (meta
// "ids-merged": every ID of a seq at or below it is in ids, or pruned). Once recentIDsMerge
// of them are there, they are sorted and written to ids in chunks (mergeChunk, or a quarter
// of the merge if more), one chunk riding on each following commit, so that each page of ids
// is read and written once for many IDs rather than once for each; the chunk that ends the
// merge moves the watermark. Open reads the IDs above the watermark back from stored, so a
// crash loses nothing, and a chunk written twice writes the same values again.
//
// Memory stays at about twice recentIDsMerge IDs (~100 bytes each) whatever the retention;
// under a flood, at the IDs of about eight commits, since a merge takes about four. The gain is largest while ids is small
// against a merge (at 20,000 IDs a merge of 8,192 writes each page of ids once for ~25 IDs)
// and fades at many millions of IDs, where those of a chunk are nearly as spread over ids as
// those of a commit (no worse than writing each at once).
const (
	recentIDsMerge = 8192
	mergeChunk     = 2048
)

// metaIDsMerged is the meta key of the watermark: a big-endian seq.
var metaIDsMerged = []byte("ids-merged")

// idEntry is what ids holds for an ID: the event's seq and when it was stored.
type idEntry struct {
	seq uint64
	at  [8]byte // stamp()
}

func (e idEntry) value() []byte { return append(seqKey(e.seq), e.at[:]...) }

// recentIDs is the in-memory part of the dedupe index. Only the committer uses it (Open
// before the committer starts), so it has no lock. A transaction's changes are staged and
// become part of it only once that transaction commits (commit and discard, called by
// runTx): an ID of a transaction that failed must not look stored.
type recentIDs struct {
	mergeAt, chunk int // recentIDsMerge and mergeChunk, but for tests

	m      map[string]idEntry
	staged map[string]stagedID // changes of the running transaction

	merging   []mergeItem // the IDs of the merge under way, sorted; nil when none
	mergeNext int         // how many of merging are written
	stepSize  int         // IDs written per commit in the merge under way
	mergeTo   uint64      // the watermark once merging is written
}

type stagedID struct {
	e       idEntry
	removed bool
}

type mergeItem struct {
	id string
	e  idEntry
}

// loadRecentIDs reads the IDs stored after the watermark (Open's initSchema writes one when
// it creates or upgrades a file: a file without one is corrupt).
func loadRecentIDs(tx *bolt.Tx, mergeAt, chunk int) (*recentIDs, error) {
	r := &recentIDs{m: map[string]idEntry{}, staged: map[string]stagedID{}, mergeAt: mergeAt, chunk: chunk}
	w := tx.Bucket(bucketMeta).Get(metaIDsMerged)
	if len(w) != 8 {
		return nil, fmt.Errorf("malformed %s watermark %x", metaIDsMerged, w)
	}
	c := tx.Bucket(bucketStored).Cursor()
	for k, v := c.Seek(seqKey(binary.BigEndian.Uint64(w) + 1)); k != nil; k, v = c.Next() {
		if len(k) != 8 || len(v) < 8 {
			return nil, fmt.Errorf("malformed age-index entry %x", k)
		}
		var e idEntry
		e.seq = binary.BigEndian.Uint64(k)
		copy(e.at[:], v[:8])
		r.m[string(v[8:])] = e
	}
	return r, nil
}

// find returns the seq of id if it is stored: in the running transaction, in memory, or in
// ids.
func (r *recentIDs) find(ids *bolt.Bucket, id []byte) (uint64, bool) {
	if st, ok := r.staged[string(id)]; ok {
		return st.e.seq, !st.removed
	}
	if e, ok := r.m[string(id)]; ok {
		return e.seq, true
	}
	if v := ids.Get(id); len(v) >= 8 {
		return binary.BigEndian.Uint64(v), true
	}
	return 0, false
}

// add stages a new ID.
func (r *recentIDs) add(id string, e idEntry) { r.staged[id] = stagedID{e: e} }

// forget stages the removal of id if it is in memory under seq, and reports whether it was.
func (r *recentIDs) forget(id []byte, seq uint64) bool {
	e, ok := r.m[string(id)]
	if st, staged := r.staged[string(id)]; staged {
		e, ok = st.e, !st.removed
	}
	if !ok || e.seq != seq {
		return false
	}
	r.staged[string(id)] = stagedID{e: e, removed: true}
	return true
}

// commit makes the running transaction's changes part of the index; discard drops them.
func (r *recentIDs) commit() {
	for id, st := range r.staged {
		if st.removed {
			delete(r.m, id)
		} else {
			r.m[id] = st.e
		}
	}
	clear(r.staged)
}

func (r *recentIDs) discard() { clear(r.staged) }

// mergeStep is what one commit writes of a merge: a chunk of IDs, and the watermark when
// the chunk ends the merge.
type mergeStep struct {
	items []mergeItem
	from  int // where the chunk starts in merging
	last  bool
}

// nextStep returns what the next commit writes of the merge under way, or the first step of
// a new one once enough IDs are in memory. ok is false when there is nothing to merge.
func (r *recentIDs) nextStep() (step mergeStep, ok bool) {
	if r.merging == nil {
		if len(r.m) < r.mergeAt {
			return mergeStep{}, false
		}
		r.merging = make([]mergeItem, 0, len(r.m))
		for id, e := range r.m {
			r.merging = append(r.merging, mergeItem{id, e})
			r.mergeTo = max(r.mergeTo, e.seq)
		}
		slices.SortFunc(r.merging, func(a, b mergeItem) int { return strings.Compare(a.id, b.id) })
		r.mergeNext = 0
		// A merge takes at most about four commits: after a flood of new IDs (more per
		// commit than a chunk) its chunks are larger, so that merges keep up and memory
		// stays bounded.
		r.stepSize = max(r.chunk, len(r.merging)/4)
	}
	step.from = r.mergeNext
	for _, it := range r.merging[r.mergeNext:] {
		if len(step.items) == r.stepSize {
			break
		}
		r.mergeNext++
		if e, ok := r.m[it.id]; ok && e.seq == it.e.seq {
			step.items = append(step.items, it) // not pruned meanwhile
		}
	}
	step.last = r.mergeNext == len(r.merging)
	return step, true
}

// write writes a step in tx.
func (r *recentIDs) write(tx *bolt.Tx, step mergeStep) error {
	ids := tx.Bucket(bucketIDs)
	for _, it := range step.items {
		if err := ids.Put([]byte(it.id), it.e.value()); err != nil {
			return fmt.Errorf("merge ids: %w", err)
		}
	}
	if step.last {
		if err := tx.Bucket(bucketMeta).Put(metaIDsMerged, seqKey(r.mergeTo)); err != nil {
			return fmt.Errorf("merge ids: %w", err)
		}
	}
	return nil
}

// written takes a committed step's IDs out of memory, and ends the merge after its last.
func (r *recentIDs) written(step mergeStep) {
	for _, it := range step.items {
		if e, ok := r.m[it.id]; ok && e.seq == it.e.seq {
			delete(r.m, it.id)
		}
	}
	if step.last {
		r.merging, r.mergeNext = nil, 0
	}
}

// failed makes a step whose commit failed the next one again.
func (r *recentIDs) failed(step mergeStep) { r.mergeNext = step.from }

// sameID reports whether an ids value names seq (Prune checks before deleting).
func sameID(v []byte, seq uint64) bool {
	return len(v) >= 8 && bytes.Equal(v[:8], seqKey(seq))
}
