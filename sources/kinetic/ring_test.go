package kinetic

import (
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
	if len(r.m) != 3 || len(r.keys) != 3 {
		t.Fatalf("ring of 3 holds %d keys (%d slots)", len(r.m), len(r.keys))
	}
	for i := 7; i < 10; i++ {
		if !r.has(strconv.Itoa(i)) {
			t.Fatalf("forgot %d, one of the last three", i)
		}
	}
}
