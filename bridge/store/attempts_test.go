package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

func attempt(disc, event, sink, outcome string, at time.Time) bridge.AttemptRecord {
	return bridge.AttemptRecord{Queue: bridge.Queue{Target: tgt(sink), Discussion: disc}, EventID: event, EventType: bridge.MessageCreated,
		Attempt: 1, At: at, Latency: 3 * time.Millisecond, Outcome: outcome, Status: "503", Error: "HTTP 503", Response: "busy"}
}

// TestAttemptsFilterAndOrder stores a history over several discussions, events and sinks
// and reads it back through every filter: newest first, limited, and surviving a reopen.
func TestAttemptsFilterAndOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var recs []bridge.AttemptRecord
	for i := range 60 {
		outcome := bridge.OutcomeRetry
		if i%3 == 0 {
			outcome = bridge.OutcomeDelivered
		}
		recs = append(recs, attempt(fmt.Sprintf("d%d", i%4), fmt.Sprintf("e%d", i%10), []string{"hook", "chat"}[i%2], outcome, t0.Add(time.Duration(i)*time.Second)))
	}
	if err := s.LogAttempts(ctx, recs[:30]); err != nil {
		t.Fatal(err)
	}
	if err := s.LogAttempts(ctx, recs[30:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})

	check := func(name string, f bridge.AttemptFilter, want func(i int) bool, limit int) {
		t.Helper()
		got, err := s.Attempts(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var exp []bridge.AttemptRecord
		for i := len(recs) - 1; i >= 0 && len(exp) < limit; i-- {
			if want(i) {
				exp = append(exp, recs[i])
			}
		}
		if len(got) != len(exp) {
			t.Fatalf("%s: got %d attempts, want %d", name, len(got), len(exp))
		}
		for i := range got {
			if !got[i].At.Equal(exp[i].At) || got[i].EventID != exp[i].EventID || got[i].Queue != exp[i].Queue || got[i].Response != "busy" {
				t.Fatalf("%s: #%d is %+v, want %+v", name, i, got[i], exp[i])
			}
		}
	}
	all := func(int) bool { return true }
	check("all", bridge.AttemptFilter{}, all, 100)
	check("limit", bridge.AttemptFilter{Limit: 7}, all, 7)
	check("discussion", bridge.AttemptFilter{Discussion: "d1"}, func(i int) bool { return i%4 == 1 }, 100)
	check("event", bridge.AttemptFilter{EventID: "e3"}, func(i int) bool { return i%10 == 3 }, 100)
	check("event+sink", bridge.AttemptFilter{EventID: "e3", Sink: "chat"}, func(i int) bool { return i%10 == 3 && i%2 == 1 }, 100)
	check("outcome", bridge.AttemptFilter{Outcome: bridge.OutcomeDelivered}, func(i int) bool { return i%3 == 0 }, 100)
	check("window", bridge.AttemptFilter{Since: t0.Add(10 * time.Second), Until: t0.Add(20 * time.Second)}, func(i int) bool { return i >= 10 && i < 20 }, 100)
	check("discussion window", bridge.AttemptFilter{Discussion: "d2", Since: t0.Add(10 * time.Second), Until: t0.Add(40 * time.Second)},
		func(i int) bool { return i%4 == 2 && i >= 10 && i < 40 }, 100)
	check("none", bridge.AttemptFilter{Discussion: "d"}, func(int) bool { return false }, 100)
	check("event window", bridge.AttemptFilter{EventID: "e3", Since: t0.Add(10 * time.Second), Until: t0.Add(40 * time.Second)},
		func(i int) bool { return i%10 == 3 && i >= 10 && i < 40 }, 100)
	check("event limit", bridge.AttemptFilter{EventID: "e3", Limit: 2}, func(i int) bool { return i%10 == 3 }, 2)
	check("no such event", bridge.AttemptFilter{EventID: "e99"}, func(int) bool { return false }, 100)

	n, err := s.PruneAttempts(ctx, t0.Add(45*time.Second))
	if err != nil || n != 45 {
		t.Fatalf("PruneAttempts = %d, %v; want 45", n, err)
	}
	check("after prune", bridge.AttemptFilter{}, func(i int) bool { return i >= 45 }, 100)
	check("event after prune", bridge.AttemptFilter{EventID: "e3"}, func(i int) bool { return i >= 45 && i%10 == 3 }, 100)
	if n, err := s.PruneAttempts(ctx, t0.Add(time.Hour)); err != nil || n != 15 {
		t.Fatalf("second PruneAttempts = %d, %v; want 15", n, err)
	}
	if got, err := s.Attempts(ctx, bridge.AttemptFilter{Discussion: "d1"}); err != nil || len(got) != 0 {
		t.Fatalf("after pruning all: %d attempts, %v", len(got), err)
	}
}

