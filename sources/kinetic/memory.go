package kinetic

import (
	"runtime/debug"
	"time"
)

// restPoll is how often a session checks whether its first round of catch-ups is over.
const restPoll = 250 * time.Millisecond

// watchRest starts checking for the end of the first round's catch-ups, once per Source.
//
// Start-up is the source's peak of memory: every discussion subscribes and catches up at
// once, and then most of them stay quiet. Nothing makes the Go runtime collect and return
// that peak afterwards (no allocation means no GC; the scavenger returns freed pages
// slowly), so a daemon at rest keeps tens of megabytes it will not use again. One
// debug.FreeOSMemory once the first round's catch-ups are over gives them back. Measured
// with kdbridge bench -scenario scale (10,000 discussions, with F4–F6, 6 runs each): RSS at
// rest 80–92 MB without it, 54–55 MB with it (docs/performance.md, F6).
func (ss *session) watchRest() {
	if ss.s.returned.Load() || ss.restTick != nil {
		return
	}
	ss.restTick = time.NewTicker(restPoll)
}

// checkRest returns the memory of start-up once every discussion subscribed is caught up
// and no catch-up runs.
func (ss *session) checkRest() {
	if len(ss.s.catchUps) > 0 || !ss.s.st.subscribedCaughtUp() {
		return
	}
	ss.stopRestWatch()
	if ss.s.returned.CompareAndSwap(false, true) {
		n, events := ss.s.st.caughtUp()
		ss.s.log.Info("kinetic: caught up", "discussions", n, "events", events)
		ss.fleet.wg.Go(debug.FreeOSMemory) // a full GC: not on the goroutine that reads frames
	}
}

func (ss *session) stopRestWatch() {
	if ss.restTick != nil {
		ss.restTick.Stop()
		ss.restTick = nil
	}
}

// restC is the channel of the rest check's ticker, nil when none runs.
func (ss *session) restC() <-chan time.Time {
	if ss.restTick == nil {
		return nil
	}
	return ss.restTick.C
}
