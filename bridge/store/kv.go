package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Get returns the value stored under key in namespace; ok is false when there is none.
func (s *Bolt) Get(ctx context.Context, namespace, key string) ([]byte, bool, error) {
	var val []byte
	var ok bool
	if v, later := s.laterValue(namespace, key); later {
		return v, true, nil
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ns := tx.Bucket(bucketKV).Bucket([]byte(namespace))
		if ns == nil {
			return nil
		}
		if v := ns.Get([]byte(key)); v != nil {
			// bbolt values live in the memory map only until the transaction ends.
			val, ok = bytes.Clone(v), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: get %s/%s: %w", namespace, key, err)
	}
	return val, ok, nil
}

// Put stores value under key in namespace, creating the namespace on first use. Puts from
// concurrent goroutines share commits; Put returns once the value is durable.
func (s *Bolt) Put(ctx context.Context, namespace, key string, value []byte) error {
	if namespace == "" || key == "" {
		return errors.New("store: put: empty namespace or key")
	}
	if value == nil {
		value = []byte{} // stored as present-and-empty, like any other value
	}
	// A value put later and not yet written would overwrite this one: drop it now, since
	// this call is the newer.
	s.forgetLater(namespace, key)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return putKV(tx, namespace, key, value)
	})
	if err != nil {
		return fmt.Errorf("store: put %s/%s: %w", namespace, key, err)
	}
	return nil
}

func putKV(tx *bolt.Tx, namespace, key string, value []byte) error {
	ns, err := tx.Bucket(bucketKV).CreateBucketIfNotExists([]byte(namespace))
	if err != nil {
		return err
	}
	return ns.Put([]byte(key), value)
}

// laterFlush bounds how long a value put later waits for another commit to carry it.
const laterFlush = time.Second

// laterKey names a value put later.
type laterKey struct{ namespace, key string }

// laterValue is a value put later; gen tells a value from a newer one for the same key.
type laterValue struct {
	value []byte
	gen   uint64
}

// PutLater stores value under key in namespace like Put, but without waiting: the value is
// written by the next commit of any other write or Done (or within about a second when there
// is none), and until then Get returns it from memory. Only the latest value per key is kept.
// A crash before that commit loses it, and Get after restart returns the value before.
//
// It is for values whose loss costs only time, such as a source checkpoint: a checkpoint that
// is older than it should be means a longer catch-up, whose events Append deduplicates.
func (s *Bolt) PutLater(namespace, key string, value []byte) error {
	if namespace == "" || key == "" {
		return errors.New("store: put later: empty namespace or key")
	}
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	if len(namespace) > bolt.MaxKeySize || len(key) > bolt.MaxKeySize {
		return errors.New("store: put later: namespace or key too long")
	}
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	if s.laterClosed {
		return fmt.Errorf("store: put later %s/%s: %w", namespace, key, ErrClosed)
	}
	s.laterGen++
	s.later[laterKey{namespace, key}] = laterValue{value: value, gen: s.laterGen}
	if s.laterTimer == nil {
		// Nothing else may commit for a while: make sure the value does not wait forever.
		s.laterTimer = time.AfterFunc(laterFlush, s.flushLater)
	}
	return nil
}

// flushLater wakes the committer for the values put later.
func (s *Bolt) flushLater() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Bolt) laterValue(namespace, key string) ([]byte, bool) {
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	v, ok := s.later[laterKey{namespace, key}]
	if !ok {
		return nil, false
	}
	return bytes.Clone(v.value), true
}

func (s *Bolt) forgetLater(namespace, key string) {
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	delete(s.later, laterKey{namespace, key})
}

// takeLater copies the values put later for the committer. They stay in s.later, visible to
// Get, until laterWritten confirms their commit.
func (s *Bolt) takeLater() map[laterKey]laterValue {
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	if s.laterTimer != nil {
		s.laterTimer.Stop()
		s.laterTimer = nil
	}
	if len(s.later) == 0 {
		return nil
	}
	return maps.Clone(s.later)
}

// laterWritten drops the values of a commit from memory, unless a newer value for the same
// key came meanwhile.
func (s *Bolt) laterWritten(taken map[laterKey]laterValue) {
	if len(taken) == 0 {
		return
	}
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	for k, v := range taken {
		if cur, ok := s.later[k]; ok && cur.gen == v.gen {
			delete(s.later, k)
		}
	}
}

// applyLater writes values put later in tx.
func applyLater(tx *bolt.Tx, later map[laterKey]laterValue) error {
	for k, v := range later {
		if err := putKV(tx, k.namespace, k.key, v.value); err != nil {
			return err
		}
	}
	return nil
}

// closeLater makes later PutLater calls fail; the committer writes the values already put
// before it stops.
func (s *Bolt) closeLater() {
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	s.laterClosed = true
	if s.laterTimer != nil {
		s.laterTimer.Stop()
		s.laterTimer = nil
	}
}
