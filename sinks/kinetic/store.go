package kinetic

import (
	"context"
	"encoding/json"
	"fmt"
)

func (s *Sink) load(ctx context.Context, key string, v any) (bool, error) {
	b, ok, err := s.kv.Get(ctx, Namespace(s.name), key)
	if err != nil {
		return false, fmt.Errorf("kinetic sink: reading %s from the store: %w", key, err)
	}
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.log.Warn("ignoring an unreadable record in the store", "key", key, "error", err)
		return false, nil
	}
	return true, nil
}

func (s *Sink) save(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.kv.Put(ctx, Namespace(s.name), key, b); err != nil {
		return fmt.Errorf("kinetic sink: writing %s to the store: %w", key, err)
	}
	return nil
}
