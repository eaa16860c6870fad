package slack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Slack allows about one chat.postMessage per second per channel, with short bursts, and
// answers more with 429. The dispatcher runs discussions concurrently, so several of them
// may write to one channel at once: a token bucket per channel keeps them, together, under
// the limit. After a 429 the channel's bucket is paused for Retry-After, so that the other
// discussions of that channel wait too instead of provoking more 429s (Slack may disable an
// app that ignores them). Other channels are not affected.

// limiters holds one limiter per channel id. Channels come from the configuration and route
// targets, so the map stays small.
type limiters struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[string]*channelLimiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{rate: rate.Limit(perSecond), burst: burst, m: map[string]*channelLimiter{}}
}

func (l *limiters) channel(id string) *channelLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[id]
	if !ok {
		c = &channelLimiter{lim: rate.NewLimiter(l.rate, l.burst)}
		l.m[id] = c
	}
	return c
}

// channelLimiter is a token bucket that can also be paused until a time.
type channelLimiter struct {
	lim *rate.Limiter

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

// wait blocks until the channel may take one more message, or ctx ends. Every turn of the
// loop either returns or sleeps until a later time, so it ends with the pause or with ctx.
func (c *channelLimiter) wait(ctx context.Context) error {
	for {
		now := time.Now()
		d, r := c.reserve(now)
		if d <= 0 {
			return nil
		}
		if deadline, ok := ctx.Deadline(); ok && now.Add(d).After(deadline) {
			if r != nil {
				r.CancelAt(now)
			}
			return fmt.Errorf("waiting %s for the channel's rate limit would pass the deadline: %w", d.Round(time.Millisecond), context.DeadlineExceeded)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			if r != nil {
				r.Cancel()
			}
			return ctx.Err()
		case <-t.C:
		}
		if r != nil {
			return nil
		}
	}
}