// TestAttemptsByEventShareIndexRuns stores more events than the event index has runs, so
// that events share runs, and finds each one's attempts, and only those.
func TestAttemptsByEventShareIndexRuns(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir(), Options{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var recs []bridge.AttemptRecord
	for i := range 4 * eventParts {
		for a := range 2 {
			r := attempt(fmt.Sprintf("d%d", i%7), fmt.Sprintf("evt_%d", i), "hook", bridge.OutcomeDelivered, t0.Add(time.Duration(2*i+a)*time.Second))
			r.Attempt = a + 1
			recs = append(recs, r)
		}
	}
	if err := s.LogAttempts(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for i := range 4 * eventParts {
		id := fmt.Sprintf("evt_%d", i)
		got, err := s.Attempts(ctx, bridge.AttemptFilter{EventID: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].EventID != id || got[1].EventID != id || got[0].Attempt != 2 || got[1].Attempt != 1 {
			t.Fatalf("attempts of %s: %+v", id, got)
		}
	}
	if n, err := s.PruneAttempts(ctx, t0.Add(time.Hour)); err != nil || n != len(recs) {
		t.Fatalf("PruneAttempts = %d, %v", n, err)
	}
	err := s.hist.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketAttemptIdx).Cursor().First(); k != nil {
			return fmt.Errorf("index entry %x left after pruning everything", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHistoryMovesOutOfMainFile opens a state directory whose history is still in
// kdbridge.db, as kdbridge kept it before history.db: Open moves every record and index
// entry to history.db, drops the buckets from kdbridge.db, and new records continue the key
// sequence instead of overwriting moved ones.
func TestHistoryMovesOutOfMainFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, HistoryFileName)); err != nil {
		t.Fatal(err)
	}
	// The old layout: the same buckets and keys, in kdbridge.db.
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const old = historyMoveChunk + 5 // more than one chunk
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketAttempts)
		if err != nil {
			return err
		}
		idx, err := tx.CreateBucket(bucketAttemptIdx)
		if err != nil {
			return err
		}
		for i := range old {
			r := attempt(fmt.Sprintf("d%d", i%3), fmt.Sprintf("e%d", i), "hook", bridge.OutcomeDelivered, t0.Add(time.Duration(i)*time.Millisecond))
			n, _ := b.NextSequence()
			k := binary.BigEndian.AppendUint64(stamp(r.At), n)
			v, err := encodeAttemptJSON(r)
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
			if err := idx.Put(attemptIndexKey('d', r.Queue.Discussion, k), []byte{}); err != nil {
				return err
			}
			if err := idx.Put(attemptIndexKey('e', r.EventID, k), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	// A record at the same instant as the newest moved one gets a key of its own.
	if err := s.LogAttempts(ctx, []bridge.AttemptRecord{attempt("d9", "new", "hook", bridge.OutcomeRetry, t0.Add((old-1)*time.Millisecond))}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Attempts(ctx, bridge.AttemptFilter{Limit: old + 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != old+1 {
		t.Fatalf("%d attempts after the move, want %d", len(got), old+1)
	}
	if got[0].EventID != "new" && got[1].EventID != "new" {
		t.Fatalf("the new record is missing from the newest two: %+v, %+v", got[0], got[1])
	}
	if got, err := s.Attempts(ctx, bridge.AttemptFilter{EventID: "e7"}); err != nil || len(got) != 1 || got[0].Queue.Discussion != "d1" {
		t.Fatalf("event index after the move: %+v, %v", got, err)
	}
	if got, err := s.Attempts(ctx, bridge.AttemptFilter{Discussion: "d2", Limit: old}); err != nil || len(got) != old/3 {
		t.Fatalf("discussion index after the move: %d records, %v; want %d", len(got), err, old/3)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAttempts) != nil || tx.Bucket(bucketAttemptIdx) != nil {
			return errors.New("kdbridge.db still holds the history buckets")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLogAttempts writes the history in the dispatcher's largest batches (4,096
// records over 200 discussions) and reports the file's growth per record.
func BenchmarkLogAttempts(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before := fileSize(b, dir)
	t0 := time.Now()
	batch := make([]bridge.AttemptRecord, 4096) // the dispatcher's batch in a busy second
	n := 0
	for b.Loop() {
		for i := range batch {
			// Event IDs are hashes (bridge.EventID): in no order.
			id := bridge.EventID("src", "d", strconv.Itoa(n), "v", bridge.MessageCreated)
			r := attempt(fmt.Sprintf("3f2b8c1e-5d7a-4c9e-8b1f-%012d", n%200), id, "hook", bridge.OutcomeDelivered, t0.Add(time.Duration(n)*time.Millisecond))
			r.Status, r.Error, r.Response = "", "", ""
			batch[i] = r
			n++
		}
		if err := s.LogAttempts(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
	b.ReportMetric(float64(fileSize(b, dir)-before)/float64(n), "file-bytes/record")
}

func fileSize(b *testing.B, dir string) int64 {
	fi, err := os.Stat(filepath.Join(dir, HistoryFileName))
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// TestAttemptIndexListsAndOlderEntries reads and prunes a history whose first records have
// the per-record index entries of older kdbridges and whose later ones are listed per batch,
// and one whose records come out of time order, within a batch and across batches.
func TestAttemptIndexListsAndOlderEntries(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir(), Options{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rec := func(i int) bridge.AttemptRecord {
		return attempt(fmt.Sprintf("d%d", i%3), fmt.Sprintf("e%d", i%5), "hook", bridge.OutcomeDelivered, t0.Add(time.Duration(i)*time.Second))
	}
	// Records 0–9 as an older kdbridge wrote them: an index entry per record.
	if err := s.hist.Update(func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bucketAttempts), tx.Bucket(bucketAttemptIdx)
		for i := range 10 {
			r := rec(i)
			v, err := encodeAttemptJSON(r)
			if err != nil {
				return err
			}
			n, _ := b.NextSequence()
			k := binary.BigEndian.AppendUint64(stamp(r.At), n)
			if err := b.Put(k, v); err != nil {
				return err
			}
			for _, e := range attemptIndexEntries(r, k) {
				if err := idx.Put(e[0], e[1]); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Records 10–29 in two batches, each given out of order; record 25 is older than the
	// whole first batch (a worker's clock behind): it keeps its time, and is listed after it.
	var b1, b2 []bridge.AttemptRecord
	for i := 19; i >= 10; i-- {
		b1 = append(b1, rec(i))
	}
	for i := 20; i < 30; i++ {
		r := rec(i)
		if i == 25 {
			r.At = t0.Add(12 * time.Second)
		}
		b2 = append(b2, r)
	}
	if err := s.LogAttempts(ctx, b1); err != nil {
		t.Fatal(err)
	}
	if err := s.LogAttempts(ctx, b2); err != nil {
		t.Fatal(err)
	}
	// Newest first by their place in the history; 25 sits where the second batch starts.
	order := []int{29, 28, 27, 26, 24, 23, 22, 21, 20, 25}
	for i := 19; i >= 0; i-- {
		order = append(order, i)
	}
	get := func(f bridge.AttemptFilter) []int {
		t.Helper()
		rs, err := s.Attempts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, r := range rs {
			i := int(r.At.Sub(t0) / time.Second)
			if r.At.Equal(t0.Add(12*time.Second)) && r.Queue.Discussion == "d1" && r.EventID == "e0" {
				i = 25 // rec(25) with its own, older time
			}
			out = append(out, i)
		}
		return out
	}
	filter := func(keep func(i int) bool) []int {
		var out []int
		for _, i := range order {
			if keep(i) {
				out = append(out, i)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    bridge.AttemptFilter
		want []int
	}{
		{"all", bridge.AttemptFilter{}, order},
		{"discussion", bridge.AttemptFilter{Discussion: "d1"}, filter(func(i int) bool { return i%3 == 1 })},
		{"event", bridge.AttemptFilter{EventID: "e2"}, filter(func(i int) bool { return i%5 == 2 })},
		{"event until", bridge.AttemptFilter{EventID: "e3", Until: t0.Add(24 * time.Second)}, filter(func(i int) bool { return i%5 == 3 && i < 24 })},
		{"discussion limit", bridge.AttemptFilter{Discussion: "d2", Limit: 4}, filter(func(i int) bool { return i%3 == 2 })[:4]},
	} {
		if got := get(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Pruning through the older entries and into the first batch's lists.
	if n, err := s.PruneAttempts(ctx, t0.Add(15*time.Second)); err != nil || n != 15 {
		t.Fatalf("PruneAttempts = %d, %v; want 15", n, err)
	}
	if got, want := get(bridge.AttemptFilter{Discussion: "d0"}), filter(func(i int) bool { return i%3 == 0 && i >= 15 }); !slices.Equal(got, want) {
		t.Fatalf("after pruning 15: discussion d0 %v, want %v", got, want)
	}
	if got, want := get(bridge.AttemptFilter{EventID: "e4"}), filter(func(i int) bool { return i%5 == 4 && i >= 15 }); !slices.Equal(got, want) {
		t.Fatalf("after pruning 15: event e4 %v, want %v", got, want)
	}
	if n, err := s.PruneAttempts(ctx, t0.Add(time.Hour)); err != nil || n != 15 {
		t.Fatalf("second PruneAttempts = %d, %v; want 15", n, err)
	}
	if err := s.hist.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketAttemptIdx).Cursor().First(); k != nil {
			return fmt.Errorf("index entry %x left after pruning everything", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// encodeAttemptJSON is how kdbridge stored an attempt before attemptBinary: for histories
// written by an older kdbridge.
func encodeAttemptJSON(r bridge.AttemptRecord) ([]byte, error) {
	return json.Marshal(attemptJSON{Seq: r.Seq, Route: r.Queue.Target.Route, Sink: r.Queue.Target.Sink, Channel: r.Queue.Target.Channel,
		Discussion: r.Queue.Discussion, EventID: r.EventID, EventType: r.EventType, Attempt: r.Attempt, At: r.At, Latency: r.Latency,
		Outcome: r.Outcome, Status: r.Status, Error: r.Error, Response: r.Response, NextTry: r.NextTry, DeadLetter: r.DeadLetter})
}
