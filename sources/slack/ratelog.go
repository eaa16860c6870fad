package slack

import (
	"log/slog"
	"time"

	"github.com/kdbridge/kdbridge/internal/ratelog"
)

// rateLog logs bad or unbridged input at most once per interval per kind, with how many
// were seen since the previous line: a flood of garbage costs a counter, not the log.
type rateLog struct {
	log   *slog.Logger
	limit *ratelog.Limiter
}

func newRateLog(log *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{log: log, limit: ratelog.New(every)}
}

// report counts one occurrence of kind on src (when not nil) and logs it if kind has been
// quiet for the interval.
func (r *rateLog) report(src *Source, kind, msg string, err error, attrs ...any) {
	if src != nil {
		src.count(kind)
	}
	n, ok := r.limit.Allow(kind)
	if !ok {
		return
	}
	attrs = append(attrs, "outcome", kind, "count", n)
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	r.log.Warn(msg+" (logged at most once a minute)", attrs...)
}
