package kinetic

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
)

// The ring remembers the last limit keys with their latest values and forgets the oldest.
func TestRing(t *testing.T) {
	r := ring{limit: 3}
	if r.has("a") {
		t.Fatal("an empty ring has a key")
	}
	r.add("a", "v1")
	r.add("b", "")
	r.add("c", "")
	if found, same := r.holds("a", "v1"); !found || !same {
		t.Fatalf("holds(a, v1) = %v, %v", found, same)
	}
	r.add("a", "v2") // an update keeps a's place
	if found, same := r.holds("a", "v1"); !found || same {
		t.Fatalf("after the update, holds(a, v1) = %v, %v; want found, not same", found, same)
	}
	r.add("d", "") // forgets a, the oldest key
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "v2": false} {
		if r.has(k) != want {
			t.Errorf("has(%s) = %v, want %v", k, !want, want)
		}
	}
	for i := range 10 {
		r.add(strconv.Itoa(i), "")
	}
	if len(r.ents) != 3 {
		t.Fatalf("ring of 3 holds %d keys", len(r.ents))
	}
	for i := 7; i < 10; i++ {
		if !r.has(strconv.Itoa(i)) {
			t.Fatalf("forgot %d, one of the last three", i)
		}
	}
}

// Against a plain model (a map and the order keys were first added), through growth, updates,
// evictions and the index's backward shifts: a small key space makes keys come back after
// being forgotten, and a small limit makes runs in the index wrap around its end.
func TestRingAgainstModel(t *testing.T) {
	for _, limit := range []int{1, 3, 8, 100, 4096} {
		rng := rand.New(rand.NewPCG(uint64(limit), 7))
		r := ring{limit: limit}
		vals := map[string]string{}
		var order []string // oldest first
		space := 3 * limit
		for step := range 20 * limit {
			k := strconv.Itoa(rng.IntN(space))
			v := strconv.Itoa(step % 5)
			if _, ok := vals[k]; !ok {
				if len(order) == limit {
					delete(vals, order[0])
					order = order[1:]
				}
				order = append(order, k)
			}
			vals[k] = v
			r.add(k, v)
			if limit <= 8 || step%(limit/4) == 0 {
				for i := range space {
					q := strconv.Itoa(i)
					want, ok := vals[q]
					found, same := r.holds(q, want)
					if found != ok || (ok && !same) {
						t.Fatalf("limit %d, step %d: holds(%s) = %v, %v; want %v, true", limit, step, q, found, same, ok)
					}
				}
			}
		}
		if len(r.ents) != len(order) || len(r.slots) < 2*len(r.ents) {
			t.Fatalf("limit %d: %d entries in %d slots, want %d in at least twice as many", limit, len(r.ents), len(r.slots), len(order))
		}
	}
}

// BenchmarkRing: a discussion's two rings through a catch-up of 250 messages each (the
// catch-up scenario's share per discussion), as 200 discussions hold them: the time per
// added key, and the live heap per entry the rings keep.
func BenchmarkRing(b *testing.B) {
	const discussions, perDiscussion = 200, 250
	ids := make([]string, perDiscussion)
	for i := range ids {
		ids[i] = "0195f3c2-7d2a-7b9e-8c41-" + strconv.Itoa(100000000000+i)
	}
	var live uint64
	b.ReportAllocs()
	for b.Loop() {
		rings := make([]ring, 2*discussions)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for d := range discussions {
			recent, versions := &rings[2*d], &rings[2*d+1]
			recent.limit, versions.limit = rememberIDs, rememberIDs
			for _, id := range ids {
				if !recent.has(id) {
					recent.add(id, "")
					versions.add(id, id[:8])
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		live = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(rings)
	}
	b.ReportMetric(float64(live)/float64(2*discussions*perDiscussion), "B/entry")
}
