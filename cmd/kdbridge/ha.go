package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge/pgstore"
)

// ha is what a replica on PostgreSQL knows about leadership and the database, for /readyz.
type ha struct {
	replica string

	mu       sync.Mutex
	stateErr string // why the state database is not usable now; "" when it is
	epoch    int64  // this replica's leadership epoch; 0 while it follows
	holder   string // the leader last read from the database
	holderEp int64
}

func (h *ha) setStateErr(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stateErr = msg
}

func (h *ha) setLeading(epoch int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.epoch = epoch
}

// status is /readyz's view: a problem with the state database (not ready), and a line
// saying who leads.
func (h *ha) status() (problem, leadership string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stateErr != "" {
		problem = "state: " + h.stateErr
	}
	switch {
	case h.epoch != 0:
		leadership = fmt.Sprintf("this replica (%s) leads, epoch %d", h.replica, h.epoch)
	case h.holder != "":
		leadership = fmt.Sprintf("leader: %s epoch %d (this replica, %s, follows)", h.holder, h.holderEp, h.replica)
	default:
		leadership = fmt.Sprintf("leader: none at the moment (this replica, %s, campaigns)", h.replica)
	}
	return problem, leadership
}

// stateRetry is how often start-up tries the database again, at most.
const stateRetry = 5 * time.Second

// openPostgres opens the state database, retrying until it works or ctx ends: a replica
// started while PostgreSQL is down waits for it, with the reason on /readyz.
func (d *daemon) openPostgres(ctx context.Context, st stateConfig) (*pgstore.Store, error) {
	backoff := 250 * time.Millisecond
	last := ""
	for {
		s, err := pgstore.Open(ctx, st.DSN.Reveal(), pgstore.Options{Logger: d.log, Retention: st.Retention.D()})
		if err == nil {
			d.ha.setStateErr("")
			if last != "" {
				d.log.Info("state database reachable", "dsn", pgstore.RedactDSN(st.DSN.Reveal()))
			}
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := "postgres unreachable (" + pgstore.ScrubDSN(err.Error(), st.DSN.Reveal()) + ")"
		d.ha.setStateErr(msg)
		if msg != last {
			d.log.Error("state database not usable; retrying", "err", msg)
			last = msg
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, stateRetry)
	}
}

// watchState reads the leader lease every second, which tells /readyz who leads and whether
// the database answers, until ctx ends.
func (d *daemon) watchState(ctx context.Context, dsn string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	wasDown := false
	for {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		holder, epoch, _, err := d.pg.Leader(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.ha.mu.Lock()
		if err != nil {
			d.ha.stateErr = "postgres unreachable (" + pgstore.ScrubDSN(err.Error(), dsn) + ")"
		} else {
			d.ha.stateErr = ""
			d.ha.holder, d.ha.holderEp = holder, epoch
		}
		d.ha.mu.Unlock()
		switch {
		case err != nil && !wasDown:
			d.log.Error("state database unreachable: sources pause, deliveries retry", "err", pgstore.ScrubDSN(err.Error(), dsn))
		case err == nil && wasDown:
			d.log.Info("state database reachable again")
		}
		wasDown = err != nil
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// leads reports whether this replica runs the sources and deliveries now (always, with
// bbolt).
func (d *daemon) leads() bool { return d.dispatcher() != nil }
