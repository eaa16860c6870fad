package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kdbridge/kdbridge/bridge"
)

// seqLock is the key of the advisory lock that Append and Replay hold while they take
// sequence numbers and insert deliveries, so that a queue's order (by seq) is the order of
// the commits, as in bbolt, whichever replica writes.
const seqLock = 0x6b6462_736571 // "kdb" "seq"

// write runs fn in a transaction (for the operator's calls, which are not fenced).
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// newBatch starts a batch of statements that run as one implicit transaction in one round
// trip (see send); when fenced and the store has an elector, the fence comes first.
func (s *Store) newBatch(fenced bool) (*pgx.Batch, error) {
	b := &pgx.Batch{}
	if f := s.fence.Load(); fenced && f != nil {
		if err := f.queue(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// send runs b: its statements are pipelined with one Sync, so PostgreSQL runs them in one
// implicit transaction, committed when all succeed and rolled back at the first error.
func (s *Store) send(ctx context.Context, b *pgx.Batch) error {
	err := s.pool.SendBatch(ctx, b).Close()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == fencedCode {
		return fmt.Errorf("%w (%s)", ErrFenced, pe.Message)
	}
	return err
}

// read runs fn in a read-only transaction: one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, fn)
}

// Append stores each new record's event and one pending delivery per target, all in one
// transaction, and returns the records it stored, in order. A record whose event ID is
// already known (until Prune forgets it) is skipped, also when the ID repeats within recs.
// A target repeated within a record is kept once.
//
// Concurrent calls share a transaction (the appender groups them): every append holds the
// sequence lock until its commit is durable, so one transaction each would allow no more
// appends per second than commits per second.
func (s *Store) Append(ctx context.Context, recs []bridge.Record) ([]bridge.Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	req := &appendReq{ctx: ctx, done: make(chan error, 1)}
	seen := make(map[string]struct{}, len(recs))
	for _, r := range recs {
		if r.Event.ID == "" {
			return nil, errors.New("pgstore: append: event without an id")
		}
		if _, dup := seen[r.Event.ID]; dup {
			continue
		}
		seen[r.Event.ID] = struct{}{}
		r.Targets = bridge.UniqueTargets(r.Targets)
		var body []byte
		if len(r.Targets) > 0 { // with no target, only the ID is kept, for dedupe
			b, err := encodeEvent(&r.Event)
			if err != nil {
				return nil, fmt.Errorf("pgstore: append: encode event %s: %w", r.Event.ID, err)
			}
			body = b
		}
		targets := make([][]byte, len(r.Targets))
		for i, t := range r.Targets {
			tj, err := json.Marshal(t)
			if err != nil {
				return nil, fmt.Errorf("pgstore: append: encode target: %w", err)
			}
			targets[i] = tj
		}
		req.recs = append(req.recs, r)
		req.bodies = append(req.bodies, body)
		req.targets = append(req.targets, targets)
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail("append", err)
	}
	select {
	case s.appends <- req:
	case <-s.quit:
		return nil, fmt.Errorf("pgstore: append: %w", ErrClosed)
	case <-ctx.Done():
		return nil, s.fail("append", ctx.Err())
	}
	select {
	case err := <-req.done:
		if err != nil {
			return nil, s.fail("append", err)
		}
	case <-ctx.Done():
		// The group may still commit it: a retry finds the events known and skips them.
		return nil, s.fail("append", ctx.Err())
	}
	out := make([]bridge.Record, 0, len(req.stored))
	for _, r := range req.recs {
		if req.stored[r.Event.ID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// appendReq is one Append call waiting for the appender: its records (unique IDs), their
// encoded bodies and targets, and, once done is sent, the IDs that were new.
type appendReq struct {
	ctx     context.Context
	recs    []bridge.Record
	bodies  [][]byte
	targets [][][]byte
	stored  map[string]bool
	done    chan error
}

// maxAppendGroup bounds the records of one grouped transaction.
const maxAppendGroup = 4096

// appender commits the Append calls waiting when it is free, together, until Close.
func (s *Store) appender() {
	defer s.wg.Done()
	for {
		var group []*appendReq
		select {
		case r := <-s.appends:
			group = append(group, r)
		case <-s.quit:
			return
		}
		n := len(group[0].recs)
	more:
		for n < maxAppendGroup {
			select {
			case r := <-s.appends:
				group = append(group, r)
				n += len(r.recs)
			default:
				break more
			}
		}
		s.appendGroup(group)
	}
}

// appendGroup stores the records of the calls in group in one transaction, in the calls'
// order, and answers each call. An ID repeated across calls belongs to the first.
func (s *Store) appendGroup(group []*appendReq) {
	var ids []string
	var bodies [][]byte
	var tids []string
	var tks [][]byte
	var discs []string
	var idxs []int32
	var targets [][]byte
	owner := map[string]*appendReq{}
	live := group[:0]
	for _, req := range group {
		if err := req.ctx.Err(); err != nil {
			req.done <- err // gave up before its turn: nothing of it is written
			continue
		}
		live = append(live, req)
		for i, r := range req.recs {
			if owner[r.Event.ID] != nil {
				continue
			}
			owner[r.Event.ID] = req
			ids, bodies = append(ids, r.Event.ID), append(bodies, req.bodies[i])
			for j, t := range r.Targets {
				tids, tks, discs = append(tids, r.Event.ID), append(tks, []byte(t.Key())), append(discs, r.Event.Discussion.ID)
				idxs, targets = append(idxs, int32(j)), append(targets, req.targets[i][j])
			}
		}
	}
	if len(live) == 0 {
		return
	}
	stored := make(map[string]bool, len(ids))
	b, err := s.newBatch(true)
	if err == nil {
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(seqLock))
		// One statement: the events that are new take the next sequence numbers in order,
		// and their deliveries are queued under them.
		b.Queue(`
WITH ins AS (
	INSERT INTO kdbridge_events (seq, id, stored_at, body)
	SELECT nextval('kdbridge_seq'), u.id, now(), u.body
	FROM (SELECT * FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS x(id, body, ord) ORDER BY ord) u
	ON CONFLICT (id) DO NOTHING
	RETURNING id, seq
), pend AS (
	INSERT INTO kdbridge_pending (target_key, discussion, seq, event_seq, idx, target)
	SELECT t.tk, t.d, ins.seq, ins.seq, t.i, t.t
	FROM ins JOIN unnest($3::text[], $4::bytea[], $5::text[], $6::int[], $7::bytea[]) AS t(id, tk, d, i, t) ON t.id = ins.id
)
SELECT id FROM ins`, ids, bodies, tids, tks, discs, idxs, targets).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				stored[id] = true
			}
			return rows.Err()
		})
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		err = s.send(ctx, b)
		cancel()
	}
	for _, req := range live {
		if err == nil {
			req.stored = make(map[string]bool, len(req.recs))
			for _, r := range req.recs {
				if stored[r.Event.ID] && owner[r.Event.ID] == req {
					req.stored[r.Event.ID] = true
				}
			}
		}
		req.done <- err
	}
}

// encodeEvent and decodeEvent are the event body's encoding in kdbridge_events.body: the
// JSON of bridge.Event, as bridge/store keeps it (schema 2). They are the one place to
// change should both stores move to another codec.
func encodeEvent(e *bridge.Event) ([]byte, error) { return json.Marshal(e) }

func decodeEvent(body []byte, e *bridge.Event) error { return json.Unmarshal(body, e) }

// fail wraps an error of operation op, keeping ErrFenced and ErrClosed recognisable.
func (s *Store) fail(op string, err error) error {
	return scrub(privilegeHint(fmt.Errorf("pgstore: %s: %w", op, err)), s.secrets)
}

// notDone leaves out the pending deliveries (alias p) whose Done is queued, given as the
// arrays $1, $2, $3 (see dones.all).
const notDone = `NOT EXISTS (SELECT 1 FROM unnest($1::bytea[], $2::text[], $3::bigint[]) AS u(tk, d, s)
	WHERE u.tk = p.target_key AND u.d = p.discussion AND u.s = p.seq)`

// Queues lists every (target, discussion) that has pending deliveries.
func (s *Store) Queues(ctx context.Context) ([]bridge.Queue, error) {
	tks, discs, seqs := s.dones.all()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (target_key, discussion) target, discussion
FROM kdbridge_pending p WHERE `+notDone+`
ORDER BY target_key, discussion, seq`, tks, discs, seqs)
	if err != nil {
		return nil, s.fail("queues", err)
	}
	var qs []bridge.Queue
	for rows.Next() {
		var tj []byte
		var q bridge.Queue
		if err := rows.Scan(&tj, &q.Discussion); err != nil {
			rows.Close()
			return nil, s.fail("queues", err)
		}
		if err := json.Unmarshal(tj, &q.Target); err != nil {
			rows.Close()
			return nil, s.fail("queues", fmt.Errorf("decode target: %w", err))
		}
		qs = append(qs, q)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("queues", err)
	}
	return qs, nil
}

// Backlog counts the pending deliveries of every queue and says when each queue's head was
// stored.
func (s *Store) Backlog(ctx context.Context) ([]bridge.QueueBacklog, error) {
	tks, discs, seqs := s.dones.all()
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT ON (p.target_key, p.discussion) p.target, p.discussion,
	count(*) OVER (PARTITION BY p.target_key, p.discussion), e.stored_at
FROM kdbridge_pending p JOIN kdbridge_events e ON e.seq = p.event_seq
WHERE `+notDone+`
ORDER BY p.target_key, p.discussion, p.seq`, tks, discs, seqs)
	if err != nil {
		return nil, s.fail("backlog", err)
	}
	var out []bridge.QueueBacklog
	for rows.Next() {
		var tj []byte
		var b bridge.QueueBacklog
		var n int64
		if err := rows.Scan(&tj, &b.Queue.Discussion, &n, &b.OldestAt); err != nil {
			rows.Close()
			return nil, s.fail("backlog", err)
		}
		if err := json.Unmarshal(tj, &b.Queue.Target); err != nil {
			rows.Close()
			return nil, s.fail("backlog", fmt.Errorf("decode target: %w", err))
		}
		b.Pending = int(n)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("backlog", err)
	}
	return out, nil
}

