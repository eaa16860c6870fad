package kvjson

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type memKV struct {
	m   map[string][]byte
	err error
}

func (k *memKV) Get(_ context.Context, ns, key string) ([]byte, bool, error) {
	v, ok := k.m[ns+"/"+key]
	return v, ok, k.err
}

func (k *memKV) Put(_ context.Context, ns, key string, v []byte) error {
	if k.err != nil {
		return k.err
	}
	k.m[ns+"/"+key] = v
	return nil
}

// TestRecords: a record round-trips; a missing one is none; an unreadable one is none and
// logged; a failing store is an error naming the key.
func TestRecords(t *testing.T) {
	ctx := context.Background()
	kv := &memKV{m: map[string][]byte{}}
	var logs bytes.Buffer
	r := Records{KV: kv, Namespace: "slack:ops", Log: slog.New(slog.NewTextHandler(&logs, nil))}
	type rec struct{ TS string }
	if err := r.Save(ctx, "msg/1", rec{"1.2"}); err != nil {
		t.Fatal(err)
	}
	var got rec
	if ok, err := r.Load(ctx, "msg/1", &got); !ok || err != nil || got.TS != "1.2" {
		t.Fatalf("Load = %v, %v, %+v", ok, err, got)
	}
	if ok, err := r.Load(ctx, "msg/2", &got); ok || err != nil {
		t.Fatalf("Load of a missing record = %v, %v", ok, err)
	}
	kv.m["slack:ops/msg/3"] = []byte("{not json")
	if ok, err := r.Load(ctx, "msg/3", &got); ok || err != nil || !strings.Contains(logs.String(), "unreadable record") {
		t.Fatalf("Load of an unreadable record = %v, %v; log %q", ok, err, logs.String())
	}
	kv.err = errors.New("disk full")
	if _, err := r.Load(ctx, "msg/1", &got); err == nil || !strings.Contains(err.Error(), "msg/1") {
		t.Fatalf("Load with a failing store: %v", err)
	}
	if err := r.Save(ctx, "msg/4", rec{}); err == nil || !strings.Contains(err.Error(), "writing msg/4") {
		t.Fatalf("Save with a failing store: %v", err)
	}
}
