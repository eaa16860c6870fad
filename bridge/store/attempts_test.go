package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
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

// BenchmarkLogAttempts writes the history in the dispatcher's batches (512 records, about
// what a busy second produces) and reports the file's growth per record.
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
	batch := make([]bridge.AttemptRecord, 512)
	n := 0
	for b.Loop() {
		for i := range batch {
			r := attempt(fmt.Sprintf("3f2b8c1e-5d7a-4c9e-8b1f-%012d", n%1000), fmt.Sprintf("evt_%032d", n), "hook", bridge.OutcomeDelivered, t0.Add(time.Duration(n)*time.Millisecond))
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
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
