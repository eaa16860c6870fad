package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kdbridge/kdbridge/internal/writebehind"
	bolt "go.etcd.io/bbolt"
)

// Get returns the value stored under key in namespace; ok is false when there is none.
func (s *Bolt) Get(ctx context.Context, namespace, key string) ([]byte, bool, error) {
	var val []byte
	var ok bool
	if v, later := s.later.Get(namespace, key); later {
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
	s.later.Forget(namespace, key)
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
	if len(namespace) > bolt.MaxKeySize || len(key) > bolt.MaxKeySize {
		return errors.New("store: put later: namespace or key too long")
	}
	if !s.later.Put(namespace, key, value) {
		return fmt.Errorf("store: put later %s/%s: %w", namespace, key, ErrClosed)
	}
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	if s.laterTimer == nil && !s.laterClosed {
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

// takeLater copies the values put later for the committer. They stay readable by Get until
// s.later.Written confirms their commit.
func (s *Bolt) takeLater() map[writebehind.Key]writebehind.Value {
	s.laterMu.Lock()
	if s.laterTimer != nil {
		s.laterTimer.Stop()
		s.laterTimer = nil
	}
	s.laterMu.Unlock()
	return s.later.Take()
}

// applyLater writes values put later in tx.
func applyLater(tx *bolt.Tx, later map[writebehind.Key]writebehind.Value) error {
	for k, v := range later {
		if err := putKV(tx, k.Namespace, k.Key, v.Value); err != nil {
			return err
		}
	}
	return nil
}

// closeLater makes later PutLater calls fail; the committer writes the values already put
// before it stops.
func (s *Bolt) closeLater() {
	s.later.Close()
	s.laterMu.Lock()
	defer s.laterMu.Unlock()
	s.laterClosed = true
	if s.laterTimer != nil {
		s.laterTimer.Stop()
		s.laterTimer = nil
	}
}
