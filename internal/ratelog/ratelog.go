// Package ratelog decides when a repeating condition (bad input, a known problem) is logged:
// at most once per interval per key, with how many times it happened since the previous
// line, so that a flood of garbage costs a counter, not the log.
package ratelog

import (
	"sync"
	"time"
)

// Limiter is safe for concurrent use.
type Limiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	seen map[string]int // occurrences not yet reported
}

// New returns a limiter that allows one line per key per every (0: every occurrence).
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, now: time.Now, last: map[string]time.Time{}, seen: map[string]int{}}
}

// Allow counts one occurrence of key. It says whether to log it now and, if so, how many
// occurrences the line stands for (this one and those not logged since the previous line).
func (l *Limiter) Allow(key string) (n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[key]++
	now := l.now()
	if last, seen := l.last[key]; seen && now.Sub(last) < l.every {
		return 0, false
	}
	n = l.seen[key]
	l.seen[key] = 0
	l.last[key] = now
	return n, true
}
