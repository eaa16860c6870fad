package bridge

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// HaltedError marks a failure of the whole sink rather than of one delivery: its credentials
// were refused (a revoked or wrong Slack token). Dead-lettering each delivery would only
// turn the backlog into dead letters one by one; instead the dispatcher halts the sink —
// every queue of it waits, the deliveries stay pending, attempts are not counted — and tries
// one delivery again after a long pause. A reload that replaces the sink (a new token)
// resumes it at once.
type HaltedError struct{ Err error }

func (e *HaltedError) Error() string { return e.Err.Error() }
func (e *HaltedError) Unwrap() error { return e.Err }

// Halt wraps err as a sink-wide failure. Halt(nil) is nil.
func Halt(err error) error {
	if err == nil {
		return nil
	}
	return &HaltedError{Err: err}
}

// IsHalted reports whether err, or an error it wraps, halts the whole sink.
func IsHalted(err error) bool {
	var h *HaltedError
	return errors.As(err, &h)
}

// Verifier is a Sink that can check its credentials before any delivery (Slack: auth.test).
// Verify returns nil when they work, a HaltedError when they are refused, and any other
// error when it could not tell (the network); the dispatcher then asks again, backing off.
type Verifier interface {
	Verify(ctx context.Context) error
}

// haltRecheck is how long a halted sink waits before one delivery tries again: long enough
// not to hammer a service that refused us, short enough to notice a token fixed at the
// service's end (a reactivated account) without a reload.
const haltRecheck = 5 * time.Minute

// Halted returns, by sink name, why each halted sink is halted.
func (d *Dispatcher) Halted() map[string]string {
	d.mu.RLock()
	runners := slices.Collect(maps.Values(d.sinks))
	d.mu.RUnlock()
	out := map[string]string{}
	for _, r := range runners {
		r.mu.Lock()
		if r.halted != "" {
			out[r.spec.Sink.Name()] = r.halted
		}
		r.mu.Unlock()
	}
	return out
}

// halt pauses every queue of the sink until until.
func (r *sinkRunner) halt(err error, until time.Time) {
	r.mu.Lock()
	first := r.halted == ""
	r.halted, r.haltedUntil = err.Error(), until
	r.isHalted.Store(true)
	r.mu.Unlock()
	if first {
		r.log.Error("sink halted: its credentials were refused; its deliveries are kept and wait (none is dead-lettered). Fix the credentials and reload",
			"error", err, "retry_in", until.Sub(r.d.now()).Round(time.Second))
	}
}

// haltWait is how long a queue of a halted sink must still wait; 0 when it may deliver.
func (r *sinkRunner) haltWait() time.Duration {
	if !r.isHalted.Load() {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.halted == "" {
		return 0
	}
	return max(r.haltedUntil.Sub(r.d.now()), 0)
}

// unhalt ends a halt after a successful delivery or verification.
func (r *sinkRunner) unhalt() {
	if !r.isHalted.Load() {
		return
	}
	r.mu.Lock()
	was := r.halted != ""
	r.halted = ""
	r.isHalted.Store(false)
	r.mu.Unlock()
	if was {
		r.log.Info("sink resumed: its credentials work again")
	}
}

// verify checks the sink's credentials once at start, asking again with backoff while the
// answer is not a clear yes or no. It runs beside the workers, which deliver meanwhile.
func (r *sinkRunner) verify(ctx context.Context, v Verifier) {
	for attempt := 1; ; attempt++ {
		err := v.Verify(ctx)
		switch {
		case err == nil:
			r.unhalt()
			return
		case IsHalted(err):
			r.halt(err, r.d.now().Add(haltRecheck))
			return
		case ctx.Err() != nil:
			return
		}
		wait := r.spec.Retry.wait(attempt)
		level := slog.LevelDebug
		if attempt == 1 { // one line when it starts, not one per retry
			level = slog.LevelWarn
		}
		r.log.Log(ctx, level, "could not verify the sink's credentials; asking again", "error", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
