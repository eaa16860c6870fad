package webhook

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// StatusError is a response that was not a success. The sink wraps it as the status class
// asks (bridge.Permanent, bridge.RetryAfter, or plain retryable); errors.As finds it for the
// status code. Every text field is redacted.
type StatusError struct {
	StatusCode int
	URL        string // the endpoint as it may be shown: scheme://host/path
	Location   string // for a redirect: where it pointed (not followed), shown the same way
	Body       string // the start of the response body, for one log line
	// Response is the first KiB of the response body (redacted), for the attempt history.
	Response string
}

// AttemptStatus is the HTTP status code, for the attempt history (bridge.AttemptDetail).
func (e *StatusError) AttemptStatus() string { return strconv.Itoa(e.StatusCode) }

// AttemptResponse is the start of the response body (bridge.AttemptDetail).
func (e *StatusError) AttemptResponse() string { return e.Response }

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhook %s: HTTP %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Location != "" {
		fmt.Fprintf(&b, " to %s (redirects are not followed)", e.Location)
	} else if e.StatusCode >= 300 && e.StatusCode < 400 {
		b.WriteString(" (redirects are not followed)")
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %s", e.Body)
	}
	return b.String()
}

// Response bodies are read up to maxBody (enough for any error page, and it lets the
// connection be reused); errors keep the first bodyExcerpt bytes.
const (
	maxBody     = 64 << 10
	bodyExcerpt = 200
)

// excerpt makes the start of a response body fit for one log line.
func excerpt(body []byte) string {
	if len(body) > bodyExcerpt {
		cut := bodyExcerpt
		// Do not cut a character in half.
		for cut > bodyExcerpt-utf8.UTFMax && !utf8.RuneStart(body[cut]) {
			cut--
		}
		body = append(body[:cut:cut], "…"...)
	}
	s := strings.ToValidUTF8(string(body), "\uFFFD")
	return strings.Join(strings.Fields(s), " ")
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
// A date in the past means now.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// classify turns a response into the error kind the dispatcher acts on.
func (s *Sink) classify(a *answer) error {
	code, body := a.code, a.body
	if code >= 200 && code < 300 {
		if s.gone.CompareAndSwap(true, false) {
			s.log.Info("webhook endpoint accepts deliveries again", "url", s.c.endpoint.display)
		}
		return nil
	}
	// Redact before cutting: a secret straddling the cut would otherwise leave its start.
	redacted := config.Redact(string(body), s.hidden...)
	se := &StatusError{StatusCode: code, URL: s.c.endpoint.display, Body: excerpt([]byte(redacted)),
		Response: strings.ToValidUTF8(truncateBytes(redacted, bridge.MaxAttemptResponse), "\uFFFD")}
	switch {
	case code >= 300 && code < 400:
		if loc, err := s.c.endpoint.parsed.Parse(a.location); a.location != "" && err == nil {
			se.Location = config.Redact(displayURL(loc, s.c.endpoint.hideAll), s.hidden...)
		}
		return se
	case code == http.StatusGone:
		if s.gone.CompareAndSwap(false, true) {
			s.log.Warn("webhook endpoint is gone (HTTP 410); the target is disabled and its deliveries are dead-lettered "+
				"until `kdbridge dlq replay` re-enables it", "url", s.c.endpoint.display)
		}
		return bridge.Gone(se)
	case code == http.StatusTooManyRequests || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		if d, ok := retryAfter(a.retryAfter, time.Now()); ok {
			return bridge.RetryAfter(se, d)
		}
		return se
	case code == http.StatusRequestTimeout:
		// The receiver gave up waiting for our request: a transient condition on its side.
		return se
	case code >= 400 && code < 500:
		return bridge.Permanent(se)
	default:
		return se
	}
}

// truncateBytes cuts s to at most n bytes without splitting a character.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
