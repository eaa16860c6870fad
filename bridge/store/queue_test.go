package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

func TestAppendHeadDoneInOrder(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	var recs []bridge.Record
	for i := range 5 {
		recs = append(recs, rec(ev("d1", i), tgt("hook")))
	}
	got := mustAppend(t, s, recs...)
	if len(got) != 5 {
		t.Fatalf("Append stored %d records, want 5", len(got))
	}
	q := bridge.Queue{Target: tgt("hook"), Discussion: "d1"}
	var lastSeq uint64
	for i := range 5 {
		p, ok := mustHead(t, s, q)
		if !ok {
			t.Fatalf("queue empty after %d deliveries", i)
		}
		if p.Event.ID != recs[i].Event.ID || p.Event.Message.Text != recs[i].Event.Message.Text {
			t.Fatalf("head %d is %s (%q), want %s", i, p.Event.ID, p.Event.Message.Text, recs[i].Event.ID)
		}
		if p.Seq <= lastSeq || p.Queue != q || p.Attempts != 0 || !p.NextTry.IsZero() {
			t.Fatalf("head %d: unexpected pending %+v", i, p)
		}
		lastSeq = p.Seq
		// Head does not consume: asking twice gives the same delivery.
		if again, _ := mustHead(t, s, q); again.Seq != p.Seq {
			t.Fatalf("Head moved without Done: %d then %d", p.Seq, again.Seq)
		}
		mustDone(t, s, p)
		mustDone(t, s, p) // a repeated Done is harmless
	}
	if _, ok := mustHead(t, s, q); ok {
		t.Fatal("queue not empty after all Done")
	}
	if qs, err := s.Queues(context.Background()); err != nil || len(qs) != 0 {
		t.Fatalf("Queues = %v, %v; want none", qs, err)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d event bodies kept after every delivery was done", n)
	}
}

func TestQueuesAreIndependent(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	a, b := tgt("a"), bridge.Target{Route: "r", Sink: "b", Channel: "C1"}
	for i := range 3 {
		mustAppend(t, s, rec(ev("d1", i), a, b), rec(ev("d2", i), a))
	}
	qs, err := s.Queues(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []bridge.Queue{{Target: a, Discussion: "d1"}, {Target: a, Discussion: "d2"}, {Target: b, Discussion: "d1"}}
	if !sameQueues(qs, want) {
		t.Fatalf("Queues = %v, want %v", qs, want)
	}
	// Draining one queue leaves the others, and the shared event bodies, alone.
	if got := drain(t, s, bridge.Queue{Target: a, Discussion: "d1"}); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("a/d1 delivered %v", got)
	}
	if n := bodies(t, s); n != 6 {
		t.Fatalf("%d bodies kept, want 6 (3 still owed to b/d1, 3 to a/d2)", n)
	}
	if got := drain(t, s, bridge.Queue{Target: b, Discussion: "d1"}); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("b/d1 delivered %v", got)
	}
	if n := bodies(t, s); n != 3 {
		t.Fatalf("%d bodies kept, want 3", n)
	}
	if got := drain(t, s, bridge.Queue{Target: a, Discussion: "d2"}); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("a/d2 delivered %v", got)
	}
}

func sameQueues(got, want []bridge.Queue) bool {
	key := func(q bridge.Queue) string { return q.Target.Key() + "\x01" + q.Discussion }
	cmp := func(x, y bridge.Queue) int { return strings.Compare(key(x), key(y)) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	return slices.Equal(got, want)
}

func TestAttemptedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	mustAppend(t, s, rec(ev("d", 0), tgt("a")), rec(ev("d", 1), tgt("a")))
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	p, _ := mustHead(t, s, q)
	first := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	p.Attempts, p.FirstTry, p.LastError, p.NextTry = 2, first, "503 Service Unavailable", first.Add(time.Minute)
	if err := s.Attempted(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	check := func(s *Bolt) {
		t.Helper()
		got, _ := mustHead(t, s, q)
		if got.Seq != p.Seq || got.Attempts != 2 || !got.FirstTry.Equal(first) || got.LastError != p.LastError || !got.NextTry.Equal(p.NextTry) {
			t.Fatalf("Head after Attempted = %+v, want attempts of %+v", got, p)
		}
	}
	check(s)
	s.Close()
	check(openT(t, dir, Options{}))
}

func TestCallsAfterClose(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(context.Background(), []bridge.Record{rec(ev("d", 0), tgt("a"))}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Head(context.Background(), bridge.Queue{Target: tgt("a"), Discussion: "d"}); err == nil {
		t.Fatal("Head after Close succeeded")
	}
}

// Done does not wait for its commit, but Close commits what was queued.
func TestDoneIsCommittedByClose(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	mustAppend(t, s, rec(ev("d", 0), tgt("a")), rec(ev("d", 1), tgt("a")))
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	p, _ := mustHead(t, s, q)
	mustDone(t, s, p)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(context.Background(), p); !errors.Is(err, ErrClosed) {
		t.Fatalf("Done after Close: %v, want ErrClosed", err)
	}
	s = openT(t, dir, Options{})
	if got := drain(t, s, q); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("after reopen the queue delivered %v, want only 1", got)
	}
}