// Head returns the oldest pending delivery of q with its attempt history: one indexed read.
func (s *Store) Head(ctx context.Context, q bridge.Queue) (bridge.Pending, bool, error) {
	ps, err := s.peek(ctx, q, 1, nil, "head")
	if err != nil || len(ps) == 0 {
		return bridge.Pending{}, false, err
	}
	return ps[0], true, nil
}

// Peek appends to buf[:0] up to n of the oldest pending deliveries of q, oldest first, as
// Head would return them one by one (bridge.Peeker): one query for all of them, where Head
// costs a round trip to the database per delivery.
func (s *Store) Peek(ctx context.Context, q bridge.Queue, n int, buf []bridge.Pending) ([]bridge.Pending, error) {
	return s.peek(ctx, q, n, buf, "peek")
}

func (s *Store) peek(ctx context.Context, q bridge.Queue, n int, buf []bridge.Pending, op string) ([]bridge.Pending, error) {
	out := buf[:0]
	if n <= 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `
SELECT p.seq, p.attempts, p.first_try, p.last_error, p.next_try, e.body, e.stored_at
FROM kdbridge_pending p JOIN kdbridge_events e ON e.seq = p.event_seq
WHERE p.target_key = $1 AND p.discussion = $2 AND NOT (p.seq = ANY($3))
ORDER BY p.seq LIMIT $4`, []byte(q.Target.Key()), q.Discussion, s.dones.of(q), n)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p bridge.Pending
		var body []byte
		var firstTry, nextTry *time.Time
		var seq int64
		if err := rows.Scan(&seq, &p.Attempts, &firstTry, &p.LastError, &nextTry, &body, &p.StoredAt); err != nil {
			return nil, s.fail(op, err)
		}
		if err := decodeEvent(body, &p.Event); err != nil {
			return nil, s.fail(op, fmt.Errorf("decode event of delivery %d: %w", seq, err))
		}
		p.Seq, p.Queue, p.FirstTry, p.NextTry = uint64(seq), q, tv(firstTry), tv(nextTry)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// tv is the time *t, or zero.
