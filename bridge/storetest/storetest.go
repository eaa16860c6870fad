// Package storetest is the contract suite of bridge.Store: every behaviour the dispatcher,
// the sources, the sinks and the CLI rely on, run against each implementation (bridge/store
// on bbolt, bridge/pgstore on PostgreSQL), together with the optional interfaces they
// implement (bridge.BacklogCounter, bridge.AttemptLog, PutLater).
//
// Times are compared at microsecond precision, which every backend keeps.
package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// LaterPutter is a Store that can write a value behind (the daemon type-asserts checkpoints
// on it): Get returns the value at once, the store writes it with a later commit.
type LaterPutter interface {
	PutLater(namespace, key string, value []byte) error
}

// Run runs the contract suite; open returns a fresh, empty store, closed by the test's
// cleanup or by the case itself (Close must then be idempotent).
func Run(t *testing.T, open func(t *testing.T) bridge.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s bridge.Store)
	}{
		{"AppendHeadDoneInOrder", appendHeadDoneInOrder},
		{"QueuesAreIndependent", queuesAreIndependent},
		{"QueueNamesCannotCollide", queueNamesCannotCollide},
		{"AppendDedupe", appendDedupe},
		{"AppendRepeatedTargetOnce", appendRepeatedTargetOnce},
		{"AppendWithoutTargetsIsRemembered", appendWithoutTargets},
		{"AppendRejectsEventWithoutID", appendRejectsEventWithoutID},
		{"EventRoundTrip", eventRoundTrip},
		{"AttemptedRoundTrip", attemptedRoundTrip},
		{"CancelledContextWritesNothing", cancelledContextWritesNothing},
		{"DeadLetters", deadLetters},
		{"DeadLetterOfFinishedDeliveryIsNoop", deadLetterOfFinishedDeliveryIsNoop},
		{"GetPut", getPut},
		{"PutLater", putLater},
		{"Prune", prune},
		{"Backlog", backlog},
		{"AttemptLog", attemptLog},
		{"Peek", peek},
		{"ConcurrentAppendAndDone", concurrentAppendAndDone},
		{"CallsAfterClose", callsAfterClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

var bg = context.Background()

// Ev is event n of discussion disc; its message text is n.
func Ev(disc string, n int) bridge.Event {
	id := fmt.Sprintf("%s-%06d", disc, n)
	return bridge.Event{
		ID:         bridge.EventID("src", disc, id, "v1", bridge.MessageCreated),
		Type:       bridge.MessageCreated,
		Source:     "src",
		Time:       time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC),
		Discussion: bridge.Discussion{ID: disc, Title: "Incident " + disc},
		Message:    &bridge.Message{ID: id, Kind: bridge.KindUser, Text: strconv.Itoa(n), Author: bridge.User{Username: "alice"}},
	}
}

func tgt(sink string) bridge.Target { return bridge.Target{Route: "r", Sink: sink} }

func rec(e bridge.Event, ts ...bridge.Target) bridge.Record {
	return bridge.Record{Event: e, Targets: ts}
}

func mustAppend(t testing.TB, s bridge.Store, recs ...bridge.Record) []bridge.Record {
	t.Helper()
	got, err := s.Append(bg, recs)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustHead(t testing.TB, s bridge.Store, q bridge.Queue) (bridge.Pending, bool) {
	t.Helper()
	p, ok, err := s.Head(bg, q)
	if err != nil {
		t.Fatal(err)
	}
	return p, ok
}

func mustDone(t testing.TB, s bridge.Store, p bridge.Pending) {
	t.Helper()
	if err := s.Done(bg, p); err != nil {
		t.Fatal(err)
	}
}

func mustQueues(t testing.TB, s bridge.Store) []bridge.Queue {
	t.Helper()
	qs, err := s.Queues(bg)
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

// drain delivers a queue to the end and returns the message texts in delivery order.
func drain(t testing.TB, s bridge.Store, q bridge.Queue) []string {
	t.Helper()
	var got []string
	for range 100_000 {
		p, ok := mustHead(t, s, q)
		if !ok {
			return got
		}
		got = append(got, p.Event.Message.Text)
		mustDone(t, s, p)
	}
	t.Fatalf("queue %v does not end", q)
	return nil
}

func texts(recs []bridge.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event.Message.Text)
	}
	return out
}

func sameQueues(got, want []bridge.Queue) bool {
	key := func(q bridge.Queue) string { return q.Target.Key() + "\x01" + q.Discussion }
	cmp := func(x, y bridge.Queue) int { return strings.Compare(key(x), key(y)) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	return slices.Equal(got, want)
}

func appendHeadDoneInOrder(t *testing.T, s bridge.Store) {
	var recs []bridge.Record
	for i := range 5 {
		recs = append(recs, rec(Ev("d1", i), tgt("hook")))
	}
	if got := mustAppend(t, s, recs...); len(got) != 5 {
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
		if p.Seq <= lastSeq || p.Queue != q || p.Attempts != 0 || !p.NextTry.IsZero() || !p.FirstTry.IsZero() || p.LastError != "" {
			t.Fatalf("head %d: unexpected pending %+v", i, p)
		}
		lastSeq = p.Seq
		if again, _ := mustHead(t, s, q); again.Seq != p.Seq {
			t.Fatalf("Head moved without Done: %d then %d", p.Seq, again.Seq)
		}
		mustDone(t, s, p)
		mustDone(t, s, p) // a repeated Done is harmless
		if next, ok := mustHead(t, s, q); ok && next.Seq == p.Seq {
			t.Fatalf("Head returned delivery %d after its Done returned", p.Seq)
		}
	}
	if _, ok := mustHead(t, s, q); ok {
		t.Fatal("queue not empty after all Done")
	}
	if qs := mustQueues(t, s); len(qs) != 0 {
		t.Fatalf("Queues = %v; want none", qs)
	}
}

// peek checks bridge.Peeker against Head: the same deliveries, oldest first, at most n, of
// the one queue, without those whose Done returned, and with the head's attempt history.
func peek(t *testing.T, s bridge.Store) {
	pk, ok := s.(bridge.Peeker)
	if !ok {
		t.Skip("the store is no Peeker")
	}
	a, b := tgt("a"), tgt("b")
	for i := range 6 {
		mustAppend(t, s, rec(Ev("d1", i), a, b), rec(Ev("d2", i), a))
	}
	q := bridge.Queue{Target: a, Discussion: "d1"}
	texts := func(ps []bridge.Pending) []string {
		var out []string
		for _, p := range ps {
			if p.Queue != q {
				t.Fatalf("Peek of %v returned a delivery of %v", q, p.Queue)
			}
			out = append(out, p.Event.Message.Text)
		}
		return out
	}
	mustPeek := func(n int) []bridge.Pending {
		t.Helper()
		ps, err := pk.Peek(bg, q, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	ps := mustPeek(4)
	if got := texts(ps); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("Peek(4) = %v", got)
	}
	head, _ := mustHead(t, s, q)
	if ps[0].Seq != head.Seq || ps[0].Event.ID != head.Event.ID || !ps[0].StoredAt.Equal(head.StoredAt) {
		t.Fatalf("Peek's first %+v is not Head's %+v", ps[0], head)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Seq <= ps[i-1].Seq {
			t.Fatalf("Peek out of order: %d then %d", ps[i-1].Seq, ps[i].Seq)
		}
	}
	// The head failed once; then the first two are delivered.
	head.Attempts, head.LastError, head.FirstTry = 1, "HTTP 503", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := s.Attempted(bg, head); err != nil {
		t.Fatal(err)
	}
	if ps := mustPeek(1); len(ps) != 1 || ps[0].Attempts != 1 || ps[0].LastError != "HTTP 503" || !ps[0].FirstTry.Equal(head.FirstTry) {
		t.Fatalf("Peek after Attempted = %+v", ps)
	}
	mustDone(t, s, ps[0])
	mustDone(t, s, ps[1])
	if got := texts(mustPeek(100)); !slices.Equal(got, []string{"2", "3", "4", "5"}) {
		t.Fatalf("Peek(100) after two Done = %v", got)
	}
	if ps, err := pk.Peek(bg, bridge.Queue{Target: a, Discussion: "none"}, 5, make([]bridge.Pending, 3)); err != nil || len(ps) != 0 {
		t.Fatalf("Peek of an empty queue = %v, %v", ps, err)
	}
	if ps, err := pk.Peek(bg, q, 0, nil); err != nil || len(ps) != 0 {
		t.Fatalf("Peek(0) = %v, %v", ps, err)
	}
	for _, p := range mustPeek(10) {
		mustDone(t, s, p)
	}
	if ps := mustPeek(10); len(ps) != 0 {
		t.Fatalf("Peek after draining = %v", texts(ps))
	}
	if got := drain(t, s, bridge.Queue{Target: b, Discussion: "d1"}); len(got) != 6 {
		t.Fatalf("the other target's queue lost deliveries: %v", got)
	}
}

func queuesAreIndependent(t *testing.T, s bridge.Store) {
	a, b := tgt("a"), bridge.Target{Route: "r", Sink: "b", Channel: "C1"}
	for i := range 3 {
		mustAppend(t, s, rec(Ev("d1", i), a, b), rec(Ev("d2", i), a))
	}
	want := []bridge.Queue{{Target: a, Discussion: "d1"}, {Target: a, Discussion: "d2"}, {Target: b, Discussion: "d1"}}
	if qs := mustQueues(t, s); !sameQueues(qs, want) {
		t.Fatalf("Queues = %v, want %v", qs, want)
	}
	if got := drain(t, s, bridge.Queue{Target: a, Discussion: "d1"}); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("a/d1 delivered %v", got)
	}
	if qs := mustQueues(t, s); !sameQueues(qs, want[1:]) {
		t.Fatalf("after draining a/d1, Queues = %v, want %v", qs, want[1:])
	}
	// The event bodies shared with b/d1 are still there.
	if got := drain(t, s, bridge.Queue{Target: b, Discussion: "d1"}); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("b/d1 delivered %v", got)
	}
	if got := drain(t, s, bridge.Queue{Target: a, Discussion: "d2"}); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("a/d2 delivered %v", got)
	}
}

