package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// lastTx is the id of the last committed write transaction.
func lastTx(t testing.TB, s *Bolt) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// pendingInFile reports whether a delivery's pending entry is in the file, whatever Done
// calls are queued in memory.
func pendingInFile(t testing.TB, s *Bolt, p bridge.Pending) bool {
	t.Helper()
	var found bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketPending).Get(pendingKey(p.Queue, p.Seq)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// A Done rides on the next write's commit instead of paying for an fsync of its own.
func TestDoneWaitsForAWriteToShareItsCommit(t *testing.T) {
	// The delay is long enough that only the write can have committed the Done.
	s := openT(t, t.TempDir(), Options{doneDelay: time.Hour})
	mustAppend(t, s, rec(ev("d", 0), tgt("a")))
	q := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	p, _ := mustHead(t, s, q)
	before := lastTx(t, s)
	mustDone(t, s, p)
	if _, ok := mustHead(t, s, q); ok {
		t.Fatal("Head still returns a delivery whose Done returned")
	}
	mustAppend(t, s, rec(ev("d", 1), tgt("a")))
	if got := lastTx(t, s); got != before+1 {
		t.Fatalf("the Done and the Append took %d commits, want 1", got-before)
	}
	if pendingInFile(t, s, p) {
		t.Fatal("the Done was not committed with the Append")
	}
}

// Without any write, queued Done calls are still committed, after doneDelay.
func TestDoneAloneIsCommittedAfterTheDelay(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	mustAppend(t, s, rec(ev("d", 0), tgt("a")))
	p, _ := mustHead(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"})
	mustDone(t, s, p)
	deadline := time.Now().Add(10 * time.Second)
	for pendingInFile(t, s, p) {
		if time.Now().After(deadline) {
			t.Fatal("a lone Done was not committed within 10s")
		}
		time.Sleep(5 * time.Millisecond) // polling the file, not synchronisation
	}
}

// Many queued Done calls do not wait for company: doneBatch of them are worth a commit.
func TestManyDonesCommitWithoutWaitingForTheDelay(t *testing.T) {
	s := openT(t, t.TempDir(), Options{doneDelay: time.Hour})
	ctx := context.Background()
	const n = doneBatch + 10
	recs := make([]bridge.Record, 0, n)
	for i := range n {
		recs = append(recs, rec(ev(fmt.Sprint("d", i%64), i), tgt("a")))
	}
	mustAppend(t, s, recs...)
	var trigger bridge.Pending // the Done that filled half the queue
	for i, r := range recs {
		q := bridge.Queue{Target: tgt("a"), Discussion: r.Event.Discussion.ID}
		p, ok := mustHead(t, s, q)
		if !ok {
			t.Fatalf("queue %s empty after %d deliveries", q.Discussion, i)
		}
		if err := s.Done(ctx, p); err != nil {
			t.Fatal(err)
		}
		if i == doneBatch-1 {
			trigger = p
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for pendingInFile(t, s, trigger) {
		if time.Now().After(deadline) {
			t.Fatal("a full Done queue was not committed within 10s")
		}
		time.Sleep(5 * time.Millisecond) // polling the file, not synchronisation
	}
}

// ObserveCommit hears of every durable write transaction of either file, with the pages it
// wrote, and of none that failed.
func TestObserveCommit(t *testing.T) {
	var mu sync.Mutex
	var seen []Commit
	s := openT(t, t.TempDir(), Options{ObserveCommit: func(c Commit) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
	}})
	took := func() []Commit {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
	took() // whatever opening wrote

	before := lastTx(t, s)
	mustAppend(t, s, rec(ev("d", 0), tgt("a"), tgt("b")))
	cs := took()
	if len(cs) != lastTx(t, s)-before || len(cs) == 0 {
		t.Fatalf("%d commits observed for %d made", len(cs), lastTx(t, s)-before)
	}
	if c := cs[len(cs)-1]; c.File != FileName || c.Took <= 0 || c.Pages < 2 {
		t.Errorf("the Append's commit: %+v; want %s, a duration, its event's and its deliveries' pages", c, FileName)
	}

	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := s.LogAttempts(context.Background(), []bridge.AttemptRecord{attempt("d", "e", "a", bridge.OutcomeDelivered, at)}); err != nil {
		t.Fatal(err)
	}
	if cs := took(); len(cs) != 1 || cs[0].File != HistoryFileName || cs[0].Took <= 0 || cs[0].Pages < 1 {
		t.Errorf("the history's write: %+v", cs)
	}

	// A write that fails (alone, then again on its own) is no commit.
	before = lastTx(t, s)
	broken := errors.New("broken")
	if err := s.update(context.Background(), func(*bolt.Tx) error { return broken }); !errors.Is(err, broken) {
		t.Fatalf("update: %v", err)
	}
	if cs := took(); len(cs) != 0 || lastTx(t, s) != before {
		t.Errorf("a failed write was observed: %+v", cs)
	}
}
