package bridge

import (
	"testing"
	"time"
)

// A delivery can be done before its Emit has counted it (a worker draining the queue reads
// the new event at once): the per-target count must come back to zero like the sink's, not
// keep the late increment for ever.
func TestBacklogDoneBeforeCounted(t *testing.T) {
	var b backlog
	q := Queue{Target: Target{Route: "r", Sink: "hook", Channel: "#a"}, Discussion: "d"}
	b.removed(q)
	b.added(q, 1, time.Now())
	if n := b.targetPending(q.Target); n != 0 {
		t.Errorf("target pending %d after one delivery added and done, want 0", n)
	}
	if s := b.snapshot(nil); len(s) != 0 {
		t.Errorf("snapshot %+v, want nothing waiting", s)
	}
}