func tv(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// tn is t for a nullable column: nil when zero.
func tn(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Attempted records p's attempt history in its pending entry. It is a no-op when p is no
// longer pending.
func (s *Store) Attempted(ctx context.Context, p bridge.Pending) error {
	if s.dones.queued(p) {
		return nil // delivered; its removal is in the next commit
	}
	b, err := s.newBatch(true)
	if err == nil {
		b.Queue(`UPDATE kdbridge_pending SET attempts = $4, first_try = $5, last_error = $6, next_try = $7
WHERE target_key = $1 AND discussion = $2 AND seq = $3`,
			[]byte(p.Queue.Target.Key()), p.Queue.Discussion, int64(p.Seq), p.Attempts, tn(p.FirstTry), p.LastError, tn(p.NextTry))
		err = s.send(ctx, b)
	}
	if err != nil {
		return s.fail("attempted", err)
	}
	return nil
}

// DeadLetter moves p from its queue to the dead letters with reason, keeping the event body
// for as long as the dead letter exists. It is a no-op when p is no longer pending.
func (s *Store) DeadLetter(ctx context.Context, p bridge.Pending, reason string) error {
	if s.dones.queued(p) {
		return nil // delivered; its removal is in the next commit
	}
	b, err := s.newBatch(true)
	if err == nil {
		b.Queue(`
WITH d AS (
	DELETE FROM kdbridge_pending WHERE target_key = $1 AND discussion = $2 AND seq = $3
	RETURNING event_seq, idx, seq, target, discussion
)
INSERT INTO kdbridge_dead (event_seq, idx, seq, target, sink, discussion, attempts, first_try, last_error, next_try, reason, failed_at)
SELECT event_seq, idx, seq, target, $4, discussion, $5, $6, $7, $8, $9, now() FROM d
ON CONFLICT (event_seq, idx) DO UPDATE SET seq = EXCLUDED.seq, target = EXCLUDED.target, sink = EXCLUDED.sink,
	discussion = EXCLUDED.discussion, attempts = EXCLUDED.attempts, first_try = EXCLUDED.first_try,
	last_error = EXCLUDED.last_error, next_try = EXCLUDED.next_try, reason = EXCLUDED.reason, failed_at = EXCLUDED.failed_at`,
			[]byte(p.Queue.Target.Key()), p.Queue.Discussion, int64(p.Seq), p.Queue.Target.Sink,
			p.Attempts, tn(p.FirstTry), p.LastError, tn(p.NextTry), reason)
		err = s.send(ctx, b)
	}
	if err != nil {
		return s.fail("dead-letter", err)
	}
	return nil
}

// deadLetterID is the operator-facing name of a dead letter, as bridge/store names them:
// "dl-<event seq>-<target index>", stable across replays.
func deadLetterID(eventSeq int64, index int32) string {
	return "dl-" + strconv.FormatInt(eventSeq, 10) + "-" + strconv.FormatInt(int64(index), 10)
}

func parseDeadLetterID(id string) (eventSeq int64, index int32, ok bool) {
	rest, found := strings.CutPrefix(id, "dl-")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseInt(a, 10, 64)
	i, err2 := strconv.ParseInt(b, 10, 32)
	if err1 != nil || err2 != nil || seq < 0 || i < 0 {
		return 0, 0, false
	}
	return seq, int32(i), true
}

// deadWhere is the condition and arguments selecting the dead letters of f (alias d).
func deadWhere(f bridge.DeadLetterFilter) (string, []any) {
	var conds []string
	var args []any
	if len(f.IDs) > 0 {
		var seqs []int64
		var idxs []int32
		for _, id := range f.IDs {
			if seq, i, ok := parseDeadLetterID(id); ok {
				seqs, idxs = append(seqs, seq), append(idxs, i)
			}
		}
		args = append(args, seqs, idxs)
		conds = append(conds, `(d.event_seq, d.idx) IN (SELECT * FROM unnest($1::bigint[], $2::int[]))`)
	}
	if f.Sink != "" {
		args = append(args, f.Sink)
		conds = append(conds, fmt.Sprintf("d.sink = $%d", len(args)))
	}
	if !f.Since.IsZero() {
		args = append(args, f.Since)
		conds = append(conds, fmt.Sprintf("d.failed_at >= $%d", len(args)))
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// letters reads the dead letters of f with their events, oldest event first; lock adds FOR
// UPDATE.
func letters(ctx context.Context, tx pgx.Tx, f bridge.DeadLetterFilter, lock bool) ([]bridge.DeadLetter, []deadKey, error) {
	where, args := deadWhere(f)
	q := `SELECT d.event_seq, d.idx, d.seq, d.target, d.discussion, d.attempts, d.first_try, d.last_error,
	d.next_try, d.reason, d.failed_at, e.body
FROM kdbridge_dead d JOIN kdbridge_events e ON e.seq = d.event_seq
WHERE ` + where + ` ORDER BY d.event_seq, d.idx`
	if lock {
		q += ` FOR UPDATE OF d`
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out []bridge.DeadLetter
	var keys []deadKey
	for rows.Next() {
		var k deadKey
		var seq int64
		var tj, body []byte
		var ft, nt *time.Time
		var dl bridge.DeadLetter
		p := &dl.Pending
		if err := rows.Scan(&k.eventSeq, &k.idx, &seq, &tj, &p.Queue.Discussion, &p.Attempts, &ft, &p.LastError,
			&nt, &dl.Reason, &dl.FailedAt, &body); err != nil {
			return nil, nil, err
		}
		dl.ID = deadLetterID(k.eventSeq, k.idx)
		if err := json.Unmarshal(tj, &p.Queue.Target); err != nil {
			return nil, nil, fmt.Errorf("decode target of %s: %w", dl.ID, err)
		}
		if err := decodeEvent(body, &p.Event); err != nil {
			return nil, nil, fmt.Errorf("decode event of %s: %w", dl.ID, err)
		}
		p.Seq, p.FirstTry, p.NextTry = uint64(seq), tv(ft), tv(nt)
		k.target, k.discussion = tj, p.Queue.Discussion
		k.targetKey = p.Queue.Target.Key()
		out = append(out, dl)
		keys = append(keys, k)
	}
	return out, keys, rows.Err()
}

// deadKey is what Replay needs of a dead letter.
type deadKey struct {
	eventSeq   int64
	idx        int32
	target     []byte
	targetKey  string
	discussion string
}

// DeadLetters lists the dead letters that match f, oldest event first.
func (s *Store) DeadLetters(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	var out []bridge.DeadLetter
	err := s.read(ctx, func(tx pgx.Tx) error {
		var err error
		out, _, err = letters(ctx, tx, f, false)
		return err
	})
	if err != nil {
		return nil, s.fail("dead letters", err)
	}
	return out, nil
}

// notifyChannel is where Replay tells the leader that queues have new deliveries.
const notifyChannel = "kdbridge_queues"

// Replay moves the dead letters that match f to the end of their queues, with a fresh
// attempt history, and returns them as they were before the replay. Any replica may replay:
// the transaction notifies the leader (ListenQueues).
func (s *Store) Replay(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	var out []bridge.DeadLetter
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(seqLock)); err != nil {
			return err
		}
		var keys []deadKey
		var err error
		if out, keys, err = letters(ctx, tx, f, true); err != nil || len(keys) == 0 {
			return err
		}
		var tks [][]byte
		var discs []string
		var eseqs []int64
		var idxs []int32
		var targets [][]byte
		for _, k := range keys {
			tks, discs, eseqs = append(tks, []byte(k.targetKey)), append(discs, k.discussion), append(eseqs, k.eventSeq)
			idxs, targets = append(idxs, k.idx), append(targets, k.target)
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO kdbridge_pending (target_key, discussion, seq, event_seq, idx, target)
SELECT u.tk, u.d, nextval('kdbridge_seq'), u.es, u.i, u.t
FROM (SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::int[], $5::bytea[]) WITH ORDINALITY
	AS x(tk, d, es, i, t, ord) ORDER BY ord) u`, tks, discs, eseqs, idxs, targets); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM kdbridge_dead WHERE (event_seq, idx) IN (SELECT * FROM unnest($1::bigint[], $2::int[]))`,
			eseqs, idxs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, strconv.Itoa(len(keys)))
		return err
	})
	if err != nil {
		return nil, s.fail("replay", err)
	}
	return out, nil
}

// Drop deletes the dead letters that match f, and the event bodies nothing else needs.
func (s *Store) Drop(ctx context.Context, f bridge.DeadLetterFilter) (int, error) {
	var n int
	err := s.write(ctx, func(tx pgx.Tx) error {
		where, args := deadWhere(f)
		rows, err := tx.Query(ctx, `DELETE FROM kdbridge_dead d WHERE `+where+` RETURNING d.event_seq`, args...)
		if err != nil {
			return err
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		n = len(seqs)
		return release(ctx, tx, seqs)
	})
	if err != nil {
		return 0, s.fail("drop", err)
	}
	return n, nil
}

// release drops the bodies of the events among seqs that no delivery or dead letter needs
// any more; their IDs stay, for dedupe, until Prune.
func release(ctx context.Context, tx pgx.Tx, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE kdbridge_events e SET body = NULL
WHERE e.seq = ANY($1) AND e.body IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM kdbridge_pending p WHERE p.event_seq = e.seq)
	AND NOT EXISTS (SELECT 1 FROM kdbridge_dead d WHERE d.event_seq = e.seq)`, seqs)
	return err
}

// pruneChunk bounds the work of one Prune transaction.
const pruneChunk = 4096

// Prune forgets the event IDs stored before the cut-off whose deliveries are all finished
// (no pending delivery, no dead letter), so that those events would be accepted again, and
// returns how many it forgot. Each chunk of pruneChunk IDs is a transaction of its own.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	// Deliveries done before the call count as finished: commit their Done first.
	s.commit()
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM kdbridge_events WHERE seq IN (
	SELECT e.seq FROM kdbridge_events e WHERE e.stored_at < $1
		AND NOT EXISTS (SELECT 1 FROM kdbridge_pending p WHERE p.event_seq = e.seq)
		AND NOT EXISTS (SELECT 1 FROM kdbridge_dead d WHERE d.event_seq = e.seq)
	ORDER BY e.stored_at LIMIT $2)`, before, pruneChunk)
		if err != nil {
			return total, s.fail("prune", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}
