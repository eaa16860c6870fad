package kinetic

import (
	"log/slog"
	"time"

	"github.com/kdbridge/kdbridge/internal/ratelog"
)

// rateLog logs a repeating condition at most once per interval per key, with the number of
// occurrences since the previous line, and counts every bad input in Status.BadInput.
type rateLog struct {
	log   *slog.Logger
	st    *status
	limit *ratelog.Limiter
}

func newRateLog(log *slog.Logger, every time.Duration, st *status) *rateLog {
	return &rateLog{log: log, st: st, limit: ratelog.New(every)}
}

// badInput counts one bad frame or payload of kind and logs it if the kind has been quiet.
func (r *rateLog) badInput(kind string, err error, attrs ...any) {
	r.st.mu.Lock()
	r.st.badInput[kind]++
	r.st.mu.Unlock()
	n, ok := r.limit.Allow("bad:" + kind)
	if !ok {
		return
	}
	args := append([]any{"kind", kind, "count", n, "error", err}, attrs...)
	r.log.Warn("kinetic: ignoring bad input", args...)
}

// warn logs a repeating problem at most once per interval per key (not counted as bad input).
func (r *rateLog) warn(key, msg string, attrs ...any) {
	if _, ok := r.limit.Allow("warn:" + key); ok {
		r.log.Warn(msg, attrs...)
	}
}
