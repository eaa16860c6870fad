package kinetic

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// Issue 16.3: a first start replays no history. Its "now" is on the space's clock (read
// from the token), so messages posted a few seconds before it are history whatever the skew
// between our clock and the space's, and those posted after it are all delivered.
func TestFirstStartOnSpaceClock(t *testing.T) {
	for _, skew := range []time.Duration{0, 10 * time.Minute, -10 * time.Minute} {
		t.Run(fmt.Sprint("space clock ", skew), func(t *testing.T) {
			var offset atomic.Int64
			srv := newSim(t, kinetictest.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
			d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
			// History, stamped 5 s before now on the space's clock: inside the old 30 s margin.
			offset.Store(int64(skew - 5*time.Second))
			post(t, srv, d.ID, "history", 3)
			offset.Store(int64(skew))

			h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
				tm.serverClock, tm.clockMargin, tm.startSkew = true, 2*time.Second, 30*time.Second
			})
			h.waitReady()
			fresh := post(t, srv, d.ID, "new", 2)
			got := messageIDs(h.waitMessages(d.ID, 2))
			if !slices.Equal(got, fresh) {
				t.Errorf("first start emitted %v, want only the messages posted after it, %v", got, fresh)
			}
			if off, ok := h.src.tokens.clockOffset(); !ok || (off-skew).Abs() > 2*time.Second {
				t.Errorf("clock offset %s (known %t), want about %s", off, ok, skew)
			}
		})
	}
}
