package store

import (
	"bytes"
	"slices"
	"sync"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// eventCacheSize bounds the events kept decoded for Head. Decoding the stored JSON was the
// largest cost of a delivery after the HTTP exchange itself, paid again for every target.
// A burst's events are delivered within moments of their Append, so a few thousand cover
// it; the bound keeps a long backlog in the file, not the heap (about 1 KiB an event).
const eventCacheSize = 2048

// cachedEvent is an appended event as Head hands it out, with what its deliveries share.
type cachedEvent struct {
	event  bridge.Event
	shared *bridge.Shared
}

// eventCache holds recently appended events by event seq. Entries are added by the
// committer in the transaction that stores the event and removed when its body is deleted,
// so an entry never outlives its body; when full, the oldest entry makes room.
type eventCache struct {
	mu    sync.Mutex
	m     map[uint64]cachedEvent
	order []uint64 // seqs in the order added, oldest first; may hold removed ones
}

func newEventCache() *eventCache { return &eventCache{m: map[uint64]cachedEvent{}} }

func (c *eventCache) get(seq uint64) (cachedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[seq]
	return e, ok
}

func (c *eventCache) add(seq uint64, e bridge.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.m) >= eventCacheSize && len(c.order) > 0 {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) >= 4*eventCacheSize {
		// Removed seqs pile up in order while the map stays small: drop them.
		c.order = slices.DeleteFunc(c.order, func(s uint64) bool { _, ok := c.m[s]; return !ok })
	}
	c.m[seq] = cachedEvent{event: e, shared: new(bridge.Shared)}
	c.order = append(c.order, seq)
}

func (c *eventCache) remove(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, seq)
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

// cacheInTx caches an event stored by the transaction the committer is running.
func (s *Bolt) cacheInTx(seq uint64, e bridge.Event) {
	s.cache.add(seq, e)
	s.txCached = append(s.txCached, seq)
}

// runTx runs fn in a write transaction of the committer. When it fails, the events it cached
// go again: their seqs were rolled back with it and will name other events.
func (s *Bolt) runTx(fn func(*bolt.Tx) error) error {
	err := s.db.Update(fn)
	if err != nil {
		for _, seq := range s.txCached {
			s.cache.remove(seq)
		}
	}
	s.txCached = s.txCached[:0]
	return err
}
