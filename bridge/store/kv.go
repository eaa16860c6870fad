package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Get returns the value stored under key in namespace; ok is false when there is none.
func (s *Bolt) Get(ctx context.Context, namespace, key string) ([]byte, bool, error) {
	var val []byte
	var ok bool
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
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ns, err := tx.Bucket(bucketKV).CreateBucketIfNotExists([]byte(namespace))
		if err != nil {
			return err
		}
		return ns.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("store: put %s/%s: %w", namespace, key, err)
	}
	return nil
}
