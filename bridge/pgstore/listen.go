package pgstore

import (
	"context"
	"time"
)

// ListenQueues calls fn (from one goroutine) whenever a replica replayed dead letters (Replay
// notifies in its transaction; this replica's own replays included), until ctx ends. It
// reconnects by itself, with backoff, and calls fn after each reconnect, since replays in
// between were not heard. It returns nil when ctx ends.
func (s *Store) ListenQueues(ctx context.Context, fn func()) error {
	backoff := 100 * time.Millisecond
	connected := false
	for {
		heard, err := s.listenOnce(ctx, fn, connected)
		if ctx.Err() != nil {
			return nil
		}
		connected = connected || heard
		if heard {
			backoff = 100 * time.Millisecond
		}
		s.log.Warn("pgstore: listening for replays failed; reconnecting", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenOnce listens on one connection until it fails; listening is true once LISTEN took.
func (s *Store) listenOnce(ctx context.Context, fn func(), again bool) (listening bool, err error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, s.fail("listen", err)
	}
	conn := c.Hijack() // a listening connection must not go back to the pool
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, s.fail("listen", err)
	}
	if again {
		fn()
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, s.fail("listen", err)
		}
		fn()
	}
}
