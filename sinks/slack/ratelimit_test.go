package slack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// TestLimiterPaces checks the decisions of the channel limiter at chosen instants: no clock,
// no sleeping.
func TestLimiterPaces(t *testing.T) {
	l := newLimiters(2, 3).channel("C1") // 2 messages per second, bursts of 3
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []time.Duration
	for range 6 {
		d, r := l.reserve(t0)
		if r == nil {
			t.Fatal("no reservation while not paused")
		}
		got = append(got, d)
	}
	want := []time.Duration{0, 0, 0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays at t0 = %v, want %v", got, want)
		}
	}
	// Two seconds later the queue above has drained (1.5s) and one token has come back.
	if d, _ := l.reserve(t0.Add(2 * time.Second)); d != 0 {
		t.Errorf("after draining: wait %v", d)
	}
	if d, _ := l.reserve(t0.Add(2 * time.Second)); d != 500*time.Millisecond {
		t.Errorf("next: wait %v, want 500ms", d)
	}

	// A pause (after a 429) holds every caller until it ends, without taking tokens.
	l.pause(t0.Add(10 * time.Second))
	l.pause(t0.Add(5 * time.Second)) // a shorter pause does not shorten it
	if d, r := l.reserve(t0.Add(4 * time.Second)); r != nil || d != 6*time.Second {
		t.Errorf("paused: wait %v, reservation %v", d, r)
	}
	if d, r := l.reserve(t0.Add(10 * time.Second)); r == nil || d != 0 {
		t.Errorf("after the pause: wait %v", d)
	}
}

func TestLimiterWait(t *testing.T) {
	// A paused channel hands the wait back at once, whatever the context.
	l := newLimiters(1, 1).channel("C1")
	l.pause(time.Now().Add(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := l.wait(ctx)
	if d, ok := bridge.RetryAfterOf(err); !ok || d < 59*time.Minute || d > time.Hour || !errors.Is(err, errPaused) {
		t.Errorf("paused: %v", err)
	}

	// A wait of up to one interval is slept; the context ends it.
	l = newLimiters(1, 1).channel("C2")
	if err := l.wait(context.Background()); err != nil { // the burst: no wait at all
		t.Fatal(err)
	}
	if err := l.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := l.wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait past the deadline: %v", err)
	}
	// Neither took a token: the next turn is still about a second away, not three.
	if d, r := l.reserve(time.Now()); r == nil || d > time.Second {
		t.Errorf("after cancelled waits: next turn in %v", d)
	} else {
		r.Cancel()
	}

	// Further than one interval away (other discussions queue on the channel): handed back
	// for when the turn comes, and the turn is given up.
	if _, r := l.reserve(time.Now()); r == nil {
		t.Fatal("no reservation")
	}
	err = l.wait(context.Background())
	if d, ok := bridge.RetryAfterOf(err); !ok || d <= time.Second || d > 2*time.Second || !errors.Is(err, errBusy) {
		t.Errorf("busy channel: %v", err)
	}
	if d, _ := l.reserve(time.Now()); d > 2*time.Second {
		t.Errorf("the handed-back turn was kept: next turn in %v", d)
	}
}

func TestLimiterHold(t *testing.T) {
	for _, tt := range []struct {
		rate float64
		want time.Duration
	}{{1, 1010 * time.Millisecond}, {4, 252500 * time.Microsecond}, {0.5, 2020 * time.Millisecond}, {0.001, maxHold}} {
		if got := newLimiters(tt.rate, 3).hold; got != tt.want {
			t.Errorf("rate %g: hold %v, want %v", tt.rate, got, tt.want)
		}
	}
}

// TestSinkUsesTheChannelLimiter shows that posts take tokens from their channel's bucket: with
// a burst of two and a very slow rate, two posts go at once and a third is handed back to the
// dispatcher with the time until its turn, before calling Slack.
func TestSinkUsesTheChannelLimiter(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	cfg.Rate, cfg.Burst = 0.001, 2
	s := newSink(t, cfg, newMemKV())
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "one"), "")
	deliver(t, s, event(bridge.MessageCreated, "d2", "m2", "", "two"), "")
	if d, r := s.limiters.channel("C0000OPS1").reserve(time.Now()); r == nil || d < 900*time.Second {
		t.Errorf("after two posts: wait %v, want about 1000s", d)
	} else {
		r.Cancel()
	}
	// Another channel has its own bucket.
	deliver(t, s, event(bridge.MessageCreated, "d3", "m3", "", "three"), "C0000DEV2")

	err := s.Deliver(context.Background(), bridge.Delivery{Event: event(bridge.MessageCreated, "d4", "m4", "", "four")})
	if d, ok := bridge.RetryAfterOf(err); !ok || d < 900*time.Second || bridge.IsPermanent(err) || !strings.Contains(err.Error(), "slack C0000OPS1: busy") {
		t.Errorf("third post: %v", err)
	}
	if n := len(f.CallsOf("chat.postMessage")); n != 3 {
		t.Errorf("%d posts, want 3", n)
	}
	if st := s.Stats(); st.Busy != 1 || st.PacingWaits != 0 || st.RateLimited != 0 {
		t.Errorf("Stats = %+v, want one write handed back as busy", st)
	}
}

// TestStatsCountPacingWaits: a second post right after the first, within one interval,
// sleeps for its turn, and the sleep is counted.
func TestStatsCountPacingWaits(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	cfg.Rate, cfg.Burst = 20, 1
	s := newSink(t, cfg, newMemKV())
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", "one"), "")
	deliver(t, s, event(bridge.MessageCreated, "d2", "m2", "", "two"), "")
	st := s.Stats()
	if st.PacingWaits != 1 || st.PacingWait <= 0 || st.PacingWait > time.Second || st.Busy != 0 {
		t.Errorf("Stats = %+v, want one wait of up to 50ms", st)
	}
}
