package kinetic

import (
	"os"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// stormSize is the discussions and per-subscribe processing time of the subscribe-storm
// tests: by default small enough for CI, yet the unpaced first round would outlast the ack
// timeout; KDBRIDGE_SUBSCRIBE_STORM_TEST=1 runs issue 17's figures (2,000 discussions, 50 ms
// per subscribe, the default ack_timeout: about two minutes).
func stormSize() (n int, delay, ackTimeout, wait time.Duration) {
	if os.Getenv("KDBRIDGE_SUBSCRIBE_STORM_TEST") == "1" {
		return 2000, 50 * time.Millisecond, DefaultAckTimeout, 5 * time.Minute
	}
	return 120, 20 * time.Millisecond, time.Second, 60 * time.Second
}

// eventuallyWithin is eventually with its own deadline, for the long storm run.
func eventuallyWithin(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Many discussions on a server whose subscribes take time: the first round is paced
// (subscribes_in_flight), each ack timer starts when its subscribe is written, so every ack
// comes in time; one connection, one subscribe per discussion, and the catch-ups' REST
// calls paced too.
func TestSubscribeStormPaced(t *testing.T) {
	n, delay, ackTimeout, wait := stormSize()
	srv := newSim(t, kinetictest.Options{})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
	}
	srv.SetSubscribeDelay(delay)
	if int(ackTimeout/delay) <= n {
		t.Logf("unpaced, the last of %d subscribes would be answered after %s, past the ack timeout of %s", n, time.Duration(n)*delay, ackTimeout)
	}
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) {
		c.AckTimeout = config.Duration(ackTimeout)
		c.Heartbeat = config.Duration(time.Second)
	})
	eventuallyWithin(t, wait, "every discussion subscribed and caught up", func() bool { return h.src.Status().Ready() })

	st, sim := h.src.Status(), srv.Stats()
	if st.Connects != 1 || sim.ConnectionsTotal != 1 {
		t.Errorf("%d connections identified, %d accepted; want 1 (no reconnect loop)", st.Connects, sim.ConnectionsTotal)
	}
	if sim.Subscribes != int64(n) {
		t.Errorf("%d subscribes for %d discussions: some were sent again", sim.Subscribes, n)
	}
	if lines := h.logs.lines("not acknowledged in time"); len(lines) != 0 {
		t.Errorf("ack timeouts with paced subscribes:\n%s", lines[0])
	}
	if sim.MaxListings > int64(defaultTiming().catchUps) {
		t.Errorf("%d message listings at once, want at most %d", sim.MaxListings, defaultTiming().catchUps)
	}
	t.Logf("%d discussions, %s per subscribe: %d subscribes, %d REST calls, at most %d listings at once",
		n, delay, sim.Subscribes, sim.RESTRequests, sim.MaxListings)
}

// A slow ack does not drop a healthy connection: with every subscribe sent at once
// (subscribes_in_flight as large as the round) the tail times out, is sent again and is
// subscribed, on the same connection.
func TestSlowAckKeepsConnection(t *testing.T) {
	const n = 40
	srv := newSim(t, kinetictest.Options{})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
	}
	srv.SetSubscribeDelay(25 * time.Millisecond) // the last of 40 answered after 1 s
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) {
		c.AckTimeout = config.Duration(300 * time.Millisecond)
		c.SubscribesInFlight = n
	})
	h.waitReady()
	st, sim := h.src.Status(), srv.Stats()
	if st.Connects != 1 || sim.ConnectionsTotal != 1 {
		t.Errorf("%d connections identified, %d accepted; want 1", st.Connects, sim.ConnectionsTotal)
	}
	if sim.Subscribes <= n {
		t.Errorf("%d subscribes for %d discussions: no slow ack was retried", sim.Subscribes, n)
	}
	if lines := h.logs.lines("level=WARN", "not acknowledged in time"); len(lines) != 1 {
		t.Errorf("%d warnings for slow acks, want 1 (the others are debug):\n%s", len(lines), h.logs.String())
	}
	want := post(t, srv, ids[n-1], "m", 2)
	h.waitMessages(ids[n-1], 2)
	exactlyOnce(t, h.rec.all(), ids[n-1], want)
}
