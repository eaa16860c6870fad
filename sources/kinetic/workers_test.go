package kinetic

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// A quiet discussion has no goroutine: after its catch-up, its worker's goroutine ends, and
// the next live event starts one again.
func TestIdleWorkersHaveNoGoroutine(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	const discussions = 200
	var ids []string
	for i := range discussions {
		ids = append(ids, srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprint("d", i)}).ID)
	}
	before := runtime.NumGoroutine()
	h := start(t, srv, ids)
	h.waitReady()
	// Run, the connection, discovery-free background work and idle HTTP connections (on
	// both sides of the loopback) stay; one goroutine per discussion would be 200 more.
	eventually(t, "idle workers to end", func() bool { return runtime.NumGoroutine()-before < discussions/4 })
	for _, id := range ids[:3] {
		want := post(t, srv, id, "after-idle", 2)
		exactlyOnce(t, h.waitMessages(id, 2), id, want)
	}
	eventually(t, "idle workers to end again", func() bool { return runtime.NumGoroutine()-before < discussions/4 })
}
