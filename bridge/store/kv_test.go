package store

import (
	"context"
	"testing"
)

func TestGetPut(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir(), Options{})
	if _, ok, err := s.Get(ctx, "slack-ts", "m1"); ok || err != nil {
		t.Fatalf("Get of a missing key = %v, %v", ok, err)
	}
	for _, kv := range []struct{ ns, k, v string }{
		{"slack-ts", "m1", "1700000000.000100"},
		{"checkpoint", "m1", "cp"},
		{"slack-ts", "m1", "1700000000.000200"}, // overwrite
		{"slack-ts", "empty", ""},
	} {
		if err := s.Put(ctx, kv.ns, kv.k, []byte(kv.v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range []struct{ ns, k, v string }{
		{"slack-ts", "m1", "1700000000.000200"},
		{"checkpoint", "m1", "cp"},
		{"slack-ts", "empty", ""},
	} {
		v, ok, err := s.Get(ctx, kv.ns, kv.k)
		if err != nil || !ok || string(v) != kv.v {
			t.Fatalf("Get(%s, %s) = %q, %v, %v; want %q", kv.ns, kv.k, v, ok, err, kv.v)
		}
	}
	if _, ok, _ := s.Get(ctx, "other", "m1"); ok {
		t.Fatal("namespaces share keys")
	}
	if err := s.Put(ctx, "", "k", nil); err == nil {
		t.Fatal("Put accepted an empty namespace")
	}
	if err := s.Put(ctx, "ns", "", nil); err == nil {
		t.Fatal("Put accepted an empty key")
	}
}
