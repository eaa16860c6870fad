package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kdbridge/kdbridge/internal/writebehind"
)

// Get returns the value stored under key in namespace; ok is false when there is none.
func (s *Store) Get(ctx context.Context, namespace, key string) ([]byte, bool, error) {
	if v, ok := s.later.Get(namespace, key); ok {
		return v, true, nil
	}
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM kdbridge_kv WHERE namespace = $1 AND key = $2`, namespace, textKey(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.fail(fmt.Sprintf("get %s/%s", namespace, key), err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Put stores value under key in namespace; it returns once the value is committed.
func (s *Store) Put(ctx context.Context, namespace, key string, value []byte) error {
	if namespace == "" || key == "" {
		return errors.New("pgstore: put: empty namespace or key")
	}
	if value == nil {
		value = []byte{}
	}
	// A value put later and not yet written would overwrite this one: this call is newer.
	// Under commitMu, so that a commit cannot have taken that value already and write it
	// after this one (Forget only drops a value still waiting).
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.later.Forget(namespace, key)
	b, err := s.newBatch(true)
	if err == nil {
		putKVs(b, map[writebehind.Key]writebehind.Value{{Namespace: namespace, Key: key}: {Value: value}})
		err = s.send(ctx, b)
	}
	if err != nil {
		return s.fail(fmt.Sprintf("put %s/%s", namespace, key), err)
	}
	return nil
}

// putKVs queues the writes of kvs in b.
func putKVs(b *pgx.Batch, kvs map[writebehind.Key]writebehind.Value) {
	if len(kvs) == 0 {
		return
	}
	var nss, keys []string
	var vals [][]byte
	for k, v := range kvs {
		nss, keys, vals = append(nss, k.Namespace), append(keys, textKey(k.Key)), append(vals, v.Value)
	}
	b.Queue(`INSERT INTO kdbridge_kv (namespace, key, value)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value`, nss, keys, vals)
}

// PutLater stores value under key in namespace like Put, but without waiting: the value is
// written by the next group commit (see Done), started at once, and until then Get returns
// it from memory. Only the latest value per key is kept. A crash before that commit loses
// it. It is for values whose loss costs only time, such as a source checkpoint.
func (s *Store) PutLater(namespace, key string, value []byte) error {
	if namespace == "" || key == "" {
		return errors.New("pgstore: put later: empty namespace or key")
	}
	if !s.later.Put(namespace, key, value) {
		return fmt.Errorf("pgstore: put later %s/%s: %w", namespace, key, ErrClosed)
	}
	s.kickCommitter()
	return nil
}

// keyEscaper makes a key fit a text column: PostgreSQL text cannot hold NUL, which keys of
// disabled targets (bridge.Target.Key) contain. Backslashes are escaped first, so distinct
// keys stay distinct.
var keyEscaper = strings.NewReplacer(`\`, `\\`, "\x00", `\0`)

// textKey is key as kdbridge_kv stores it.
func textKey(key string) string { return keyEscaper.Replace(key) }
