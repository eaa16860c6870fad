package main

import (
	"context"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// Checkpoints read back what was set, newest first, also across a restart: the first one of
// a key durably, later ones written behind and committed by Close at the latest.
func TestStoreCheckpointsRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	cps := storeCheckpoints{st}
	if _, ok, err := cps.Checkpoint(ctx, "src", "d1"); ok || err != nil {
		t.Fatalf("Checkpoint before any = %v, %v", ok, err)
	}
	at := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	for i, id := range []string{"m1", "m2", "m3"} {
		if err := cps.SetCheckpoint(ctx, "src", "d1", kinetic.Checkpoint{MessageID: id, CreatedAt: at.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		if cp, ok, err := cps.Checkpoint(ctx, "src", "d1"); err != nil || !ok || cp.MessageID != id {
			t.Fatalf("Checkpoint after setting %s = %+v, %v, %v", id, cp, ok, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(dir, store.Options{}); err != nil {
		t.Fatal(err)
	}
	cps = storeCheckpoints{st}
	if cp, ok, err := cps.Checkpoint(ctx, "src", "d1"); err != nil || !ok || cp.MessageID != "m3" || !cp.CreatedAt.Equal(at.Add(2*time.Second)) {
		t.Fatalf("Checkpoint after restart = %+v, %v, %v; want m3", cp, ok, err)
	}
}

// laterCounter counts the puts written behind.
type laterCounter struct {
	stateStore
	later int
}

func (l *laterCounter) PutLater(namespace, key string, value []byte) error {
	l.later++
	return l.stateStore.PutLater(namespace, key, value)
}

// The source's marks ('~' keys) are stored durably every time, not written behind like a
// discussion's later checkpoints: each must be on disk before what it covers happens.
func TestStoreCheckpointsMarksAreDurable(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lc := &laterCounter{stateStore: st}
	cps := storeCheckpoints{lc}
	for i := range 3 {
		if err := cps.SetCheckpoint(ctx, "src", "~firsts", kinetic.Checkpoint{CreatedAt: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if lc.later != 0 {
		t.Errorf("%d marks written behind, want every one durably", lc.later)
	}
	for i := range 2 {
		if err := cps.SetCheckpoint(ctx, "src", "d1", kinetic.Checkpoint{MessageID: "m", CreatedAt: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if lc.later != 1 {
		t.Errorf("%d of a discussion's 2 checkpoints written behind, want the second", lc.later)
	}
}
