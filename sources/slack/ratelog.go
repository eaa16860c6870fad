package slack

import (
	"log/slog"
	"sync"
	"time"
)

// rateLog logs bad or unbridged input at most once per interval per kind, with how many
// were seen since the previous line: a flood of garbage costs a counter, not the log.
type rateLog struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	seen map[string]int
}

func newRateLog(log *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{log: log, every: every, last: map[string]time.Time{}, seen: map[string]int{}}
}

// report counts one occurrence of kind on src (when not nil) and logs it if kind has been
// quiet for the interval.
func (r *rateLog) report(src *Source, kind, msg string, err error, attrs ...any) {
	if src != nil {
		src.count(kind)
	}
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
	attrs = append(attrs, "outcome", kind, "count", n)
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	r.log.Warn(msg+" (logged at most once a minute)", attrs...)
}
