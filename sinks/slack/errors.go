package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/kdbridge/kdbridge/bridge"
)

// permanentCodes are Slack `error` codes that retrying cannot fix: the token, the channel or
// the message is wrong, and only a change of configuration (or nothing) helps. Comparing them
// is comparing protocol values: slack-go hands the code over as a string.
var permanentCodes = map[string]bool{
	"channel_not_found":                   true,
	"not_in_channel":                      true,
	"missing_scope":                       true,
	"not_allowed_token_type":              true,
	"no_permission":                       true,
	"team_access_not_granted":             true,
	"ekm_access_denied":                   true,
	"is_archived":                         true,
	"msg_too_long":                        true,
	"no_text":                             true,
	"message_not_found":                   true,
	"cant_update_message":                 true,
	"cant_delete_message":                 true,
	"edit_window_closed":                  true,
	"compliance_exports_prevent_deletion": true,
	"restricted_action":                   true,
}

// haltCodes are Slack `error` codes that refuse the token itself: no delivery of the sink can
// succeed until the token changes, so the whole sink halts (bridge.Halt) instead of
// dead-lettering its backlog one delivery at a time.
var haltCodes = map[string]bool{
	"invalid_auth":     true,
	"not_authed":       true,
	"account_inactive": true,
	"token_revoked":    true,
	"token_expired":    true,
}

// defaultRetryAfter is the pause after a 429 that names none (slack-go's own default).
const defaultRetryAfter = time.Minute

// minRetryAfter keeps a "Retry-After: 0" from turning into a tight loop.
const minRetryAfter = time.Second

// apiError is a failed Web API call: which method, on which channel, and why (the error
// slack-go returned, kept for errors.As).
type apiError struct {
	Method  string
	Channel string
	Err     error
}

func (e *apiError) Error() string {
	if e.Channel != "" {
		return fmt.Sprintf("slack %s %s: %v", e.Method, e.Channel, e.Err)
	}
	return fmt.Sprintf("slack %s: %v", e.Method, e.Err)
}

func (e *apiError) Unwrap() error { return e.Err }

// AttemptStatus is the Slack error code, or the HTTP status when Slack answered with one
// (bridge.AttemptDetail, for the attempt history).
func (e *apiError) AttemptStatus() string {
	if code := errorCode(e.Err); code != "" {
		return code
	}
	var sc slackgo.StatusCodeError
	if errors.As(e.Err, &sc) {
		return strconv.Itoa(sc.Code)
	}
	var rl *slackgo.RateLimitedError
	if errors.As(e.Err, &rl) {
		return "429"
	}
	return ""
}

// AttemptResponse is empty: slack-go keeps no body beyond the error code.
func (e *apiError) AttemptResponse() string { return "" }

// errorCode is the Slack `error` code of err ("channel_not_found"), or "".
func errorCode(err error) string {
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// classify turns what a call to method returned into the error kind the dispatcher acts on:
// a 429 asks for a pause (bridge.RetryAfter); the codes above and 4xx statuses are permanent;
// 5xx, network errors, timeouts and unknown codes are retried with backoff. ctx is the
// delivery's context, to tell our per-call timeout from the caller giving up.
func (s *Sink) classify(ctx context.Context, method, channel string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: not Slack's failure
	}
	wrapped := &apiError{Method: method, Channel: channel, Err: err}
	if errors.Is(err, context.DeadlineExceeded) {
		wrapped.Err = fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, err)
		return wrapped
	}
	var rl *slackgo.RateLimitedError
	if errors.As(err, &rl) {
		return bridge.RetryAfter(wrapped, max(rl.RetryAfter, minRetryAfter))
	}
	var sc slackgo.StatusCodeError
	if errors.As(err, &sc) {
		switch {
		case sc.Code == http.StatusTooManyRequests: // without a usable Retry-After
			return bridge.RetryAfter(wrapped, defaultRetryAfter)
		case sc.Code == http.StatusRequestTimeout || sc.Code >= 500:
			return wrapped
		case sc.Code >= 400:
			// Slack answers API errors with 200; a 4xx comes from a wrong api_url or a proxy
			// refusing us, neither of which a retry fixes.
			return bridge.Permanent(wrapped)
		default:
			return wrapped
		}
	}
	if code := errorCode(err); code != "" {
		switch {
		case haltCodes[code]:
			return bridge.Halt(wrapped)
		case permanentCodes[code]:
			return bridge.Permanent(wrapped)
		case code == "ratelimited":
			return bridge.RetryAfter(wrapped, defaultRetryAfter)
		}
		if _, seen := s.unknownCodes.LoadOrStore(code, true); !seen {
			s.log.Warn("unexpected Slack error; deliveries that meet it are retried",
				"method", method, "code", s.redact(code))
		}
		return wrapped
	}
	return wrapped
}

// redactedError hides the token in the text of an error while keeping the error's chain for
// errors.As and errors.Is. slack-go sends the token in the form body and does not quote it,
// but an answer from a proxy or a fake might.
type redactedError struct {
	err    error
	redact func(string) string // a func, so that even %#v of the error does not show the token
}

func (e *redactedError) Error() string { return e.redact(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }
