package kinetic

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// A server that silently stops sending to an identity whose token has expired: the source
// reconnects with a fresh token before that, so every message still arrives, once, in order.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	srv := newSim(t, kinetictest.Options{TokenLifetime: 3 * time.Second})
	srv.SilenceExpired(true)
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := start(t, srv, []string{d.ID})
	h.waitReady()
	var ids []string
	// Post and wait for each message until the source has renewed its token: a message
	// posted to a silenced identity would never arrive, and the wait for it would time out.
	for i := 0; i < 5000 && h.src.Status().Connects < 2; i++ {
		ids = append(ids, post(t, srv, d.ID, fmt.Sprint("m", i), 1)...)
		h.waitMessages(d.ID, len(ids))
	}
	ids = append(ids, post(t, srv, d.ID, "last", 1)...)
	h.waitMessages(d.ID, len(ids))
	if c := h.src.Status().Connects; c < 2 {
		t.Fatalf("%d connections after %d messages, want a renewal", c, len(ids))
	}
	exactlyOnce(t, h.rec.all(), d.ID, ids)
	if n := len(h.logs.lines("reconnecting to renew the token")); n < 1 {
		t.Errorf("no renewal line:\n%s", h.logs.String())
	}
	if lines := h.logs.lines("level=WARN"); len(lines) != 0 {
		t.Errorf("a planned renewal logged a warning: %s", lines[0])
	}
}

func TestRenewalTime(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		left, spread time.Duration
	}{
		{12 * time.Hour, time.Minute},
		{10 * time.Second, time.Second},
		{0, 0},
	} {
		expiry := now.Add(tc.left)
		for range 50 {
			at := renewalTime(expiry, now)
			if at.After(expiry) || at.Before(expiry.Add(-tc.spread)) || at.Before(now) {
				t.Fatalf("left %s: renewal at %s, want within %s before the expiry", tc.left, at.Sub(now), tc.spread)
			}
		}
	}
}

// Issue 16.1: a connection that got as far as identify, dropping, is retried from the first
// step of the backoff, whatever failures came before it; only failures to connect make the
// backoff grow.
func TestBackoffRestartsAfterWorkingConnection(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	srv.Stall(true) // frozen: connections upgrade, then nothing is answered
	h := start(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
		c.Heartbeat = config.Duration(200 * time.Millisecond)
		c.AckTimeout = config.Duration(100 * time.Millisecond)
		tm.reconnectFirst, tm.reconnectMax = 20*time.Millisecond, 30*time.Second
	})
	eventually(t, "five failed attempts", func() bool { return srv.Stats().ConnectionsTotal >= 5 })
	srv.Stall(false) // back
	h.waitReady()
	ids := post(t, srv, d.ID, "before", 1)
	h.waitMessages(d.ID, 1)

	srv.Stall(true)
	eventually(t, "the drop", func() bool { return len(h.logs.lines("kinetic: disconnected")) == 1 })
	srv.Stall(false)
	h.waitReady()
	ids = append(ids, post(t, srv, d.ID, "after", 1)...)
	h.waitMessages(d.ID, 2)
	exactlyOnce(t, h.rec.all(), d.ID, ids)

	// The backoff's next step after five failures is 20 ms × 2⁵ or more; the first step,
	// with its ±50 % jitter, is at most 30 ms.
	line := h.logs.lines("kinetic: disconnected")[0]
	_, after, _ := strings.Cut(line, "retry_in=")
	retry, err := time.ParseDuration(strings.Fields(after)[0])
	if err != nil || retry > 30*time.Millisecond {
		t.Errorf("retry after a working connection dropped: %v (%v), want the first step (≤ 30ms):\n%s", retry, err, line)
	}
	failed := h.logs.lines("kinetic: cannot connect")
	if len(failed) == 0 {
		t.Fatalf("no failed attempt logged:\n%s", h.logs.String())
	}
}
