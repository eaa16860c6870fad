package store

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// idsState is what the file and memory hold of the dedupe index.
type idsState struct {
	inIDs, inMemory int
	watermark       uint64
}

func readIDsState(t *testing.T, s *Bolt) idsState {
	t.Helper()
	flush(t, s) // the committer's memory is read between its commits
	var st idsState
	if err := s.db.View(func(tx *bolt.Tx) error {
		st.inIDs = tx.Bucket(bucketIDs).Stats().KeyN
		st.watermark = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(metaIDsMerged))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.update(context.Background(), func(*bolt.Tx) error { st.inMemory = len(s.recent.m); return nil }); err != nil {
		t.Fatal(err)
	}
	return st
}

func appendN(t *testing.T, s *Bolt, from, n int) int {
	t.Helper()
	var recs []bridge.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, rec(ev("d"+strconv.Itoa(i%7), i), tgt("a")))
	}
	return len(mustAppend(t, s, recs...))
}

// New IDs wait in memory and the age index, and are merged into ids in chunks once enough
// are there; every ID stays deduplicated all along, and across reopening mid-merge.
func TestIDsMergeInChunks(t *testing.T) {
	dir := t.TempDir()
	opts := Options{idsMerge: 100, idsChunk: 30}
	s := openT(t, dir, opts)
	if got := appendN(t, s, 0, 99); got != 99 {
		t.Fatalf("stored %d of 99 new events", got)
	}
	if st := readIDsState(t, s); st.inIDs != 0 || st.inMemory != 99 || st.watermark != 0 {
		t.Fatalf("below the merge size: %+v; want all 99 in memory only", st)
	}
	appendN(t, s, 99, 1) // 100 in memory: the next commits merge them, 30 at a time
	st := readIDsState(t, s)
	if st.inIDs != 30 || st.inMemory != 70 || st.watermark != 0 {
		t.Fatalf("after one more commit: %+v; want the first chunk of 30 merged", st)
	}
	if got := appendN(t, s, 0, 100); got != 0 {
		t.Fatalf("mid-merge, %d of 100 stored events were accepted again", got)
	}
	// Reopen mid-merge: memory is read back from the age index above the watermark.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	if got := appendN(t, s, 0, 100); got != 0 {
		t.Fatalf("after reopening mid-merge, %d of 100 stored events were accepted again", got)
	}
	for range 5 {
		flush(t, s)
	}
	st = readIDsState(t, s)
	if st.inIDs != 100 || st.inMemory != 0 || st.watermark != 100 {
		t.Fatalf("after the merge: %+v; want all 100 in ids, watermark 100", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	if st := readIDsState(t, s); st.inMemory != 0 {
		t.Fatalf("reopened after the merge with %d IDs in memory, want 0", st.inMemory)
	}
	if got := appendN(t, s, 0, 120); got != 20 {
		t.Fatalf("after the merge, Append stored %d of 100 old and 20 new events; want the 20", got)
	}
}

// Prune forgets IDs wherever they are: merged, in memory, or in a merge under way.
func TestPruneForgetsIDsNotMergedYet(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	s := openT(t, t.TempDir(), Options{Now: clk.Now, idsMerge: 100, idsChunk: 30})
	appendN(t, s, 0, 100)
	flush(t, s) // one chunk merged, 70 in memory, the merge under way
	if st := readIDsState(t, s); st.inIDs != 60 || st.inMemory != 40 {
		t.Fatalf("before Prune: %+v; want two chunks merged", st)
	}
	clk.Set(t0.Add(time.Hour))
	appendN(t, s, 100, 10) // new: kept
	// Nothing is pending once delivered: deliver everything, then prune the old ones.
	for d := range 7 {
		drain(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d" + strconv.Itoa(d)})
	}
	n, err := s.Prune(ctx, t0.Add(time.Minute))
	if err != nil || n != 100 {
		t.Fatalf("Prune = %d, %v; want the 100 old IDs", n, err)
	}
	for range 10 {
		flush(t, s) // let the merge end
	}
	st := readIDsState(t, s)
	if st.inIDs+st.inMemory != 10 {
		t.Fatalf("after Prune and the merge: %+v; want only the 10 new IDs left", st)
	}
	if got := appendN(t, s, 0, 110); got != 100 {
		t.Fatalf("after Prune, Append stored %d of 110; want the 100 forgotten", got)
	}
}

// An ID whose transaction failed was not stored: it must not look stored afterwards.
func TestIDsOfAFailedTransactionAreNotKept(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	e := ev("d", 0)
	boom := errors.New("boom")
	err := s.update(context.Background(), func(tx *bolt.Tx) error {
		if _, _, err := s.appendOne(tx, rec(e, tgt("a")), make([]byte, 4), stamp(time.Now())); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update = %v", err)
	}
	if got := mustAppend(t, s, rec(e, tgt("a"))); len(got) != 1 {
		t.Fatal("an event whose transaction failed is deduplicated as if stored")
	}
	if got := drain(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"}); len(got) != 1 {
		t.Fatalf("delivered %v, want the event once", got)
	}
}

// When many more IDs wait than a chunk holds, chunks grow, so merges keep up with a flood.
func TestIDsMergeKeepsUpWithAFlood(t *testing.T) {
	s := openT(t, t.TempDir(), Options{idsMerge: 100, idsChunk: 10})
	appendN(t, s, 0, 1000)
	for range 5 {
		flush(t, s)
	}
	if st := readIDsState(t, s); st.inMemory != 0 || st.inIDs != 1000 {
		t.Fatalf("after 6 commits: %+v; want all 1,000 merged (chunks of 10 would need 100)", st)
	}
}
