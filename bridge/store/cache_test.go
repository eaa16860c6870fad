package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Head hands out a recently appended event from the cache: the same event for every target,
// with one Shared, equal to what the file holds, and not tied to the caller's copy.
func TestHeadFromCache(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	e := ev("d", 0)
	e.Message.Content = []bridge.Token{{Type: "text", Value: json.RawMessage(`"0"`)}}
	e.Message.Attachments = []bridge.Attachment{{Filename: "a.txt", Size: 1}}
	e.Raw = json.RawMessage(`{"id":"m"}`)
	want := mustJSON(t, e)
	mustAppend(t, s, rec(e, tgt("a"), tgt("b")))
	// The caller may reuse its event once Append returned.
	e.Message.Text = "changed"
	e.Message.Content[0].Value[1] = 'X'
	e.Raw[2] = 'X'

	qa, qb := bridge.Queue{Target: tgt("a"), Discussion: "d"}, bridge.Queue{Target: tgt("b"), Discussion: "d"}
	pa, _ := mustHead(t, s, qa)
	pb, _ := mustHead(t, s, qb)
	if got := mustJSON(t, pa.Event); got != want {
		t.Fatalf("Head event = %s, want %s", got, want)
	}
	if pa.Shared == nil || pa.Shared != pb.Shared || pa.Event.Message != pb.Event.Message {
		t.Fatal("the targets of a cached event do not share it")
	}
	var fromFile bridge.Event
	if err := s.db.View(func(tx *bolt.Tx) (err error) {
		fromFile, err = loadEvent(tx.Bucket(bucketEvents), pa.Seq)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, fromFile); got != want {
		t.Fatalf("file event = %s, want %s", got, want)
	}

	// The entry goes with the body, once every target is done.
	mustDone(t, s, pa)
	flush(t, s)
	if _, ok := s.cache.get(pa.Seq); !ok {
		t.Fatal("the event left the cache while a target still needs it")
	}
	mustDone(t, s, pb)
	flush(t, s)
	if _, ok := s.cache.get(pa.Seq); ok {
		t.Fatal("the event stayed in the cache after its body was deleted")
	}

	// Without the cache (a restart), Head decodes the same event from the file, once for
	// all its targets.
	mustAppend(t, s, rec(ev("d", 1), tgt("a"), tgt("b")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	pa, _ = mustHead(t, s, qa)
	pb, _ = mustHead(t, s, qb)
	if mustJSON(t, pa.Event) != mustJSON(t, ev("d", 1)) {
		t.Fatalf("Head after restart = %s", mustJSON(t, pa.Event))
	}
	if pa.Shared == nil || pa.Shared != pb.Shared || pa.Event.Message != pb.Event.Message {
		t.Fatal("the targets of an event decoded by Head do not share it")
	}
	mustDone(t, s, pa)
	mustDone(t, s, pb)
	flush(t, s)
	if _, ok := s.cache.get(pa.Seq); ok {
		t.Fatal("a decoded event stayed cached after its body was deleted")
	}
}

// The cache stays bounded whatever the backlog. When full it keeps the oldest events, which
// are delivered next, until they go or grow stale.
func TestEventCacheIsBounded(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	var clk clock
	clk.Set(time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC))
	s.cache.now = clk.Now
	const n = eventCacheSize + 500
	recs := make([]bridge.Record, 0, 500)
	for i := range n {
		recs = append(recs, rec(ev("d", i), tgt("a")))
		if len(recs) == cap(recs) {
			mustAppend(t, s, recs...)
			recs = recs[:0]
		}
	}
	mustAppend(t, s, recs...)
	cached := func(seq uint64) bool {
		_, ok := s.cache.get(seq)
		return ok
	}
	s.cache.mu.Lock()
	size, order := len(s.cache.m), len(s.cache.order)
	s.cache.mu.Unlock()
	if size != eventCacheSize || order > 4*eventCacheSize || !cached(1) || cached(n) {
		t.Fatalf("cache holds %d entries (order %d, oldest cached %v, newest %v) after %d appends; bound %d",
			size, order, cached(1), cached(n), n, eventCacheSize)
	}
	// Entries stuck for longer than cacheStaleAfter make room for new events.
	clk.Set(clk.Now().Add(cacheStaleAfter))
	mustAppend(t, s, rec(ev("d", n), tgt("a")))
	if cached(1) || !cached(n+1) {
		t.Fatalf("after %s the oldest entry is cached %v, the new event %v", cacheStaleAfter, cached(1), cached(n+1))
	}
	// Draining through the cache and past it delivers everything in order.
	got := drain(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"})
	if len(got) != n+1 || got[0] != "0" || got[n] != fmt.Sprint(n) {
		t.Fatalf("drained %d events, first %v", len(got), got[:1])
	}
	if bodies(t, s) != 0 {
		t.Fatal("bodies left after draining")
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	if len(s.cache.m) != 0 || len(s.cache.decoded) != 0 {
		t.Fatalf("cache holds %d appended and %d decoded entries after draining", len(s.cache.m), len(s.cache.decoded))
	}
}

func TestDecodedCacheIsBounded(t *testing.T) {
	c := newEventCache()
	for seq := range uint64(10 * decodedCacheSize) {
		c.addDecoded(seq, ev("d", int(seq)), time.Time{})
		if len(c.decoded) > decodedCacheSize || len(c.decodedOrder) > 4*decodedCacheSize {
			t.Fatalf("after %d adds: %d entries, order %d", seq+1, len(c.decoded), len(c.decodedOrder))
		}
	}
	if _, ok := c.get(10*decodedCacheSize - 1); !ok {
		t.Fatal("the newest decoded event is not cached")
	}
}

// A failed transaction takes back the events it cached: their seqs are rolled back too.
func TestFailedAppendLeavesNothingCached(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.update(ctx, func(tx *bolt.Tx) error {
		e := ev("d", 0)
		if _, _, err := s.appendOne(tx, rec(e, tgt("a")), appendEventBinary(make([]byte, 4), &e), stamp(s.now())); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update = %v", err)
	}
	s.cache.mu.Lock()
	n := len(s.cache.m)
	s.cache.mu.Unlock()
	if n != 0 {
		t.Fatalf("a rolled-back append left %d cached events", n)
	}
	// The seq is used again, by another event, which Head must not confuse with the first.
	mustAppend(t, s, rec(ev("d", 7), tgt("a")))
	if p, _ := mustHead(t, s, bridge.Queue{Target: tgt("a"), Discussion: "d"}); p.Event.Message.Text != "7" {
		t.Fatalf("Head = %q, want 7", p.Event.Message.Text)
	}
}
