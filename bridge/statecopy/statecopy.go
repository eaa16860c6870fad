// Package statecopy is the neutral form of kdbridge's whole state, for moving it from one
// store to another (`kdbridge state copy`): what a store exports and another imports. Both
// stores number events and deliveries from one sequence, so a snapshot keeps those numbers:
// queue order, de-duplication and dead-letter IDs (dl-<event seq>-<index>) survive the copy.
package statecopy

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// Snapshot is a store's state.
type Snapshot struct {
	Events  []Event   // every event remembered, in sequence order
	Pending []Pending // undelivered deliveries
	Dead    []Dead    // dead letters
	Values  []Value   // the key/value namespaces: checkpoints, the Slack map, disabled targets
}

// Event is one stored event. Body, the JSON of bridge.Event that both stores keep, is nil
// once nothing needs it (every delivery done): the event is then remembered for
// de-duplication only.
type Event struct {
	Seq      uint64
	ID       string
	StoredAt time.Time
	Body     []byte
}

// Pending is one undelivered delivery: Seq orders it in its queue.
type Pending struct {
	Queue     bridge.Queue
	Seq       uint64
	EventSeq  uint64
	Index     uint32 // of the target in its event's record
	Attempts  int
	FirstTry  time.Time
	LastError string
	NextTry   time.Time
}

// Dead is one dead letter.
type Dead struct {
	Pending
	Reason   string
	FailedAt time.Time
}

// Value is one entry of a key/value namespace.
type Value struct {
	Namespace, Key string
	Value          []byte
}

// MaxSeq is the largest sequence number the snapshot uses.
func (s *Snapshot) MaxSeq() uint64 {
	var m uint64
	for _, e := range s.Events {
		m = max(m, e.Seq)
	}
	for _, p := range s.Pending {
		m = max(m, p.Seq, p.EventSeq)
	}
	for _, d := range s.Dead {
		m = max(m, d.Seq, d.EventSeq)
	}
	return m
}

// Summary counts what the snapshot holds, one line per kind, values by namespace.
func (s *Snapshot) Summary() string {
	var b strings.Builder
	bodies := 0
	for _, e := range s.Events {
		if e.Body != nil {
			bodies++
		}
	}
	fmt.Fprintf(&b, "events:        %d (%d with a body still needed, %d remembered for de-duplication only)\n", len(s.Events), bodies, len(s.Events)-bodies)
	fmt.Fprintf(&b, "pending:       %d deliveries in %d queues\n", len(s.Pending), s.queues())
	fmt.Fprintf(&b, "dead letters:  %d\n", len(s.Dead))
	ns := map[string]int{}
	for _, v := range s.Values {
		ns[v.Namespace]++
	}
	names := make([]string, 0, len(ns))
	for n := range ns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "values:        %d in %s\n", ns[n], n)
	}
	if len(names) == 0 {
		fmt.Fprintf(&b, "values:        0\n")
	}
	return b.String()
}

func (s *Snapshot) queues() int {
	qs := map[string]bool{}
	for _, p := range s.Pending {
		qs[p.Queue.Target.Key()+"\x00"+p.Queue.Discussion] = true
	}
	return len(qs)
}
