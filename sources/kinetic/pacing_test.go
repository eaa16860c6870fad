package kinetic

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
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
	// The window stayed where the server answers within a tenth of ack_timeout.
	if limit := int64(ackTimeout / delay); sim.MaxSubscribesAwaiting >= limit {
		t.Errorf("at most %d subscribes awaited their ack at once; %d would reach ack_timeout", sim.MaxSubscribesAwaiting, limit)
	}
	if sim.MaxListings > int64(defaultTiming().catchUps) {
		t.Errorf("%d message listings at once, want at most %d", sim.MaxListings, defaultTiming().catchUps)
	}
	t.Logf("%d discussions, %s per subscribe: %d subscribes, %d REST calls, at most %d listings and %d subscribes awaiting their ack at once",
		n, delay, sim.Subscribes, sim.RESTRequests, sim.MaxListings, sim.MaxSubscribesAwaiting)
}

// A slow ack does not drop a healthy connection: the first window (16 subscribes) takes the
// server longer than ack_timeout, so its tail times out, is sent again and is subscribed, on
// the same connection.
func TestSlowAckKeepsConnection(t *testing.T) {
	const n = 24
	srv := newSim(t, kinetictest.Options{})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
	}
	srv.SetSubscribeDelay(60 * time.Millisecond) // the 16th of the first window answered after 960 ms
	h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) {
		c.AckTimeout = config.Duration(300 * time.Millisecond)
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

// The window of subscribes in flight opens against a server that answers quickly, however
// many subscribes it is given (it works on them at once), and stays small against one that
// answers a connection's subscribes one after another, so that no ack nears ack_timeout.
// Asserted on what the server saw: the most subscribes awaiting their answer at once.
func TestSubscribeWindowAdapts(t *testing.T) {
	t.Run("opens", func(t *testing.T) {
		const n = 600
		srv := newSim(t, kinetictest.Options{})
		ids := make([]string, n)
		for i := range ids {
			ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
		}
		srv.SetSubscribeLatency(20 * time.Millisecond)
		h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) { c.AckTimeout = config.Duration(DefaultAckTimeout) })
		h.waitReady()
		sim := srv.Stats()
		// Slow start from 16: 32, 64, 128, 256, 512 (the default ceiling) in as many round
		// trips, long before 600 subscribes are answered.
		if sim.MaxSubscribesAwaiting <= 4*initialWindow {
			t.Errorf("at most %d subscribes awaited their ack at once against a fast server; the window did not open", sim.MaxSubscribesAwaiting)
		}
		if sim.MaxSubscribesAwaiting > DefaultSubscribesInFlight {
			t.Errorf("%d subscribes awaited their ack at once, above subscribes_in_flight (%d)", sim.MaxSubscribesAwaiting, DefaultSubscribesInFlight)
		}
		if sim.Subscribes != n || sim.ConnectionsTotal != 1 {
			t.Errorf("%d subscribes on %d connections for %d discussions, want %d on 1", sim.Subscribes, sim.ConnectionsTotal, n, n)
		}
		t.Logf("at most %d subscribes awaiting their ack at once", sim.MaxSubscribesAwaiting)
	})
	t.Run("ceiling", func(t *testing.T) {
		const n, ceiling = 200, 40
		srv := newSim(t, kinetictest.Options{})
		ids := make([]string, n)
		for i := range ids {
			ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
		}
		srv.SetSubscribeLatency(20 * time.Millisecond)
		h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) {
			c.AckTimeout, c.SubscribesInFlight = config.Duration(DefaultAckTimeout), ceiling
		})
		h.waitReady()
		if sim := srv.Stats(); sim.MaxSubscribesAwaiting > ceiling || sim.MaxSubscribesAwaiting <= initialWindow {
			t.Errorf("at most %d subscribes awaited their ack at once, want more than %d and at most subscribes_in_flight (%d)",
				sim.MaxSubscribesAwaiting, initialWindow, ceiling)
		}
	})
	t.Run("closes", func(t *testing.T) {
		const n = 150
		const delay, ackTimeout = 20 * time.Millisecond, time.Second
		srv := newSim(t, kinetictest.Options{})
		ids := make([]string, n)
		for i := range ids {
			ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
		}
		// One at a time: k subscribes awaiting their ack means the last is answered k×20 ms
		// after it was sent; 50 would reach ack_timeout, 150 sent at once would far pass it.
		srv.SetSubscribeDelay(delay)
		h := start(t, srv, ids, func(c *Config, o *Options, tm *timing) { c.AckTimeout = config.Duration(ackTimeout) })
		eventuallyWithin(t, 60*time.Second, "every discussion subscribed and caught up", func() bool { return h.src.Status().Ready() })
		sim := srv.Stats()
		// The window grows from 16 while acks come within 100 ms (5 of them), to 21, then
		// halves and grows by one per round trip.
		if limit := int64(ackTimeout / delay / 2); sim.MaxSubscribesAwaiting >= limit {
			t.Errorf("at most %d subscribes awaited their ack at once against a slow server, want fewer than %d", sim.MaxSubscribesAwaiting, limit)
		}
		if sim.Subscribes != n || sim.ConnectionsTotal != 1 {
			t.Errorf("%d subscribes on %d connections for %d discussions, want %d on 1", sim.Subscribes, sim.ConnectionsTotal, n, n)
		}
		if lines := h.logs.lines("not acknowledged in time"); len(lines) != 0 {
			t.Errorf("ack timeouts:\n%s", lines[0])
		}
		t.Logf("at most %d subscribes awaiting their ack at once", sim.MaxSubscribesAwaiting)
	})
}

// BenchmarkSubscribe is the time from Run to every one of 2,000 discussions subscribed on a
// simulator that answers at once (the first round of a start-up; kdbridge bench -scenario
// scale measures 10,000 in a child process). Catch-ups run too, as they would.
func BenchmarkSubscribe(b *testing.B) {
	const n = 2000
	srv := kinetictest.NewServer(kinetictest.Options{ClientID: testClientID, ClientSecret: testSecret, SendBuffer: 1 << 15})
	defer srv.Close()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "d"}).ID
	}
	discard := bridge.EmitterFunc(func(context.Context, ...bridge.Event) error { return nil })
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond) // polling interval
		}
	}
	for b.Loop() {
		src, err := New("bench", Config{URL: srv.URL(), ClientID: testClientID, ClientSecret: testSecret, Discussions: ids},
			Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = src.Run(ctx, discard)
		}()
		wait("the subscriptions", func() bool { return srv.Stats().Subscriptions >= n })
		b.StopTimer()
		cancel()
		<-done
		wait("the connection to close", func() bool { return srv.Stats().Subscriptions == 0 })
		b.StartTimer()
	}
	b.ReportMetric(float64(srv.Stats().MaxSubscribesAwaiting), "max-awaiting")
}
