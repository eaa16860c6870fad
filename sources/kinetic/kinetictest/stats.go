package kinetictest

import "sync/atomic"

// Stats are the server's counters. Counts of actions count frames received, whatever
// the answer; Connections and Subscriptions are current values.
type Stats struct {
	TokenRequests    int64 // token endpoint calls
	Identifies       int64 // identify actions received
	Subscribes       int64 // subscribe actions received
	Unsubscribes     int64 // unsubscribe actions received
	AcksOK           int64 // ack-ok frames queued
	AcksError        int64 // ack-error frames queued
	Connections      int64 // websockets open now
	ConnectionsTotal int64 // websockets ever accepted
	Subscriptions    int64 // active (connection, discussion) subscriptions now
	Messages         int64 // messages created (user and system)
	RESTRequests     int64 // Discussions REST calls
	MessageListings  int64 // message listings (GET …/messages) being answered now
	MaxListings      int64 // the most message listings answered at once
	BadFrames        int64 // client frames that were not a JSON object or not text
	SlowConsumers    int64 // connections closed because their send buffer was full
	Frames           int64 // frames queued to connections (acks, events, raw)
	// MaxSubscribesAwaiting is the most subscribes one connection had sent (read by the
	// server) and not yet had answered, at any moment: how far a client let its subscribes
	// run ahead of the answers.
	MaxSubscribesAwaiting int64
}

type counters struct {
	tokenRequests, identifies, subscribes, unsubscribes atomic.Int64
	acksOK, acksError                                   atomic.Int64
	connectionsTotal, subscriptions, messages           atomic.Int64
	restRequests, badFrames, slowConsumers, frames      atomic.Int64
	listings, maxListings                               atomic.Int64
	maxAwaiting                                         atomic.Int64
}

// awaitingSubscribes records that a connection has n subscribes awaiting their answer.
func (c *counters) awaitingSubscribes(n int64) {
	for {
		m := c.maxAwaiting.Load()
		if n <= m || c.maxAwaiting.CompareAndSwap(m, n) {
			return
		}
	}
}

// listing counts a message listing in flight; the returned func ends it.
func (c *counters) listing() func() {
	n := c.listings.Add(1)
	for {
		m := c.maxListings.Load()
		if n <= m || c.maxListings.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { c.listings.Add(-1) }
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	s.hub.mu.Lock()
	open := int64(len(s.hub.conns))
	s.hub.mu.Unlock()
	return Stats{
		TokenRequests:    c.tokenRequests.Load(),
		Identifies:       c.identifies.Load(),
		Subscribes:       c.subscribes.Load(),
		Unsubscribes:     c.unsubscribes.Load(),
		AcksOK:           c.acksOK.Load(),
		AcksError:        c.acksError.Load(),
		Connections:      open,
		ConnectionsTotal: c.connectionsTotal.Load(),
		Subscriptions:    c.subscriptions.Load(),
		Messages:         c.messages.Load(),
		RESTRequests:     c.restRequests.Load(),
		MessageListings:  c.listings.Load(),
		MaxListings:      c.maxListings.Load(),
		BadFrames:        c.badFrames.Load(),
		SlowConsumers:    c.slowConsumers.Load(),
		Frames:           c.frames.Load(),

		MaxSubscribesAwaiting: c.maxAwaiting.Load(),
	}
}
