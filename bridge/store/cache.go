package store

import (
	"bytes"
	"slices"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// eventCacheSize bounds the events kept decoded for Head. Decoding the stored JSON was the
// largest cost of a delivery after the HTTP exchange itself, paid again for every target.
// The bound keeps a long backlog in the file, not the heap (a few KiB an event).
const eventCacheSize = 2048

// cacheStaleAfter is how long an entry is sure to stay. Deliveries go oldest first, so when
// the cache is full the entries that will be needed next are the old ones, and a new event
// is not cached; but an entry older than this may make room, so that events whose
// deliveries are stuck (a sink that is down, or gone from the configuration) cannot keep the
// cache full for ever.
const cacheStaleAfter = 30 * time.Second

// decodedCacheSize bounds the events that Head had to decode, kept for the other targets of
// the same event: behind a backlog longer than eventCacheSize, each target's Head would
// otherwise decode it (and render its envelope) again. The targets of one event are
// delivered at about the same time, so a short memory, oldest out first, is enough.
const decodedCacheSize = 512

// cachedEvent is an appended event as Head hands it out, with what its deliveries share.
type cachedEvent struct {
	event    bridge.Event
	shared   *bridge.Shared
	storedAt time.Time // when the event was stored: Head's StoredAt without another lookup
}

// eventCache holds appended events by event seq. Entries are added by the committer in the
// transaction that stores the event and removed when its body is deleted, so an entry never
// outlives its body. When it is full, a new event is cached only in place of an entry older
// than cacheStaleAfter.
type eventCache struct {
	mu    sync.Mutex
	m     map[uint64]cachedEvent
	order []cacheSlot // in the order added, oldest first; may hold removed seqs
	now   func() time.Time

	decoded      map[uint64]cachedEvent // added by Head (addDecoded)
	decodedOrder []uint64               // oldest first; may hold removed seqs
}

type cacheSlot struct {
	seq   uint64
	added time.Time
}

func newEventCache() *eventCache {
	return &eventCache{m: map[uint64]cachedEvent{}, now: time.Now, decoded: map[uint64]cachedEvent{}}
}

func (c *eventCache) get(seq uint64) (cachedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[seq]; ok {
		return e, true
	}
	e, ok := c.decoded[seq]
	return e, ok
}

// addDecoded keeps an event that Head decoded from the file and returns it as cached. Head
// calls it outside the committer, so the event's body may have gone meanwhile; such an
// entry is never asked for (seqs of committed events are not reused) and ages out.
func (c *eventCache) addDecoded(seq uint64, e bridge.Event, storedAt time.Time) cachedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.decoded[seq]; ok {
		return ce // another target's Head was faster
	}
	for len(c.decoded) >= decodedCacheSize && len(c.decodedOrder) > 0 {
		delete(c.decoded, c.decodedOrder[0])
		c.decodedOrder = c.decodedOrder[1:]
	}
	if len(c.decodedOrder) >= 4*decodedCacheSize {
		c.decodedOrder = slices.DeleteFunc(c.decodedOrder, func(s uint64) bool { _, ok := c.decoded[s]; return !ok })
	}
	ce := cachedEvent{event: e, shared: new(bridge.Shared), storedAt: storedAt}
	c.decoded[seq] = ce
	c.decodedOrder = append(c.decodedOrder, seq)
	return ce
}

// add caches a copy of e under seq (cloneEvent: the caller of Append may reuse or change
// its event) and reports whether there was room. Only an event that is cached is copied: in
// a burst the cache is full most of the time, and copying every appended event was 7 % of
// the bytes a burst allocated.
func (c *eventCache) add(seq uint64, e *bridge.Event, storedAt time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for len(c.order) > 0 {
		if _, ok := c.m[c.order[0].seq]; ok {
			if len(c.m) < eventCacheSize || now.Sub(c.order[0].added) < cacheStaleAfter {
				break
			}
			delete(c.m, c.order[0].seq)
		}
		c.order = c.order[1:] // removed already, or stale
	}
	if len(c.m) >= eventCacheSize {
		return false
	}
	if len(c.order) >= 4*eventCacheSize {
		// Removed seqs pile up in order while the map stays small: drop them.
		c.order = slices.DeleteFunc(c.order, func(s cacheSlot) bool { _, ok := c.m[s.seq]; return !ok })
	}
	c.m[seq] = cachedEvent{event: cloneEvent(*e), shared: new(bridge.Shared), storedAt: storedAt}
	c.order = append(c.order, cacheSlot{seq, now})
	return true
}

func (c *eventCache) remove(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, seq)
	delete(c.decoded, seq)
}

// cloneEvent copies e deeply enough that the caller of Append can reuse or change its event
// without changing what Head hands out.
func cloneEvent(e bridge.Event) bridge.Event {
	e.Raw = bytes.Clone(e.Raw)
	if e.Message != nil {
		m := *e.Message
		if m.Content != nil {
			m.Content = slices.Clone(m.Content)
			for i := range m.Content {
				m.Content[i].Value = bytes.Clone(m.Content[i].Value)
			}
		}
		m.Attachments = slices.Clone(m.Attachments)
		e.Message = &m
	}
	return e
}

// cacheInTx caches an event stored by the transaction the committer is running, if there is
// room.
func (s *Bolt) cacheInTx(seq uint64, e *bridge.Event, storedAt time.Time) {
	if s.cache.add(seq, e, storedAt) {
		s.txCached = append(s.txCached, seq)
	}
}

// runTx runs fn in a write transaction of the committer. When it fails, the events it cached
// go again (their seqs were rolled back with it and will name other events), and so do the
// IDs it stored (ids.go); when it commits, those IDs join the ones in memory.
func (s *Bolt) runTx(fn func(*bolt.Tx) error) error {
	err := s.observed(s.db, FileName, fn)
	if err != nil {
		for _, seq := range s.txCached {
			s.cache.remove(seq)
		}
		s.recent.discard()
	} else {
		s.recent.commit()
	}
	s.txCached = s.txCached[:0]
	return err
}
