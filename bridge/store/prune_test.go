package store

import (
	"context"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	s := openT(t, t.TempDir(), Options{Now: clk.Now, Retention: 24 * time.Hour})
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}

	// Old: 0 and 1 delivered, 2 dead-lettered, 3 still pending, 4 stored without targets.
	for i := range 4 {
		mustAppend(t, s, rec(ev("d", i), tgt("a")))
	}
	mustAppend(t, s, rec(ev("d", 4)))
	for range 2 {
		p, _ := mustHead(t, s, q)
		mustDone(t, s, p)
	}
	p, _ := mustHead(t, s, q)
	if err := s.DeadLetter(ctx, p, "boom"); err != nil {
		t.Fatal(err)
	}
	// New: 5, delivered.
	clk.Set(t0.Add(48 * time.Hour))
	mustAppend(t, s, rec(ev("d", 5), tgt("b")))
	p, _ = mustHead(t, s, bridge.Queue{Target: tgt("b"), Discussion: "d"})
	mustDone(t, s, p)

	n, err := s.Prune(ctx, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("Prune forgot %d IDs, want 3 (events 0, 1, 4)", n)
	}
	if n, err := s.Prune(ctx, t0.Add(24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second Prune = %d, %v; want 0", n, err)
	}
	// Forgotten IDs are accepted again; the others are still deduplicated.
	for i, want := range []int{1, 1, 0, 0, 1, 0} {
		got := mustAppend(t, s, rec(ev("d", i), tgt("c")))
		if len(got) != want {
			t.Errorf("after Prune, Append of event %d stored %d, want %d", i, len(got), want)
		}
	}
	// The dead letter and the pending delivery are intact.
	if dls := mustDeadLetters(t, s, bridge.DeadLetterFilter{}); len(dls) != 1 || dls[0].Pending.Event.Message.Text != "2" {
		t.Fatalf("dead letters after Prune: %+v", dls)
	}
	if p, ok := mustHead(t, s, q); !ok || p.Event.Message.Text != "3" {
		t.Fatalf("pending after Prune: %+v, %v", p, ok)
	}
}

// Prune works in chunks; one call still gets through more than a chunk.
func TestPruneManyChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("appends several chunks of events")
	}
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	s := openT(t, t.TempDir(), Options{Now: clk.Now})
	const total = 2*pruneChunk + 100
	var recs []bridge.Record
	for i := range total {
		recs = append(recs, rec(ev("d", i))) // no targets: finished at once
		if len(recs) == 1000 || i == total-1 {
			mustAppend(t, s, recs...)
			recs = recs[:0]
		}
	}
	n, err := s.Prune(ctx, t0.Add(time.Second))
	if err != nil || n != total {
		t.Fatalf("Prune = %d, %v; want %d", n, err, total)
	}
}
