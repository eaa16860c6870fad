package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

func TestDeadLetters(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := openT(t, t.TempDir(), Options{Now: clk.Now})
	hook, slack := tgt("hook"), bridge.Target{Route: "r", Sink: "slack", Channel: "C1"}
	for i := range 4 {
		mustAppend(t, s, rec(ev("d", i), hook, slack))
	}
	qh := bridge.Queue{Target: hook, Discussion: "d"}
	qs := bridge.Queue{Target: slack, Discussion: "d"}

	// hook: events 0 and 1 die an hour apart, 2 and 3 are delivered.
	kill := func(q bridge.Queue, reason string) {
		t.Helper()
		p, ok := mustHead(t, s, q)
		if !ok {
			t.Fatal("nothing to dead-letter")
		}
		p.Attempts, p.LastError = 5, reason
		if err := s.DeadLetter(ctx, p, "gave up: "+reason); err != nil {
			t.Fatal(err)
		}
	}
	kill(qh, "boom 0")
	clk.Set(clk.Now().Add(time.Hour))
	kill(qh, "boom 1")
	// slack: event 0 dies; the rest are delivered.
	kill(qs, "channel_not_found")
	if got := drain(t, s, qh); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("hook delivered %v after two dead letters", got)
	}
	if got := drain(t, s, qs); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("slack delivered %v", got)
	}
	if n := bodies(t, s); n != 2 {
		t.Fatalf("%d event bodies kept, want the 2 that dead letters refer to", n)
	}

	all := mustDeadLetters(t, s, bridge.DeadLetterFilter{})
	if len(all) != 3 {
		t.Fatalf("DeadLetters = %d letters, want 3", len(all))
	}
	d0h, d0s, d1h := all[0], all[1], all[2] // oldest event first
	if d0h.Pending.Event.Message.Text != "0" || d0h.Pending.Queue != qh || d0h.Reason != "gave up: boom 0" ||
		d0h.Pending.Attempts != 5 || d0h.Pending.LastError != "boom 0" || !d0h.FailedAt.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("first dead letter = %+v", d0h)
	}
	if d0s.Pending.Queue != qs || d1h.Pending.Event.Message.Text != "1" {
		t.Fatalf("dead letters out of order: %s %s %s", d0h.ID, d0s.ID, d1h.ID)
	}
	if d0h.ID == d0s.ID || d0h.ID == d1h.ID {
		t.Fatalf("dead-letter IDs are not unique: %s %s %s", d0h.ID, d0s.ID, d1h.ID)
	}

	for _, tc := range []struct {
		name string
		f    bridge.DeadLetterFilter
		want []string
	}{
		{"sink", bridge.DeadLetterFilter{Sink: "slack"}, []string{d0s.ID}},
		{"since", bridge.DeadLetterFilter{Since: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)}, []string{d0s.ID, d1h.ID}},
		{"since is inclusive", bridge.DeadLetterFilter{Since: d1h.FailedAt}, []string{d0s.ID, d1h.ID}},
		{"ids", bridge.DeadLetterFilter{IDs: []string{d1h.ID, d0h.ID, d1h.ID, "dl-nope", "dl-99-0"}}, []string{d0h.ID, d1h.ID}},
		{"ids and sink", bridge.DeadLetterFilter{IDs: []string{d1h.ID, d0s.ID}, Sink: "hook"}, []string{d1h.ID}},
		{"unknown sink", bridge.DeadLetterFilter{Sink: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := letterIDs(mustDeadLetters(t, s, tc.f)); !slices.Equal(got, tc.want) {
				t.Fatalf("DeadLetters(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}

	// Replay puts event 0 back at the end of the hook queue, behind a newer event.
	mustAppend(t, s, rec(ev("d", 4), hook))
	replayed, err := s.Replay(ctx, bridge.DeadLetterFilter{IDs: []string{d0h.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if got := letterIDs(replayed); !slices.Equal(got, []string{d0h.ID}) {
		t.Fatalf("Replay returned %v", got)
	}
	p, _ := mustHead(t, s, qh)
	if p.Event.Message.Text != "4" {
		t.Fatalf("head after replay is event %s, want 4 (the replay goes to the end)", p.Event.Message.Text)
	}
	mustDone(t, s, p)
	p, _ = mustHead(t, s, qh)
	if p.Event.Message.Text != "0" || p.Attempts != 0 || p.LastError != "" || p.Seq <= d0h.Pending.Seq {
		t.Fatalf("replayed delivery = %+v, want event 0 with a fresh history and a new seq", p)
	}
	// It fails again: the dead letter gets its old ID back.
	if err := s.DeadLetter(ctx, p, "again"); err != nil {
		t.Fatal(err)
	}
	if got := mustDeadLetters(t, s, bridge.DeadLetterFilter{IDs: []string{d0h.ID}}); len(got) != 1 || got[0].Reason != "again" {
		t.Fatalf("dead letter after a second failure = %+v", got)
	}
	replayed, err = s.Replay(ctx, bridge.DeadLetterFilter{IDs: []string{d0h.ID}})
	if err != nil || len(replayed) != 1 {
		t.Fatalf("second Replay = %v, %v", replayed, err)
	}
	if got := drain(t, s, qh); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("after replay hook delivered %v, want the replayed event once", got)
	}

	// Drop the rest: their bodies go, as nothing needs them any more.
	n, err := s.Drop(ctx, bridge.DeadLetterFilter{Sink: "slack"})
	if err != nil || n != 1 {
		t.Fatalf("Drop(slack) = %d, %v; want 1", n, err)
	}
	if got := letterIDs(mustDeadLetters(t, s, bridge.DeadLetterFilter{})); !slices.Equal(got, []string{d1h.ID}) {
		t.Fatalf("after Drop: %v", got)
	}
	if n, err := s.Drop(ctx, bridge.DeadLetterFilter{}); err != nil || n != 1 {
		t.Fatalf("Drop() = %d, %v; want 1", n, err)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d event bodies kept after every dead letter was dropped", n)
	}
	if got, err := s.Replay(ctx, bridge.DeadLetterFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("Replay with no dead letters = %v, %v", got, err)
	}
}

func TestDeadLetterIDParse(t *testing.T) {
	for _, id := range []string{"dl-1-0", "dl-18446744073709551615-4294967295"} {
		k, ok := parseDeadLetterID(id)
		if !ok {
			t.Fatalf("%s did not parse", id)
		}
		seq, index, _ := splitDeadKey(k)
		if got := deadLetterID(seq, index); got != id {
			t.Fatalf("round trip of %s gave %s", id, got)
		}
	}
	for _, id := range []string{"", "dl-", "dl-1", "dl-x-0", "dl-1-x", "dl-1-4294967296", "xx-1-0", "dl--1-0"} {
		if _, ok := parseDeadLetterID(id); ok {
			t.Errorf("%q parsed as a dead-letter ID", id)
		}
	}
}

func mustDeadLetters(t testing.TB, s *Bolt, f bridge.DeadLetterFilter) []bridge.DeadLetter {
	t.Helper()
	dls, err := s.DeadLetters(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

func letterIDs(dls []bridge.DeadLetter) []string {
	var out []string
	for _, d := range dls {
		out = append(out, d.ID)
	}
	return out
}
