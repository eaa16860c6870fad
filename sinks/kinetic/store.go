package kinetic

import (
	"context"
	"fmt"

	"github.com/kdbridge/kdbridge/internal/kvjson"
)

// load reads a JSON record of the sink's map; ok is false when there is none (or it does not
// decode: it is logged and counted as none).
func (s *Sink) load(ctx context.Context, key string, v any) (bool, error) {
	ok, err := s.records().Load(ctx, key, v)
	if err != nil {
		return false, fmt.Errorf("kinetic sink: %w", err)
	}
	return ok, nil
}

func (s *Sink) save(ctx context.Context, key string, v any) error {
	if err := s.records().Save(ctx, key, v); err != nil {
		return fmt.Errorf("kinetic sink: %w", err)
	}
	return nil
}

func (s *Sink) records() kvjson.Records {
	return kvjson.Records{KV: s.kv, Namespace: Namespace(s.name), Log: s.log}
}
