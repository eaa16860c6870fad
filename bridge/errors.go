package bridge

import (
	"errors"
	"fmt"
	"time"
)

// PermanentError marks a failure that retrying cannot fix: bad credentials, a channel that
// does not exist, a 4xx from a webhook. The delivery is dead-lettered at once.
type PermanentError struct{ Err error }

// Error is the underlying error's text: the dispatcher says "permanent failure" itself.
func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryAfterError marks a failure that may succeed after the given wait, as a 429 with
// Retry-After says. Only the queue that failed waits.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// GoneError marks a target that no longer exists (a webhook answering 410 Gone): the
// delivery is dead-lettered and the target is disabled until an operator replays its dead
// letters. It is also a PermanentError.
type GoneError struct{ Err error }

func (e *GoneError) Error() string { return e.Err.Error() }
func (e *GoneError) Unwrap() error { return &PermanentError{Err: e.Err} }

// Gone wraps err as a gone-target failure. Gone(nil) is nil.
func Gone(err error) error {
	if err == nil {
		return nil
	}
	return &GoneError{Err: err}
}

// IsGone reports whether err, or an error it wraps, says the target is gone.
func IsGone(err error) bool {
	var g *GoneError
	return errors.As(err, &g)
}

// Permanent wraps err as a permanent failure. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// RetryAfter wraps err as a failure to retry after d. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, After: d}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterOf reports the wait asked for by err, if it or an error it wraps asks for one.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}
