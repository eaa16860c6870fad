package slack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kdbridge/kdbridge/bridge"
)

// Slack allows about one chat.postMessage per second per channel, with short bursts, and
// answers more with 429. The dispatcher runs discussions concurrently, so several of them
// may write to one channel at once: a token bucket per channel keeps them, together, under
// the limit. After a 429 the channel's bucket is paused for Retry-After, so that the other
// discussions of that channel wait too instead of provoking more 429s (Slack may disable an
// app that ignores them).
//
// Other channels must not wait with it. The dispatcher gives a sink a few workers, and a
// worker that sleeps in a paused channel's wait is one that cannot deliver to another
// channel: with as many discussions waiting on a paused channel as there are workers, every
// channel would stall. So a write to a paused channel, or one whose turn in the bucket is
// further away than one interval (many discussions queueing on a busy channel), does not
// sleep: it fails at once with bridge.RetryAfter for the time left, and the dispatcher parks
// that discussion's queue on a timer while its worker serves other queues. One discussion
// alone never waits longer than an interval, so a steady stream still flows without retries.

// limiters holds one limiter per channel id. Channels come from the configuration and route
// targets, so the map stays small.
type limiters struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	hold  time.Duration // the longest wait spent sleeping rather than handed back
	m     map[string]*channelLimiter

	stats *stats // counts waits and hand-backs when set
}

// maxHold caps hold for very slow rates: a worker never sleeps longer than this in wait.
const maxHold = 5 * time.Second

func newLimiters(perSecond float64, burst int) *limiters {
	// One interval, plus a little for the float arithmetic of the bucket: the wait of the
	// next message of a lone stream is at most one interval.
	hold := time.Duration(float64(time.Second) / perSecond * 1.01)
	return &limiters{rate: rate.Limit(perSecond), burst: burst, hold: min(hold, maxHold), m: map[string]*channelLimiter{}}
}

func (l *limiters) channel(id string) *channelLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[id]
	if !ok {
		c = &channelLimiter{lim: rate.NewLimiter(l.rate, l.burst), hold: l.hold, stats: l.stats}
		l.m[id] = c
	}
	return c
}

// channelLimiter is a token bucket that can also be paused until a time.
type channelLimiter struct {
	lim   *rate.Limiter
	hold  time.Duration
	stats *stats // nil: not counted

	mu          sync.Mutex
	pausedUntil time.Time
}

// pause stops the channel until until; a shorter pause never shortens a longer one.
func (c *channelLimiter) pause(until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until.After(c.pausedUntil) {
		c.pausedUntil = until
	}
}

// reserve is the decision of wait at time now: while paused, the time left of the pause and
// no reservation (a token taken now would be spent in the burst right after the pause);
// otherwise a reservation of one token and how long to wait for it. Taking now as an
// argument lets tests check the pacing without a clock.
func (c *channelLimiter) reserve(now time.Time) (time.Duration, *rate.Reservation) {
	c.mu.Lock()
	paused := c.pausedUntil
	c.mu.Unlock()
	if paused.After(now) {
		return paused.Sub(now), nil
	}
	r := c.lim.ReserveN(now, 1) // burst is at least 1, so this is always ok
	return r.DelayFrom(now), r
}

// errPaused and errBusy say why a write was handed back to the dispatcher for later.
var (
	errPaused = errors.New("paused after Slack's 429")
	errBusy   = errors.New("busy: other discussions hold the next turns of the channel's rate limit")
)

// wait blocks until the channel may take one more write, for at most the hold time. A
// longer wait, or any wait while the channel is paused, is not slept: it returns a
// bridge.RetryAfter error for the time left (see the top of the file). ctx ending, or a wait
// that would pass ctx's deadline, returns the context's error.
func (c *channelLimiter) wait(ctx context.Context) error {
	now := time.Now()
	d, r := c.reserve(now)
	switch {
	case d <= 0:
		return nil
	case r == nil:
		c.count(func(s *stats) { s.paused.Add(1) })
		return bridge.RetryAfter(errPaused, d)
	case d > c.hold:
		r.CancelAt(now)
		c.count(func(s *stats) { s.busy.Add(1) })
		return bridge.RetryAfter(errBusy, d)
	}
	if deadline, ok := ctx.Deadline(); ok && now.Add(d).After(deadline) {
		r.CancelAt(now)
		return fmt.Errorf("waiting %s for the channel's rate limit would pass the deadline: %w", d.Round(time.Millisecond), context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	defer c.count(func(s *stats) {
		s.pacingWaits.Add(1)
		s.pacingWaitNanos.Add(uint64(time.Since(now)))
	})
	select {
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// count adds to the sink's counters, if the limiter has them.
func (c *channelLimiter) count(add func(*stats)) {
	if c.stats != nil {
		add(c.stats)
	}
}
