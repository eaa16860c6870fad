package kinetic

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// pacingRecorder is a recorder whose Behind (the dispatcher's advice to hold catch-ups
// back) is true for the discussions in behind while blocked is set; it keeps the events it
// was asked about.
type pacingRecorder struct {
	*recorder
	behind  map[string]bool
	blocked atomic.Bool

	mu     sync.Mutex
	probes []bridge.Event
}

func (p *pacingRecorder) Behind(evs ...bridge.Event) bool {
	p.mu.Lock()
	p.probes = append(p.probes, evs...)
	p.mu.Unlock()
	return p.blocked.Load() && len(evs) > 0 && p.behind[evs[0].Discussion.ID]
}

func (p *pacingRecorder) asked() []bridge.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.probes)
}

// restartWithMissed gives both discussions a checkpoint (a first start), then posts n
// messages in each while nothing runs, as a restart finds them.
func restartWithMissed(t *testing.T, srv *kinetictest.Server, cps Checkpoints, n int, ids ...string) map[string][]string {
	t.Helper()
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) { o.Checkpoints = cps })
	h.waitReady()
	h.stop()
	missed := map[string][]string{}
	for _, id := range ids {
		missed[id] = post(t, srv, id, "missed", n)
	}
	return missed
}

// A restart's catch-up waits, before reading a message, while the emitter says every sink
// it goes to is far behind and delivering — without its catch-up slot, so another
// discussion's catch-up (whose sinks have room) goes ahead meanwhile — and delivers all it
// missed, in order and once, when the sinks have room again. The emitter is asked with the
// event a new message of the discussion would be.
func TestCatchUpHeldBackWhileSinksAreBehind(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "held"})
	b := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "free"})
	cps := &MemoryCheckpoints{}
	missed := restartWithMissed(t, srv, cps, 30, a.ID, b.ID)

	h := build(t, srv, []string{a.ID, b.ID}, func(c *Config, o *Options, tm *timing) {
		o.Checkpoints = cps
		tm.catchUps = 1 // one slot: a's catch-up would keep b's waiting if it held it
		tm.holdBackPoll = 5 * time.Millisecond
	})
	pr := &pacingRecorder{recorder: h.rec, behind: map[string]bool{a.ID: true}}
	pr.blocked.Store(true)
	h.emit = pr
	h.run()

	h.waitMessages(b.ID, len(missed[b.ID]))
	st := h.waitStatus("a held-back catch-up, the source ready", func(st Status) bool { return st.CatchUpsHeldBack > 0 && st.Ready() })
	if d := discussionStatus(st, a.ID); !d.HeldBack || d.CaughtUp {
		t.Errorf("held-back discussion's status: %+v, want HeldBack and not CaughtUp", d)
	}
	time.Sleep(50 * time.Millisecond) // a held-back catch-up that leaked would emit by now
	if got, _ := h.rec.userMessages(a.ID); len(got) != 0 {
		t.Fatalf("%d messages of the held-back discussion emitted while its sinks were behind", len(got))
	}
	var probe bridge.Event
	for _, e := range pr.asked() {
		if e.Discussion.ID == a.ID {
			probe = e
		}
	}
	if probe.Source != "acme" || probe.Type != bridge.MessageCreated || probe.Discussion.Title != "held" {
		t.Errorf("Behind was asked with %+v, want a message.created of source acme in discussion %q", probe, "held")
	}

	pr.blocked.Store(false)
	h.waitMessages(a.ID, len(missed[a.ID]))
	h.waitStatus("the catch-up over", func(st Status) bool {
		d := discussionStatus(st, a.ID)
		return d.CaughtUp && !d.HeldBack
	})
	h.stop()
	exactlyOnce(t, h.rec.all(), a.ID, missed[a.ID])
	exactlyOnce(t, h.rec.all(), b.ID, missed[b.ID])
}

// A held-back catch-up goes on, whatever the emitter says, once live events of its
// discussion fill a quarter of the queue behind it: waiting longer would overflow the queue
// and lose the events that are not messages. Everything arrives once and in order.
func TestHeldBackCatchUpGoesOnWhenLiveEventsQueue(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "busy"})
	cps := &MemoryCheckpoints{}
	missed := restartWithMissed(t, srv, cps, 20, a.ID)

	h := build(t, srv, []string{a.ID}, func(c *Config, o *Options, tm *timing) {
		o.Checkpoints = cps
		tm.queueCap = 12 // a quarter: 3 live events
		tm.holdBackPoll = 5 * time.Millisecond
	})
	pr := &pacingRecorder{recorder: h.rec, behind: map[string]bool{a.ID: true}}
	pr.blocked.Store(true) // for good
	h.emit = pr
	h.run()
	h.waitStatus("the catch-up held back", func(st Status) bool { return st.CatchUpsHeldBack > 0 })
	if got, _ := h.rec.userMessages(a.ID); len(got) != 0 {
		t.Fatalf("%d messages emitted while held back", len(got))
	}
	live := post(t, srv, a.ID, "live", 3)
	h.waitMessages(a.ID, len(missed[a.ID])+len(live))
	h.stop()
	exactlyOnce(t, h.rec.all(), a.ID, append(slices.Clone(missed[a.ID]), live...))
	if st := h.src.Status(); st.Dropped != 0 {
		t.Errorf("%d live events dropped", st.Dropped)
	}
}

func discussionStatus(st Status, id string) DiscussionStatus {
	for _, d := range st.Discussions {
		if d.ID == id {
			return d
		}
	}
	return DiscussionStatus{}
}

// scriptedPacer answers Behind from answers, call by call, then with then.
type scriptedPacer struct {
	*recorder
	mu      sync.Mutex
	answers []bool
	then    atomic.Bool
}

func (p *scriptedPacer) Behind(...bridge.Event) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.answers) > 0 {
		a := p.answers[0]
		p.answers = p.answers[1:]
		return a
	}
	return p.then.Load()
}

// A catch-up let go after a wait asks again before reading its discussion: when the room
// its sinks had is gone by the time it has a slot (other catch-ups took it), it waits again
// without a REST call.
func TestHeldBackCatchUpAsksAgainBeforeReading(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	a := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "held"})
	cps := &MemoryCheckpoints{}
	missed := restartWithMissed(t, srv, cps, 10, a.ID)
	rest0 := srv.Stats().RESTRequests

	h := build(t, srv, []string{a.ID}, func(c *Config, o *Options, tm *timing) {
		o.Checkpoints = cps
		tm.holdBackPoll = 5 * time.Millisecond
	})
	// Behind after the discussion is read; room at the next ask (the wait ends); behind
	// again once the catch-up has its slot; then behind until the test says otherwise.
	sp := &scriptedPacer{recorder: h.rec, answers: []bool{true, false, true}}
	sp.then.Store(true)
	h.emit = sp
	h.run()
	h.waitStatus("a second wait", func(st Status) bool { return st.CatchUpsHeldBack >= 2 })
	if n := srv.Stats().RESTRequests - rest0; n != 1 {
		t.Errorf("%d REST calls by the second wait, want 1 (the first read of the discussion)", n)
	}
	sp.then.Store(false)
	h.waitMessages(a.ID, len(missed[a.ID]))
	h.stop()
	exactlyOnce(t, h.rec.all(), a.ID, missed[a.ID])
}