// Route, sink, channel and discussion names are user strings: names that contain the
// separators of Target.Key, or are prefixes of each other, must not share a queue.
func queueNamesCannotCollide(t *testing.T, s bridge.Store) {
	targets := []bridge.Target{
		{Route: "r", Sink: "s"},
		{Route: "r", Sink: "s", Channel: "x"},
		{Route: "r", Sink: "s\x01x"},
		{Route: "r\x01s", Sink: ""},
	}
	discs := []string{"d", "d\x01", "dd", "d\x01\x01\x01\x01\x01\x01\x01\x01\x02"}
	for n, d := range discs {
		mustAppend(t, s, rec(Ev(d, n), targets...))
	}
	qs := mustQueues(t, s)
	if len(qs) != len(targets)*len(discs) {
		t.Fatalf("Queues found %d queues, want %d", len(qs), len(targets)*len(discs))
	}
	for _, q := range qs {
		p, ok := mustHead(t, s, q)
		if !ok || p.Event.Discussion.ID != q.Discussion || p.Queue != q {
			t.Fatalf("queue %q: head %+v, %v", q, p.Event.Discussion, ok)
		}
		mustDone(t, s, p)
		if _, ok := mustHead(t, s, q); ok {
			t.Fatalf("queue %q holds more than its one delivery", q)
		}
	}
}

