package store

import (
	"context"
	"fmt"
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
