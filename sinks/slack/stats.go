package slack

import (
	"sync/atomic"
	"time"
)

// Stats are the sink's flow-control counters since New, for metrics: how the per-channel
// pacing and Slack's 429s slow deliveries down.
type Stats struct {
	PacingWaits uint64        // writes that slept for their turn in the channel's rate limit
	PacingWait  time.Duration // the time those writes slept
	Busy        uint64        // writes handed back for later: their turn was more than an interval away
	Paused      uint64        // writes handed back for later: their channel was paused after a 429
	RateLimited uint64        // answers from Slack that asked to slow down (HTTP 429, "ratelimited")
}

// stats are the counters behind Stats; the limiters and the sink add to them.
type stats struct {
	pacingWaits, pacingWaitNanos, busy, paused, rateLimited atomic.Uint64
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{
		PacingWaits: s.stats.pacingWaits.Load(),
		PacingWait:  time.Duration(s.stats.pacingWaitNanos.Load()),
		Busy:        s.stats.busy.Load(),
		Paused:      s.stats.paused.Load(),
		RateLimited: s.stats.rateLimited.Load(),
	}
}
