// Package writebehind keeps the values a store accepts without waiting for their commit
// (PutLater): the latest value per key, readable at once, until the commit that carries it
// confirms it. Both stores, bbolt and PostgreSQL, hold theirs in one of these.
package writebehind

import (
	"bytes"
	"maps"
	"sync"
)

// Key names a value: a namespace and a key in it.
type Key struct{ Namespace, Key string }

// Value is a value put and not yet written; gen tells it from a newer one for the same key.
type Value struct {
	Value []byte
	gen   uint64
}

// Values is the set of values waiting for a commit. The zero value is ready to use.
type Values struct {
	mu     sync.Mutex
	m      map[Key]Value
	gen    uint64
	closed bool
}

// Put keeps a copy of value (nil is kept as present and empty) as the latest for the key. It
// reports false, keeping nothing, once Close was called.
func (v *Values) Put(namespace, key string, value []byte) bool {
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return false
	}
	if v.m == nil {
		v.m = map[Key]Value{}
	}
	v.gen++
	v.m[Key{namespace, key}] = Value{Value: value, gen: v.gen}
	return true
}

// Get returns a copy of the waiting value of the key, if there is one.
func (v *Values) Get(namespace, key string) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	val, ok := v.m[Key{namespace, key}]
	if !ok {
		return nil, false
	}
	return bytes.Clone(val.Value), true
}

// Forget drops the waiting value of the key: a write made now is newer than it.
func (v *Values) Forget(namespace, key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, Key{namespace, key})
}

// Take copies the waiting values for a commit (nil when there are none). They stay readable
// until Written confirms them.
func (v *Values) Take() map[Key]Value {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) == 0 {
		return nil
	}
	return maps.Clone(v.m)
}

// Written drops the values of a commit, except those that a newer value replaced meanwhile.
func (v *Values) Written(taken map[Key]Value) {
	if len(taken) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, val := range taken {
		if cur, ok := v.m[k]; ok && cur.gen == val.gen {
			delete(v.m, k)
		}
	}
}

// Close makes later Puts fail; the values already waiting stay, for a last commit.
func (v *Values) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
}
