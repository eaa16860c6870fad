package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease defaults: a leader renews every DefaultTTL/3 and gives up its work DefaultTTL/6
// before the lease could expire, so that another replica takes over within DefaultTTL plus
// one campaign interval (about 8 s) of the leader's death.
const DefaultTTL = 6 * time.Second

// leaseName is the row of kdbridge_lease the replicas compete for.
const leaseName = "leader"

// fence is what the store's writes check: this replica's name and the epoch of its lease,
// 0 while it does not lead.
type fence struct {
	replica string
	epoch   atomic.Int64
}

// queue puts the fence at the head of batch b: the batch (one implicit transaction) fails
// with SQLSTATE fencedCode unless this replica holds the lease with its epoch, and holds
// the lease row locked FOR KEY SHARE, so that a takeover (an UPDATE of the row's epoch, a
// key column) waits for it, while this replica's own renewal (expires_at only) does not
// (schema version 2).
func (f *fence) queue(b *pgx.Batch) error {
	epoch := f.epoch.Load()
	if epoch == 0 {
		return ErrFenced
	}
	b.Queue(`SELECT kdbridge_fence($1, $2)`, f.replica, epoch)
	return nil
}

// fencedCode is the SQLSTATE of kdbridge_fence's refusal.
const fencedCode = "KB001"

// Elector campaigns for the leader lease on behalf of one replica.
type Elector struct {
	s       *Store
	f       *fence
	replica string
	ttl     time.Duration
	renew   time.Duration // renewal and campaign interval
	margin  time.Duration // given up before the lease could expire, for clock rate drift
}

// Elector returns an elector for replica (a name unique among the replicas, e.g. the host
// name) with lease ttl (0: DefaultTTL). Creating it makes it the store's fence: from then on
// the store's writes of delivery state and values (Append, Done, Attempted, DeadLetter,
// Put, PutLater, LogAttempts) fail with ErrFenced unless this replica leads. Create one per
// store.
func (s *Store) Elector(replica string, ttl time.Duration) *Elector {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	f := &fence{replica: replica}
	s.fence.Store(f)
	return &Elector{s: s, f: f, replica: replica, ttl: ttl, renew: ttl / 3, margin: ttl / 6}
}

// Run campaigns until ctx ends. While this replica leads, lead runs with a context that is
// cancelled when leadership is lost or ctx ends; Run waits for lead to return, then
// campaigns again (context.Cause of lead's context says why it ended). It logs when
// leadership is won, lost or released and why. It returns nil when ctx ends; a leader that
// stops because ctx ended or lead returned releases the lease, so that another replica takes
// over at its next campaign (within ttl/3) rather than after ttl.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, epoch int64)) error {
	log := e.s.log.With("replica", e.replica)
	var lastErr string
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wait.C:
		}
		sent := time.Now()
		epoch, err := e.acquire(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if msg := err.Error(); msg != lastErr {
				log.Warn("pgstore: cannot campaign for leadership", "err", err)
				lastErr = msg
			}
		case err == nil && epoch > 0:
			lastErr = ""
			e.lead(ctx, log, epoch, sent, lead)
		}
		wait.Reset(e.renew)
	}
}

// acquire takes the lease if it is free (expired, or held by this replica's name before a
// restart) and returns its new epoch; 0 when another replica holds it.
func (e *Elector) acquire(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, e.renew)
	defer cancel()
	var epoch int64
	err := e.s.leasePool.QueryRow(ctx, `
INSERT INTO kdbridge_lease AS l (name, holder, epoch, expires_at)
VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
RETURNING epoch`, leaseName, e.replica, e.ttl.Milliseconds()).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, e.s.fail("acquire lease", err)
	}
	return epoch, nil
}

// renewOnce extends the lease; ok is false when this replica no longer holds it.
func (e *Elector) renewOnce(ctx context.Context, epoch int64) (ok bool, err error) {
	tag, err := e.s.leasePool.Exec(ctx, `UPDATE kdbridge_lease SET expires_at = now() + $4 * interval '1 millisecond'
WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()`, leaseName, e.replica, epoch, e.ttl.Milliseconds())
	if err != nil {
		return false, e.s.fail("renew lease", err)
	}
	return tag.RowsAffected() == 1, nil
}

type renewal struct {
	sent time.Time
	ok   bool
	err  error
}

// lead runs lead while the lease with epoch is held, renewing it; sent is when the request
// that took the lease was sent.
func (e *Elector) lead(ctx context.Context, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}, epoch int64, sent time.Time, lead func(context.Context, int64)) {
	e.f.epoch.Store(epoch)
	log.Info("pgstore: leadership won", "epoch", epoch)
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(lctx, epoch)
	}()
	// The lease expires on the server ttl after it received the last renewal, which is
	// after sent; giving up margin earlier covers a local clock that runs slow.
	deadline := sent.Add(e.ttl - e.margin)
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	tick := time.NewTicker(e.renew)
	defer tick.Stop()
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	results := make(chan renewal, 1)
	renewing := false
	var why string
	var lastErr error
	release := false
loop:
	for {
		select {
		case <-done:
			why, release = "the leader's work returned", true
			break loop
		case <-ctx.Done():
			why, release = "stopping", true
			break loop
		case <-expire.C:
			why = "the lease could not be renewed before it could expire"
			if lastErr != nil {
				why += ": " + lastErr.Error()
			}
			break loop
		case <-tick.C:
			if renewing {
				continue
			}
			renewing = true
			go func(sent time.Time, d time.Time) {
				c, cancel := context.WithDeadline(rctx, d)
				defer cancel()
				ok, err := e.renewOnce(c, epoch)
				results <- renewal{sent: sent, ok: ok, err: err}
			}(time.Now(), deadline)
		case r := <-results:
			renewing = false
			switch {
			case r.err != nil:
				lastErr = r.err
				log.Warn("pgstore: could not renew the leader lease", "epoch", epoch, "err", r.err)
			case !r.ok:
				why = "the lease was taken over or expired"
				break loop
			default:
				lastErr = nil
				deadline = r.sent.Add(e.ttl - e.margin)
				expire.Reset(time.Until(deadline))
			}
		}
	}
	// From here on this replica's writes fail at once, before the server would refuse them.
	e.f.epoch.Store(0)
	cancel(fmt.Errorf("leadership lost: %s", why))
	rcancel()
	if renewing {
		<-results
	}
	<-done
	if release {
		// Hand over at once rather than after the lease's ttl.
		c, cancel := context.WithTimeout(context.Background(), e.renew)
		_, err := e.s.leasePool.Exec(c, `UPDATE kdbridge_lease SET expires_at = now()
WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()`, leaseName, e.replica, epoch)
		cancel()
		if err != nil {
			log.Warn("pgstore: could not release the leader lease; it expires by itself", "err", e.s.fail("release lease", err))
		}
		log.Info("pgstore: leadership released", "epoch", epoch, "why", why)
		return
	}
	log.Warn("pgstore: leadership lost", "epoch", epoch, "why", why)
}

// Leader says who holds the lease now: holder is "" when nobody does (never taken, or
// expired); epoch and expires are those of the last holder.
func (s *Store) Leader(ctx context.Context) (holder string, epoch int64, expires time.Time, err error) {
	err = s.leasePool.QueryRow(ctx, `SELECT CASE WHEN expires_at > now() THEN holder ELSE '' END, epoch, expires_at
FROM kdbridge_lease WHERE name = $1`, leaseName).Scan(&holder, &epoch, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, time.Time{}, nil
	}
	if err != nil {
		return "", 0, time.Time{}, s.fail("leader", err)
	}
	return holder, epoch, expires, nil
}
