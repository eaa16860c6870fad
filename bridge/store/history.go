package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// HistoryFileName is the attempt history's own bbolt file in the state directory.
//
// The history has a file of its own because bbolt admits one writer per file: written into
// kdbridge.db, each batch of history (hundreds of records with their index entries on pages
// all over the index, then two fsyncs) held the writer for several milliseconds, and every
// Append that came meanwhile — an event on its way to delivery — waited behind it. That was
// most of the steady-state latency tail (p99 13.8 → 5.4 ms without history; docs/performance.md).
// In a file of its own the history commits beside the delivery commits, never in front of
// them, and its pages are not in the mapping the deliveries read.
const HistoryFileName = "history.db"

// historyMoveChunk is how many keys one transaction copies when Open moves a history kept
// in kdbridge.db (before history.db existed) into history.db.
const historyMoveChunk = 20000

// openHistory opens dir/history.db, creating its buckets, and moves into it any history that
// an older kdbridge kept in main.
func openHistory(dir string, main *bolt.DB) (*bolt.DB, error) {
	path := filepath.Join(dir, HistoryFileName)
	// As for kdbridge.db (initialMmapSize): each remap as the file grows waits for the
	// readers and copies out the dirty nodes; history grows fast, so map ahead.
	db, err := openBolt(path, initialMmapSize()/4)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAttempts, bucketAttemptIdx} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err == nil {
		err = moveHistory(main, db)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// moveHistory copies the attempts bucket of main into hist and indexes it there, then deletes
// the attempts and attempt-idx buckets from main. Copying and indexing are idempotent (same
// keys, same values), so a crash halfway only means the next Open does it again; the
// history's key sequence continues after main's.
func moveHistory(main, hist *bolt.DB) error {
	var seq uint64
	found := false
	if err := main.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAttempts); b != nil {
			found, seq = true, b.Sequence()
		}
		if tx.Bucket(bucketAttemptIdx) != nil {
			found = true
		}
		return nil
	}); err != nil || !found {
		return err
	}
	// The records as they are; the index built again from them, in history.db's layout.
	if err := copyBucket(main, hist, bucketAttempts); err != nil {
		return fmt.Errorf("move attempt history from %s: %w", main.Path(), err)
	}
	if err := reindexHistory(hist); err != nil {
		return fmt.Errorf("index the attempt history moved from %s: %w", main.Path(), err)
	}
	if err := hist.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttempts)
		if seq > b.Sequence() {
			return b.SetSequence(seq)
		}
		return nil
	}); err != nil {
		return err
	}
	return main.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketAttempts, bucketAttemptIdx} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return fmt.Errorf("delete bucket %s from %s: %w", name, main.Path(), err)
			}
		}
		return nil
	})
}

// copyBucket copies the keys of the top-level bucket name from src to dst in chunks.
func copyBucket(src, dst *bolt.DB, name []byte) error {
	var after []byte
	for {
		var keys, values [][]byte
		err := src.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(keys) < historyMoveChunk; k, v = c.Next() {
				keys, values = append(keys, bytes.Clone(k)), append(values, bytes.Clone(v))
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		err = dst.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			b.FillPercent = 0.95 // the keys come in order
			for i, k := range keys {
				if err := b.Put(k, values[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		after = keys[len(keys)-1]
	}
}

// reindexHistory writes the index entries of every record in hist, in chunks.
func reindexHistory(hist *bolt.DB) error {
	var after []byte
	for {
		n := 0
		err := hist.Update(func(tx *bolt.Tx) error {
			n = 0
			c := tx.Bucket(bucketAttempts).Cursor()
			idx := tx.Bucket(bucketAttemptIdx)
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < historyMoveChunk; k, v = c.Next() {
				r, err := decodeAttempt(k, v)
				if err != nil {
					return err
				}
				for _, e := range attemptIndexEntries(r, k) {
					if err := idx.Put(e[0], e[1]); err != nil {
						return err
					}
				}
				after = bytes.Clone(k)
				n++
			}
			return nil
		})
		if err != nil || n < historyMoveChunk {
			return err
		}
	}
}
