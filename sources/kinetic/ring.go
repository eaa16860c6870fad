package kinetic

import "hash/maphash"

// ring is a bounded map that forgets its oldest keys. Its zero value (with limit set) is
// empty and allocates nothing: every subscribed discussion has two, and most discussions are
// quiet. It grows as keys arrive, since preallocating the bound would cost hundreds of
// kilobytes per discussion (gigabytes at 10,000 discussions).
//
// Keys and values are held as 128-bit hashes (seeded per process), not strings, and the
// entries sit in one slice in the order added, found through an open-addressed index of
// their positions: an entry costs ~40–60 bytes (32 for the two hashes, 8–16 of index)
// instead of ~110 as strings, or ~90 in a Go map of hashes, and nothing holds a pointer
// for the garbage collector to follow. A catch-up of 50,000 messages over 200 discussions
// kept 9 MB live in the rings as maps. Two different strings get the same hash with a
// chance of about 2^-128 per comparison, far below anything else that could go wrong; and
// the ring only saves work, since the store deduplicates exactly by ID.
type ring struct {
	ents  []ringEntry // in the order added; once limit are there, ents[next] is the oldest
	next  int
	limit int
	// slots index ents by key hash: 0 is empty, i+1 is ents[i]; linear probing, a power of
	// two at least twice len(ents) long.
	slots []int32
}

type ringEntry struct{ k, v hash128 }

// hash128 is a string's two 64-bit hashes under independent seeds.
type hash128 [2]uint64

var ringSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func hashString(s string) hash128 {
	return hash128{maphash.String(ringSeeds[0], s), maphash.String(ringSeeds[1], s)}
}

func (r *ring) has(k string) bool { return r.find(hashString(k)) >= 0 }

// holds reports whether k is there with the value v.
func (r *ring) holds(k, v string) (found, same bool) {
	i := r.find(hashString(k))
	return i >= 0, i >= 0 && r.ents[i].v == hashString(v)
}

func (r *ring) add(k, v string) {
	hk, hv := hashString(k), hashString(v)
	if i := r.find(hk); i >= 0 {
		r.ents[i].v = hv
		return
	}
	if len(r.ents) < r.limit {
		r.ents = append(r.ents, ringEntry{hk, hv})
		if 2*len(r.ents) > len(r.slots) {
			r.reindex()
		} else {
			r.index(hk, len(r.ents)-1)
		}
		return
	}
	old := r.next
	r.unindex(r.ents[old].k)
	r.ents[old] = ringEntry{hk, hv}
	r.index(hk, old)
	r.next = (r.next + 1) % r.limit
}

// find returns the position of h in ents, or -1.
func (r *ring) find(h hash128) int {
	if len(r.slots) == 0 {
		return -1
	}
	mask := len(r.slots) - 1
	for i := int(h[0] & uint64(mask)); ; i = (i + 1) & mask {
		s := r.slots[i]
		if s == 0 {
			return -1
		}
		if r.ents[s-1].k == h {
			return int(s - 1)
		}
	}
}

// index makes ents[pos], whose key is h, findable.
func (r *ring) index(h hash128, pos int) {
	mask := len(r.slots) - 1
	i := int(h[0] & uint64(mask))
	for r.slots[i] != 0 {
		i = (i + 1) & mask
	}
	r.slots[i] = int32(pos + 1)
}

// unindex removes h, which is there, from the index, moving back the entries after it in its
// run that would otherwise no longer be found (backward-shift deletion).
func (r *ring) unindex(h hash128) {
	mask := len(r.slots) - 1
	i := int(h[0] & uint64(mask))
	for r.ents[r.slots[i]-1].k != h {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; r.slots[j] != 0; j = (j + 1) & mask {
		home := int(r.ents[r.slots[j]-1].k[0] & uint64(mask))
		// The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			r.slots[i] = r.slots[j]
			i = j
		}
	}
	r.slots[i] = 0
}

// reindex rebuilds the index at twice the size it needs, at least 16 slots.
func (r *ring) reindex() {
	n := 16
	for n < 2*len(r.ents) {
		n *= 2
	}
	if cap(r.slots) >= n {
		r.slots = r.slots[:n]
		clear(r.slots)
	} else {
		r.slots = make([]int32, n)
	}
	for pos, e := range r.ents {
		r.index(e.k, pos)
	}
}
