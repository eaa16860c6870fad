package bridge

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// SinkBacklog is how far behind a sink is: what is stored for it and not yet delivered.
type SinkBacklog struct {
	Sink    string
	Pending int // deliveries waiting (dead letters not included)
	// OldestAt is when the event of the oldest waiting delivery was stored; zero when
	// nothing waits. It is the oldest of the queues' heads as the dispatcher last read them,
	// so right after a delivery it may still name the one just delivered, until the
	// queue's next head is read.
	OldestAt time.Time
	// Halted is set while the sink is halted: its credentials were refused (halt.go).
	Halted bool
}

// backlog keeps each sink's pending count and the store time of each non-empty queue's head
// up to date as the dispatcher works, so that reading them costs no store access and nothing
// that grows with the backlog: one counter per target and one time per non-empty queue. The
// counts start from the store's own (BacklogCounter) when Run starts.
type backlog struct {
	// gate keeps the start-up count and the changes made meanwhile apart: Emit and Replay
	// hold it shared from before they write to the store until they have counted, the
	// start-up count holds it exclusively, so it neither misses nor doubles a write.
	gate sync.RWMutex

	mu    sync.Mutex
	sinks map[string]*sinkBacklog
}

type sinkBacklog struct {
	heads map[queueID]time.Time // non-empty queues → when their head was stored (zero: not read yet)
	// targets counts pending deliveries per target (for Behind); the sink's are their sum.
	// A count may be negative for a moment: a delivery can be done before the Emit that
	// stored it has counted it (a worker draining the queue reads the new event at once).
	targets map[Target]int
}

// pending is how many of the sink's deliveries wait.
func (s *sinkBacklog) pending() int {
	n := 0
	for _, v := range s.targets {
		n += v
	}
	return n
}

func (b *backlog) sink(name string) *sinkBacklog {
	if b.sinks == nil {
		b.sinks = map[string]*sinkBacklog{}
	}
	s := b.sinks[name]
	if s == nil {
		s = &sinkBacklog{heads: map[queueID]time.Time{}, targets: map[Target]int{}}
		b.sinks[name] = s
	}
	return s
}

// load replaces everything with what the store counts. The caller holds gate exclusively.
func (b *backlog) load(qs []QueueBacklog) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sinks = nil
	for _, q := range qs {
		s := b.sink(q.Queue.Target.Sink)
		s.count(q.Queue.Target, q.Pending)
		s.heads[idOf(q.Queue)] = q.OldestAt
	}
}

// added counts n deliveries appended to q at about at (q's head then, if q was empty).
func (b *backlog) added(q Queue, n int, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sink(q.Target.Sink)
	s.count(q.Target, n)
	if _, ok := s.heads[idOf(q)]; !ok && n > 0 {
		s.heads[idOf(q)] = at
	}
}

// removed counts one delivery of q done or dead-lettered. The queue's next head is learnt
// when it is read (see head).
func (b *backlog) removed(q Queue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sink(q.Target.Sink).count(q.Target, -1)
}

// count adds n to t's pending deliveries, forgetting t when none is left.
func (s *sinkBacklog) count(t Target, n int) {
	if v := s.targets[t] + n; v != 0 {
		s.targets[t] = v
	} else {
		delete(s.targets, t)
	}
}

// targetPending is how many deliveries to t wait.
func (b *backlog) targetPending(t Target) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.sinks[t.Sink]; s != nil {
		return s.targets[t]
	}
	return 0
}

// head records what the dispatcher read at the head of q: a delivery stored at storedAt, or
// (ok false) nothing.
func (b *backlog) head(q Queue, storedAt time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sink(q.Target.Sink)
	if !ok {
		delete(s.heads, idOf(q))
		return
	}
	if !storedAt.IsZero() {
		s.heads[idOf(q)] = storedAt
	}
}

// snapshot reports every sink in names and every other one with deliveries waiting.
func (b *backlog) snapshot(names []string) []SinkBacklog {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SinkBacklog, 0, len(b.sinks)+len(names))
	for _, name := range slices.Sorted(maps.Keys(b.sinks)) {
		s := b.sinks[name]
		pending := s.pending()
		if pending <= 0 && !slices.Contains(names, name) {
			continue
		}
		sb := SinkBacklog{Sink: name, Pending: max(pending, 0)}
		if sb.Pending > 0 {
			for _, at := range s.heads {
				if !at.IsZero() && (sb.OldestAt.IsZero() || at.Before(sb.OldestAt)) {
					sb.OldestAt = at
				}
			}
		}
		out = append(out, sb)
	}
	for _, name := range names {
		if b.sinks[name] == nil {
			out = append(out, SinkBacklog{Sink: name})
		}
	}
	slices.SortFunc(out, func(a, b SinkBacklog) int { return strings.Compare(a.Sink, b.Sink) })
	return out
}

// Backlog reports, per sink, how many deliveries wait and since when the oldest of them was
// stored. It reads counters the dispatcher keeps as it works (from the store's own count when
// Run started, if the store is a BacklogCounter), never the store, so it is cheap enough for
// every metrics scrape whatever the backlog. Configured sinks are always listed; a sink that
// is no longer configured is listed while deliveries for it wait in the store.
func (d *Dispatcher) Backlog() []SinkBacklog {
	d.mu.RLock()
	names := slices.Collect(maps.Keys(d.sinks))
	d.mu.RUnlock()
	out := d.backlog.snapshot(names)
	halted := d.Halted()
	for i := range out {
		_, out[i].Halted = halted[out[i].Sink]
	}
	return out
}

// countBacklog starts the counters from the store's count, if it can count.
func (d *Dispatcher) countBacklog(ctx context.Context) error {
	bc, ok := d.store.(BacklogCounter)
	if !ok {
		return nil
	}
	d.backlog.gate.Lock()
	defer d.backlog.gate.Unlock()
	qs, err := bc.Backlog(ctx)
	if err != nil {
		return err
	}
	d.backlog.load(qs)
	return nil
}
