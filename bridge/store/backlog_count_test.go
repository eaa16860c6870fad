package store

import (
	"context"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

func TestBacklogCountsQueuesAndHeadTimes(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)}
	s := openT(t, t.TempDir(), Options{Now: clk.Now})
	a, b := tgt("a"), bridge.Target{Route: "r", Sink: "b", Channel: "C1"}
	t0 := clk.Now()
	for i := range 4 {
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		mustAppend(t, s, rec(ev("d1", i), a, b), rec(ev("d2", i), a))
	}
	q1 := bridge.Queue{Target: a, Discussion: "d1"}
	p, _ := mustHead(t, s, q1)
	if !p.StoredAt.Equal(t0) {
		t.Errorf("Head StoredAt = %v, want %v", p.StoredAt, t0)
	}
	mustDone(t, s, p) // queued, not committed: must not count
	p, _ = mustHead(t, s, q1)
	if want := t0.Add(time.Minute); !p.StoredAt.Equal(want) {
		t.Errorf("next head StoredAt = %v, want %v", p.StoredAt, want)
	}
	// Dead letters do not count either.
	q2 := bridge.Queue{Target: a, Discussion: "d2"}
	p2, _ := mustHead(t, s, q2)
	if err := s.DeadLetter(context.Background(), p2, "test"); err != nil {
		t.Fatal(err)
	}

	got, err := s.Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[bridge.Queue]bridge.QueueBacklog{
		q1:                            {Queue: q1, Pending: 3, OldestAt: t0.Add(time.Minute)},
		q2:                            {Queue: q2, Pending: 3, OldestAt: t0.Add(time.Minute)},
		{Target: b, Discussion: "d1"}: {Queue: bridge.Queue{Target: b, Discussion: "d1"}, Pending: 4, OldestAt: t0},
	}
	if len(got) != len(want) {
		t.Fatalf("Backlog = %+v, want %d queues", got, len(want))
	}
	for _, g := range got {
		w := want[g.Queue]
		if g.Pending != w.Pending || !g.OldestAt.Equal(w.OldestAt) {
			t.Errorf("queue %+v: %d pending, oldest %v; want %d, %v", g.Queue, g.Pending, g.OldestAt, w.Pending, w.OldestAt)
		}
	}
	flush(t, s)
	if again, err := s.Backlog(context.Background()); err != nil || len(again) != 3 || again[0].Pending+again[1].Pending+again[2].Pending != 10 {
		t.Errorf("after the commit: %+v, %v", again, err)
	}
}