func appendDedupe(t *testing.T, s bridge.Store) {
	e0, e1 := Ev("d", 0), Ev("d", 1)
	got := mustAppend(t, s, rec(e0, tgt("a")), rec(e1, tgt("a")), rec(e0, tgt("a")))
	if len(got) != 2 || got[0].Event.ID != e0.ID || got[1].Event.ID != e1.ID {
		t.Fatalf("Append with a repeat within the call stored %v", texts(got))
	}
	if got := mustAppend(t, s, rec(e1, tgt("a"), tgt("b")), rec(Ev("d", 2), tgt("a"))); len(got) != 1 || got[0].Event.ID != Ev("d", 2).ID {
		t.Fatalf("Append of a known event stored %v", texts(got))
	}
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	if got := drain(t, s, q); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("delivered %v", got)
	}
	// Known even after its delivery is done: the dedupe index outlives the body.
	if got := mustAppend(t, s, rec(e0, tgt("a"))); len(got) != 0 {
		t.Fatalf("Append of a delivered event stored %v", texts(got))
	}
	if _, ok := mustHead(t, s, bridge.Queue{Target: tgt("b"), Discussion: "d"}); ok {
		t.Fatal("a skipped record still queued a delivery")
	}
}

func appendRepeatedTargetOnce(t *testing.T, s bridge.Store) {
	got := mustAppend(t, s, rec(Ev("d", 0), tgt("a"), tgt("b"), tgt("a")))
	if len(got) != 1 || len(got[0].Targets) != 2 {
		t.Fatalf("stored %+v, want one record with targets a, b", got)
	}
	if got := drain(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"}); len(got) != 1 {
		t.Fatalf("a got %v, want one delivery", got)
	}
}

func appendWithoutTargets(t *testing.T, s bridge.Store) {
	if got := mustAppend(t, s, rec(Ev("d", 0))); len(got) != 1 {
		t.Fatalf("Append of an event without targets stored %v", texts(got))
	}
	if qs := mustQueues(t, s); len(qs) != 0 {
		t.Fatalf("an event without targets made queues %v", qs)
	}
	if got := mustAppend(t, s, rec(Ev("d", 0), tgt("a"))); len(got) != 0 {
		t.Fatal("an event stored without targets was not remembered for dedupe")
	}
}

func appendRejectsEventWithoutID(t *testing.T, s bridge.Store) {
	if _, err := s.Append(bg, []bridge.Record{rec(Ev("d", 0), tgt("a")), rec(bridge.Event{}, tgt("a"))}); err == nil {
		t.Fatal("Append accepted an event without an id")
	}
	if _, ok := mustHead(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"}); ok {
		t.Fatal("a failed Append stored part of its records")
	}
}

