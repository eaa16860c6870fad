package bridge

import (
	"context"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Supervise runs a source until ctx ends, restarting it with backoff after a failure that a
// restart may cure. A permanent failure (bad configuration) stops it for good and is logged;
// the rest of the daemon keeps running. It returns the permanent error, or nil.
func Supervise(ctx context.Context, src Source, emit Emitter, log *slog.Logger) error {
	log = log.With("source", src.Name())
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	b.MaxInterval = 5 * time.Minute
	for {
		started := time.Now()
		err := src.Run(ctx, emit)
		if ctx.Err() != nil {
			return nil
		}
		if IsPermanent(err) {
			log.Error("source stopped; fix the configuration and restart or reload", "err", err)
			return err
		}
		if time.Since(started) > 10*time.Minute {
			b.Reset() // it ran well for a while: this is a new failure, not the same one
		}
		wait := b.NextBackOff()
		log.Warn("source failed; restarting", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
