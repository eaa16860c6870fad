package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/storetest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if crashChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

func openT(t testing.TB, dir string, opts Options) *Bolt {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ev is event n of discussion disc, as in the contract suite.
var ev = storetest.Ev

func tgt(sink string) bridge.Target { return bridge.Target{Route: "r", Sink: sink} }

func rec(e bridge.Event, ts ...bridge.Target) bridge.Record {
	return bridge.Record{Event: e, Targets: ts}
}

func mustAppend(t testing.TB, s *Bolt, recs ...bridge.Record) []bridge.Record {
	t.Helper()
	got, err := s.Append(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustHead(t testing.TB, s *Bolt, q bridge.Queue) (bridge.Pending, bool) {
	t.Helper()
	p, ok, err := s.Head(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return p, ok
}

func mustDone(t testing.TB, s *Bolt, p bridge.Pending) {
	t.Helper()
	if err := s.Done(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// drain delivers a queue to the end and returns the message texts in delivery order.
func drain(t testing.TB, s *Bolt, q bridge.Queue) []string {
	t.Helper()
	var got []string
	for {
		p, ok := mustHead(t, s, q)
		if !ok {
			return got
		}
		got = append(got, p.Event.Message.Text)
		mustDone(t, s, p)
	}
}

// flush waits until every Done that returned before it is committed: the committer takes
// the queued Done calls with the next write it receives.
func flush(t testing.TB, s *Bolt) {
	t.Helper()
	if err := s.update(context.Background(), func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// bodies counts the event bodies the store keeps once queued Done calls are committed.
func bodies(t testing.TB, s *Bolt) int {
	t.Helper()
	flush(t, s)
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketEvents).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
