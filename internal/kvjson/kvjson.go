// Package kvjson keeps JSON records in a store's small named values (bridge.Store Get and
// Put): the Slack sink's message and thread maps, the Kinetic sink's reverse map.
package kvjson

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
)

// KV is the part of a store that kvjson uses.
type KV interface {
	Get(ctx context.Context, namespace, key string) ([]byte, bool, error)
	Put(ctx context.Context, namespace, key string, value []byte) error
}

// Records are the JSON records of one namespace.
type Records struct {
	KV        KV
	Namespace string
	Log       *slog.Logger // hears about records that do not decode
}

// Load reads the record at key into v; ok is false when there is none. A record that does
// not decode is logged and counted as none: for a map of posted messages, posting anew beats
// failing for ever.
func (r Records) Load(ctx context.Context, key string, v any) (ok bool, err error) {
	b, ok, err := r.KV.Get(ctx, r.Namespace, key)
	if err != nil {
		return false, fmt.Errorf("reading %s from the store: %w", key, err)
	}
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		r.Log.Warn("ignoring an unreadable record in the store", "key", key, "error", err)
		return false, nil
	}
	return true, nil
}

// Save writes v as the record at key.
func (r Records) Save(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := r.KV.Put(ctx, r.Namespace, key, b); err != nil {
		return fmt.Errorf("writing %s to the store: %w", key, err)
	}
	return nil
}
