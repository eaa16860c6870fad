package kinetic

import (
	"log/slog"
	"sync"
	"time"
)

// rateLog logs a repeating condition at most once per interval per key, with the number of
// occurrences since the previous line, and counts every occurrence in Status.BadInput.
type rateLog struct {
	log   *slog.Logger
	every time.Duration
	st    *status

	mu   sync.Mutex
	last map[string]time.Time
	seen map[string]int // occurrences not yet reported
}

func newRateLog(log *slog.Logger, every time.Duration, st *status) *rateLog {
	return &rateLog{log: log, every: every, st: st, last: map[string]time.Time{}, seen: map[string]int{}}
}

// badInput counts one bad frame or payload of kind and logs it if the kind has been quiet.
func (r *rateLog) badInput(kind string, err error, attrs ...any) {
	r.st.mu.Lock()
	r.st.badInput[kind]++
	r.st.mu.Unlock()

	r.mu.Lock()
	r.seen[kind]++
	now := time.Now()
	if now.Sub(r.last[kind]) < r.every {
		r.mu.Unlock()
		return
	}
	n := r.seen[kind]
	r.seen[kind] = 0
	r.last[kind] = now
	r.mu.Unlock()
	args := append([]any{"kind", kind, "count", n, "error", err}, attrs...)
	r.log.Warn("kinetic: ignoring bad input", args...)
}

// warn logs a repeating problem at most once per interval per key (not counted as bad input).
func (r *rateLog) warn(key, msg string, attrs ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last[key]) < r.every {
		r.mu.Unlock()
		return
	}
	r.last[key] = now
	r.mu.Unlock()
	r.log.Warn(msg, attrs...)
}