// Everything of an event comes back from Head as it went in.
func eventRoundTrip(t *testing.T, s bridge.Store) {
	e := Ev("d", 0)
	e.Discussion.URL = "https://example.test/d"
	e.Discussion.Related = []bridge.RelatedItem{{Type: "Submission", Key: "s1"}}
	e.Message.Content = []bridge.Token{{Type: "text", Value: []byte(`"hi \u00e9"`)}}
	e.Message.Attachments = []bridge.Attachment{{Filename: "a.txt", Size: 3}}
	e.Message.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	e.Raw = []byte(`{"b":1,"a":[2]}`)
	mustAppend(t, s, rec(e, tgt("a")))
	p, ok := mustHead(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"})
	if !ok {
		t.Fatal("queue empty")
	}
	if !reflect.DeepEqual(p.Event, e) {
		t.Fatalf("Head returned\n%+v %+v\nwant\n%+v %+v", p.Event, *p.Event.Message, e, *e.Message)
	}
	if p.StoredAt.IsZero() || time.Since(p.StoredAt) > time.Hour || time.Until(p.StoredAt) > time.Hour {
		t.Fatalf("StoredAt = %v, want about now", p.StoredAt)
	}
}

func attemptedRoundTrip(t *testing.T, s bridge.Store) {
	mustAppend(t, s, rec(Ev("d", 0), tgt("a")), rec(Ev("d", 1), tgt("a")))
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	p, _ := mustHead(t, s, q)
	first := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	p.Attempts, p.FirstTry, p.LastError, p.NextTry = 2, first, "503 Service Unavailable", first.Add(time.Minute)
	if err := s.Attempted(bg, p); err != nil {
		t.Fatal(err)
	}
	got, _ := mustHead(t, s, q)
	if got.Seq != p.Seq || got.Attempts != 2 || !got.FirstTry.Equal(first) || got.LastError != p.LastError || !got.NextTry.Equal(p.NextTry) {
		t.Fatalf("Head after Attempted = %+v, want attempts of %+v", got, p)
	}
	// A second failure overwrites the history.
	p.Attempts, p.LastError = 3, "timeout"
	if err := s.Attempted(bg, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustHead(t, s, q); got.Attempts != 3 || got.LastError != "timeout" {
		t.Fatalf("Head after a second Attempted = %+v", got)
	}
}

func cancelledContextWritesNothing(t *testing.T, s bridge.Store) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.Append(ctx, []bridge.Record{rec(Ev("d", 0), tgt("a"))}); err == nil {
		t.Fatal("Append with a cancelled context succeeded")
	}
	if got := mustAppend(t, s, rec(Ev("d", 0), tgt("a"))); len(got) != 1 {
		t.Fatal("the cancelled Append was stored")
	}
}

func mustDeadLetters(t testing.TB, s bridge.Store, f bridge.DeadLetterFilter) []bridge.DeadLetter {
	t.Helper()
	dls, err := s.DeadLetters(bg, f)
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

func deadLetters(t *testing.T, s bridge.Store) {
	hook, slack := tgt("hook"), bridge.Target{Route: "r", Sink: "slack", Channel: "C1"}
	for i := range 4 {
		mustAppend(t, s, rec(Ev("d", i), hook, slack))
	}
	qh := bridge.Queue{Target: hook, Discussion: "d"}
	qs := bridge.Queue{Target: slack, Discussion: "d"}
	kill := func(q bridge.Queue, reason string) {
		t.Helper()
		p, ok := mustHead(t, s, q)
		if !ok {
			t.Fatal("nothing to dead-letter")
		}
		p.Attempts, p.LastError = 5, reason
		p.FirstTry = time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
		if err := s.DeadLetter(bg, p, "gave up: "+reason); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now().Add(-time.Minute)
	kill(qh, "boom 0")
	kill(qh, "boom 1")
	kill(qs, "channel_not_found")
	if got := drain(t, s, qh); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("hook delivered %v after two dead letters", got)
	}
	if got := drain(t, s, qs); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("slack delivered %v", got)
	}
	all := mustDeadLetters(t, s, bridge.DeadLetterFilter{})
	if len(all) != 3 {
		t.Fatalf("DeadLetters = %d letters, want 3", len(all))
	}
	d0h, d0s, d1h := all[0], all[1], all[2] // oldest event first
	if d0h.Pending.Event.Message.Text != "0" || d0h.Pending.Queue != qh || d0h.Reason != "gave up: boom 0" ||
		d0h.Pending.Attempts != 5 || d0h.Pending.LastError != "boom 0" || !d0h.Pending.FirstTry.Equal(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)) ||
		d0h.FailedAt.Before(before) || time.Until(d0h.FailedAt) > time.Minute {
		t.Fatalf("first dead letter = %+v", d0h)
	}
	if d0s.Pending.Queue != qs || d1h.Pending.Event.Message.Text != "1" {
		t.Fatalf("dead letters out of order: %s %s %s", d0h.ID, d0s.ID, d1h.ID)
	}
	if d0h.ID == d0s.ID || d0h.ID == d1h.ID || !strings.HasPrefix(d0h.ID, "dl-") {
		t.Fatalf("dead-letter IDs are not unique: %s %s %s", d0h.ID, d0s.ID, d1h.ID)
	}
	for _, tc := range []struct {
		name string
		f    bridge.DeadLetterFilter
		want []string
	}{
		{"sink", bridge.DeadLetterFilter{Sink: "slack"}, []string{d0s.ID}},
		{"since is inclusive", bridge.DeadLetterFilter{Since: d1h.FailedAt}, filterSince(all, d1h.FailedAt)},
		{"since the future", bridge.DeadLetterFilter{Since: time.Now().Add(time.Hour)}, nil},
		{"ids", bridge.DeadLetterFilter{IDs: []string{d1h.ID, d0h.ID, d1h.ID, "dl-nope", "dl-99999999-0", "x"}}, []string{d0h.ID, d1h.ID}},
		{"ids and sink", bridge.DeadLetterFilter{IDs: []string{d1h.ID, d0s.ID}, Sink: "hook"}, []string{d1h.ID}},
		{"unknown ids only", bridge.DeadLetterFilter{IDs: []string{"dl-nope"}}, nil},
		{"unknown sink", bridge.DeadLetterFilter{Sink: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := letterIDs(mustDeadLetters(t, s, tc.f)); !slices.Equal(got, tc.want) {
				t.Fatalf("DeadLetters(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
	// Replay puts event 0 back at the end of the hook queue, behind a newer event.
	mustAppend(t, s, rec(Ev("d", 4), hook))
	replayed, err := s.Replay(bg, bridge.DeadLetterFilter{IDs: []string{d0h.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if got := letterIDs(replayed); !slices.Equal(got, []string{d0h.ID}) || replayed[0].Reason != d0h.Reason {
		t.Fatalf("Replay returned %v", got)
	}
	if qs := mustQueues(t, s); !sameQueues(qs, []bridge.Queue{qh}) {
		t.Fatalf("Queues after replay = %v", qs)
	}
	p, _ := mustHead(t, s, qh)
	if p.Event.Message.Text != "4" {
		t.Fatalf("head after replay is event %s, want 4 (the replay goes to the end)", p.Event.Message.Text)
	}
	mustDone(t, s, p)
	p, _ = mustHead(t, s, qh)
	if p.Event.Message.Text != "0" || p.Attempts != 0 || p.LastError != "" || !p.FirstTry.IsZero() || p.Seq <= d0h.Pending.Seq {
		t.Fatalf("replayed delivery = %+v, want event 0 with a fresh history and a new seq", p)
	}
	// It fails again: the dead letter gets its old ID back.
	if err := s.DeadLetter(bg, p, "again"); err != nil {
		t.Fatal(err)
	}
	if got := mustDeadLetters(t, s, bridge.DeadLetterFilter{IDs: []string{d0h.ID}}); len(got) != 1 || got[0].Reason != "again" {
		t.Fatalf("dead letter after a second failure = %+v", got)
	}
	if replayed, err = s.Replay(bg, bridge.DeadLetterFilter{IDs: []string{d0h.ID}}); err != nil || len(replayed) != 1 {
		t.Fatalf("second Replay = %v, %v", replayed, err)
	}
	if got := drain(t, s, qh); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("after replay hook delivered %v, want the replayed event once", got)
	}
	// Drop: by sink, then the rest.
	if n, err := s.Drop(bg, bridge.DeadLetterFilter{Sink: "slack"}); err != nil || n != 1 {
		t.Fatalf("Drop(slack) = %d, %v; want 1", n, err)
	}
	if got := letterIDs(mustDeadLetters(t, s, bridge.DeadLetterFilter{})); !slices.Equal(got, []string{d1h.ID}) {
		t.Fatalf("after Drop: %v", got)
	}
	if n, err := s.Drop(bg, bridge.DeadLetterFilter{IDs: []string{"dl-nope"}}); err != nil || n != 0 {
		t.Fatalf("Drop of unknown IDs = %d, %v; want 0", n, err)
	}
	if n, err := s.Drop(bg, bridge.DeadLetterFilter{}); err != nil || n != 1 {
		t.Fatalf("Drop() = %d, %v; want 1", n, err)
	}
	if got, err := s.Replay(bg, bridge.DeadLetterFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("Replay with no dead letters = %v, %v", got, err)
	}
	// Dropped events are still known.
	if got := mustAppend(t, s, rec(Ev("d", 1), hook)); len(got) != 0 {
		t.Fatal("a dropped dead letter's event was accepted again before Prune")
	}
}

func filterSince(all []bridge.DeadLetter, since time.Time) []string {
	var out []string
	for _, d := range all {
		if !d.FailedAt.Before(since) {
			out = append(out, d.ID)
		}
	}
	return out
}

func deadLetterOfFinishedDeliveryIsNoop(t *testing.T, s bridge.Store) {
	mustAppend(t, s, rec(Ev("d", 0), tgt("a")))
	p, _ := mustHead(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"})
	mustDone(t, s, p)
	if err := s.DeadLetter(bg, p, "late"); err != nil {
		t.Fatal(err)
	}
	if err := s.Attempted(bg, p); err != nil {
		t.Fatal(err)
	}
	if got := mustDeadLetters(t, s, bridge.DeadLetterFilter{}); len(got) != 0 {
		t.Fatalf("dead letters for a delivered event: %v", letterIDs(got))
	}
	if qs := mustQueues(t, s); len(qs) != 0 {
		t.Fatalf("Attempted of a delivered event made queues %v", qs)
	}
}

func mustGet(t testing.TB, s bridge.Store, namespace, key string) string {
	t.Helper()
	v, ok, err := s.Get(bg, namespace, key)
	if err != nil || !ok {
		t.Fatalf("Get %s/%s = %q, %v, %v", namespace, key, v, ok, err)
	}
	return string(v)
}

func getPut(t *testing.T, s bridge.Store) {
	if _, ok, err := s.Get(bg, "slack-ts", "m1"); ok || err != nil {
		t.Fatalf("Get of a missing key = %v, %v", ok, err)
	}
	for _, kv := range []struct{ ns, k, v string }{
		{"slack-ts", "m1", "1700000000.000100"},
		{"checkpoint", "m1", "cp"},
		{"slack-ts", "m1", "1700000000.000200"}, // overwrite
		{"slack-ts", "empty", ""},
		{"bin", "k/with/slashes", "\x00\xff\x01"},
	} {
		if err := s.Put(bg, kv.ns, kv.k, []byte(kv.v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range []struct{ ns, k, v string }{
		{"slack-ts", "m1", "1700000000.000200"},
		{"checkpoint", "m1", "cp"},
		{"slack-ts", "empty", ""},
		{"bin", "k/with/slashes", "\x00\xff\x01"},
	} {
		if got := mustGet(t, s, kv.ns, kv.k); got != kv.v {
			t.Fatalf("Get(%s, %s) = %q; want %q", kv.ns, kv.k, got, kv.v)
		}
	}
	if _, ok, _ := s.Get(bg, "other", "m1"); ok {
		t.Fatal("namespaces share keys")
	}
	if err := s.Put(bg, "", "k", nil); err == nil {
		t.Fatal("Put accepted an empty namespace")
	}
	if err := s.Put(bg, "ns", "", nil); err == nil {
		t.Fatal("Put accepted an empty key")
	}
}

func putLater(t *testing.T, s bridge.Store) {
	lp, ok := s.(LaterPutter)
	if !ok {
		t.Skip("the store has no PutLater")
	}
	if err := s.Put(bg, "cp", "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2", "3"} {
		if err := lp.PutLater("cp", "a", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustGet(t, s, "cp", "a"); got != "3" {
		t.Fatalf("Get after PutLater = %q, want the latest value 3", got)
	}
	// A Put made after a PutLater wins, also once the value put later is written.
	if err := lp.PutLater("cp", "b", []byte("later")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(bg, "cp", "b", []byte("put")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, rec(Ev("d", 1), tgt("t")))
	p, _ := mustHead(t, s, bridge.Queue{Target: tgt("t"), Discussion: "d"})
	mustDone(t, s, p)
	if got := mustGet(t, s, "cp", "b"); got != "put" {
		t.Fatalf("the value put later overwrote the newer Put: %q", got)
	}
	for _, c := range []struct{ ns, key string }{{"", "k"}, {"ns", ""}} {
		if err := lp.PutLater(c.ns, c.key, []byte("v")); err == nil {
			t.Errorf("PutLater(%q, %q) succeeded", c.ns, c.key)
		}
	}
}

func prune(t *testing.T, s bridge.Store) {
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	// Old, stored together: 0 and 1 delivered, 2 dead-lettered, 3 still pending, 4 stored
	// without targets.
	var old []bridge.Record
	for i := range 4 {
		old = append(old, rec(Ev("d", i), tgt("a")))
	}
	mustAppend(t, s, append(old, rec(Ev("d", 4)))...)
	for range 2 {
		p, _ := mustHead(t, s, q)
		mustDone(t, s, p)
	}
	p, _ := mustHead(t, s, q)
	if err := s.DeadLetter(bg, p, "boom"); err != nil {
		t.Fatal(err)
	}
	// New: 5, delivered, stored after the cut (the calls above take longer than 1µs).
	p3, _ := mustHead(t, s, q)
	cut := p3.StoredAt.Add(time.Microsecond)
	mustAppend(t, s, rec(Ev("d", 5), tgt("b")))
	p, _ = mustHead(t, s, bridge.Queue{Target: tgt("b"), Discussion: "d"})
	if !p.StoredAt.After(cut) {
		t.Fatalf("event 5 stored at %v, not after the cut %v", p.StoredAt, cut)
	}
	mustDone(t, s, p)
	if n, err := s.Prune(bg, cut.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Prune before everything = %d, %v; want 0", n, err)
	}
	n, err := s.Prune(bg, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("Prune forgot %d IDs, want 3 (events 0, 1, 4)", n)
	}
	if n, err := s.Prune(bg, cut); err != nil || n != 0 {
		t.Fatalf("second Prune = %d, %v; want 0", n, err)
	}
	// Forgotten IDs are accepted again; the others are still deduplicated.
	for i, want := range []int{1, 1, 0, 0, 1, 0} {
		if got := mustAppend(t, s, rec(Ev("d", i), tgt("c"))); len(got) != want {
			t.Errorf("after Prune, Append of event %d stored %d, want %d", i, len(got), want)
		}
	}
	if dls := mustDeadLetters(t, s, bridge.DeadLetterFilter{}); len(dls) != 1 || dls[0].Pending.Event.Message.Text != "2" {
		t.Fatalf("dead letters after Prune: %+v", dls)
	}
	if p, ok := mustHead(t, s, q); !ok || p.Event.Message.Text != "3" {
		t.Fatalf("pending after Prune: %+v, %v", p, ok)
	}
}

func backlog(t *testing.T, s bridge.Store) {
	bc, ok := s.(bridge.BacklogCounter)
	if !ok {
		t.Skip("the store is no BacklogCounter")
	}
	a, b := tgt("a"), bridge.Target{Route: "r", Sink: "b", Channel: "C1"}
	for i := range 4 {
		mustAppend(t, s, rec(Ev("d1", i), a, b), rec(Ev("d2", i), a))
	}
	q1, q2, q3 := bridge.Queue{Target: a, Discussion: "d1"}, bridge.Queue{Target: a, Discussion: "d2"}, bridge.Queue{Target: b, Discussion: "d1"}
	p, _ := mustHead(t, s, q1)
	mustDone(t, s, p) // done: must not count
	p2, _ := mustHead(t, s, q2)
	if err := s.DeadLetter(bg, p2, "test"); err != nil { // dead letters do not count either
		t.Fatal(err)
	}
	heads := map[bridge.Queue]time.Time{}
	for _, q := range []bridge.Queue{q1, q2, q3} {
		h, _ := mustHead(t, s, q)
		heads[q] = h.StoredAt
	}
	got, err := bc.Backlog(bg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[bridge.Queue]int{q1: 3, q2: 3, q3: 4}
	if len(got) != len(want) {
		t.Fatalf("Backlog = %+v, want %d queues", got, len(want))
	}
	for _, g := range got {
		if g.Pending != want[g.Queue] || !g.OldestAt.Equal(heads[g.Queue]) || g.OldestAt.IsZero() {
			t.Errorf("queue %+v: %d pending, oldest %v; want %d, %v (its head's StoredAt)", g.Queue, g.Pending, g.OldestAt, want[g.Queue], heads[g.Queue])
		}
	}
}

func attemptLog(t *testing.T, s bridge.Store) {
	al, ok := s.(bridge.AttemptLog)
	if !ok {
		t.Skip("the store is no AttemptLog")
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hook, slack := tgt("hook"), bridge.Target{Route: "r", Sink: "slack", Channel: "C1"}
	var recs []bridge.AttemptRecord
	for i := range 6 {
		target, disc := hook, "d1"
		if i%2 == 1 {
			target, disc = slack, "d2"
		}
		r := bridge.AttemptRecord{
			Seq: uint64(10 + i), Queue: bridge.Queue{Target: target, Discussion: disc},
			EventID: "evt_" + strconv.Itoa(i/2), EventType: bridge.MessageCreated, Attempt: 1 + i/2,
			At: t0.Add(time.Duration(i) * time.Minute), Latency: time.Duration(i+1) * time.Millisecond,
			Outcome: bridge.OutcomeRetry, Status: "503", Error: "boom", Response: "busy",
			NextTry: t0.Add(time.Hour),
		}
		if i == 4 {
			r.Outcome, r.Status, r.Error, r.Response, r.NextTry = bridge.OutcomeDelivered, "200", "", "", time.Time{}
		}
		if i == 5 {
			r.Outcome, r.DeadLetter, r.NextTry = bridge.OutcomeDeadLetter, "dl-1-1", time.Time{}
		}
		recs = append(recs, r)
	}
	if err := al.LogAttempts(bg, recs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := al.LogAttempts(bg, recs[3:]); err != nil {
		t.Fatal(err)
	}
	if err := al.LogAttempts(bg, nil); err != nil {
		t.Fatal(err)
	}
	all, err := al.Attempts(bg, bridge.AttemptFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("Attempts = %d records, want 6", len(all))
	}
	for i, got := range all { // newest first
		w := recs[5-i]
		if got.Seq != w.Seq || got.Queue != w.Queue || got.EventID != w.EventID || got.EventType != w.EventType ||
			got.Attempt != w.Attempt || !got.At.Equal(w.At) || got.Latency != w.Latency || got.Outcome != w.Outcome ||
			got.Status != w.Status || got.Error != w.Error || got.Response != w.Response || !got.NextTry.Equal(w.NextTry) ||
			got.DeadLetter != w.DeadLetter {
			t.Fatalf("attempt %d = %+v, want %+v", i, got, w)
		}
	}
	seqs := func(f bridge.AttemptFilter) []uint64 {
		t.Helper()
		rs, err := al.Attempts(bg, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    bridge.AttemptFilter
		want []uint64
	}{
		{"discussion", bridge.AttemptFilter{Discussion: "d2"}, []uint64{15, 13, 11}},
		{"event", bridge.AttemptFilter{EventID: "evt_1"}, []uint64{13, 12}},
		{"sink", bridge.AttemptFilter{Sink: "hook"}, []uint64{14, 12, 10}},
		{"outcome", bridge.AttemptFilter{Outcome: bridge.OutcomeDelivered}, []uint64{14}},
		{"since", bridge.AttemptFilter{Since: t0.Add(4 * time.Minute)}, []uint64{15, 14}},
		{"until", bridge.AttemptFilter{Until: t0.Add(2 * time.Minute)}, []uint64{11, 10}},
		{"limit", bridge.AttemptFilter{Limit: 2}, []uint64{15, 14}},
		{"nothing", bridge.AttemptFilter{Sink: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqs(tc.f); !slices.Equal(got, tc.want) {
				t.Fatalf("Attempts(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
	n, err := al.PruneAttempts(bg, t0.Add(3*time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("PruneAttempts = %d, %v; want 3", n, err)
	}
	if got := seqs(bridge.AttemptFilter{}); !slices.Equal(got, []uint64{15, 14, 13}) {
		t.Fatalf("after PruneAttempts: %v", got)
	}
}

// Writers and delivery workers share the store: every event is delivered once, in order per
// queue, while appends, dones, attempts and dedupe hits interleave (run with -race).
func concurrentAppendAndDone(t *testing.T, s bridge.Store) {
	const (
		writers   = 4
		perWriter = 120
		batch     = 7
	)
	targets := []bridge.Target{tgt("a"), tgt("b")}
	var wg sync.WaitGroup
	var stored atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 1024)
	wake := make([][]chan struct{}, writers)
	for w := range wake {
		for range targets {
			wake[w] = append(wake[w], make(chan struct{}, 1))
		}
	}
	// Each writer owns a discussion; it appends every batch twice, from two racing
	// goroutines, so that dedupe runs under contention.
	for w := range writers {
		disc := "d" + strconv.Itoa(w)
		wg.Go(func() {
			for i := 0; i < perWriter; i += batch {
				var recs []bridge.Record
				for j := i; j < min(i+batch, perWriter); j++ {
					recs = append(recs, rec(Ev(disc, j), targets...))
				}
				var inner sync.WaitGroup
				for range 2 {
					inner.Go(func() {
						got, err := s.Append(bg, recs)
						if err != nil {
							errs <- err
						}
						stored.Add(int64(len(got)))
					})
				}
				inner.Wait()
				for _, c := range wake[w] {
					select {
					case c <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	var delivered atomic.Int64
	var workers sync.WaitGroup
	for ti, target := range targets {
		for w := range writers {
			q := bridge.Queue{Target: target, Discussion: "d" + strconv.Itoa(w)}
			workers.Go(func() {
				next := 0
				stopping := false
				for range 10 * perWriter {
					p, ok, err := s.Head(bg, q)
					if err != nil {
						errs <- err
						return
					}
					if !ok {
						if stopping {
							return
						}
						select {
						case <-wake[w][ti]:
						case <-stop:
							stopping = true
						}
						continue
					}
					if p.Event.Message.Text != strconv.Itoa(next) {
						errs <- fmt.Errorf("queue %v: head is event %s, want %d", q, p.Event.Message.Text, next)
						return
					}
					if next%10 == 3 && p.Attempts == 0 {
						p.Attempts, p.LastError = 1, "flaky"
						if err := s.Attempted(bg, p); err != nil {
							errs <- err
							return
						}
						continue
					}
					next++
					if err := s.Done(bg, p); err != nil {
						errs <- err
						return
					}
					delivered.Add(1)
				}
				errs <- fmt.Errorf("queue %v: worker did not finish", q)
			})
		}
	}
	wg.Wait()
	close(stop)
	workers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if stored.Load() != writers*perWriter {
		t.Fatalf("Append stored %d events, want %d (each once)", stored.Load(), writers*perWriter)
	}
	if want := int64(writers * perWriter * len(targets)); delivered.Load() != want {
		t.Fatalf("delivered %d, want %d", delivered.Load(), want)
	}
	if qs := mustQueues(t, s); len(qs) != 0 {
		t.Fatalf("queues left: %v", qs)
	}
}

func callsAfterClose(t *testing.T, s bridge.Store) {
	mustAppend(t, s, rec(Ev("d", 0), tgt("a")))
	p, _ := mustHead(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(bg, []bridge.Record{rec(Ev("d", 1), tgt("a"))}); err == nil {
		t.Fatal("Append after Close succeeded")
	}
	if _, _, err := s.Head(bg, bridge.Queue{Target: tgt("a"), Discussion: "d"}); err == nil {
		t.Fatal("Head after Close succeeded")
	}
	if err := s.Done(bg, p); err == nil {
		t.Fatal("Done after Close succeeded")
	}
}
