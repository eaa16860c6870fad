package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// LogAttempts stores attempts, in one statement; each is kept until PruneAttempts.
func (s *Store) LogAttempts(ctx context.Context, recs []bridge.AttemptRecord) error {
	if len(recs) == 0 {
		return nil
	}
	n := len(recs)
	var (
		at, next                        = make([]time.Time, n), make([]*time.Time, n)
		seq, lat                        = make([]int64, n), make([]int64, n)
		attempt                         = make([]int32, n)
		target                          = make([][]byte, n)
		sink, disc, eid, etype, outcome = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		status, errs, resp, dl          = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, r := range recs {
		tj, err := json.Marshal(r.Queue.Target)
		if err != nil {
			return fmt.Errorf("pgstore: log attempts: %w", err)
		}
		at[i], next[i], seq[i], lat[i], attempt[i], target[i] = r.At, tn(r.NextTry), int64(r.Seq), int64(r.Latency), int32(r.Attempt), tj
		sink[i], disc[i], eid[i], etype[i], outcome[i] = r.Queue.Target.Sink, r.Queue.Discussion, r.EventID, r.EventType, r.Outcome
		status[i], errs[i], resp[i], dl[i] = r.Status, r.Error, r.Response, r.DeadLetter
	}
	b, err := s.newBatch(true)
	if err == nil {
		b.Queue(`INSERT INTO kdbridge_attempts (at, seq, target, sink, discussion, event_id, event_type,
	attempt, latency_ns, outcome, status, error, response, next_try, dead_letter)
SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::int[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[])`,
			at, seq, target, sink, disc, eid, etype, attempt, lat, outcome, status, errs, resp, next, dl)
		err = s.send(ctx, b)
	}
	if err != nil {
		return s.fail("log attempts", err)
	}
	return nil
}

// Attempts returns the attempts that match f, newest first, at most f.Limit (0: 100).
func (s *Store) Attempts(ctx context.Context, f bridge.AttemptFilter) ([]bridge.AttemptRecord, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Discussion != "" {
		add("discussion = $%d", f.Discussion)
	}
	if f.EventID != "" {
		add("event_id = $%d", f.EventID)
	}
	if f.Sink != "" {
		add("sink = $%d", f.Sink)
	}
	if f.Outcome != "" {
		add("outcome = $%d", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("at < $%d", f.Until)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	where := "true"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	args = append(args, limit)
	rows, err := s.pool.Query(ctx, `SELECT at, seq, target, discussion, event_id, event_type, attempt, latency_ns,
	outcome, status, error, response, next_try, dead_letter
FROM kdbridge_attempts WHERE `+where+fmt.Sprintf(` ORDER BY at DESC, id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, s.fail("attempts", err)
	}
	defer rows.Close()
	var out []bridge.AttemptRecord
	for rows.Next() {
		var r bridge.AttemptRecord
		var seq, lat int64
		var tj []byte
		var next *time.Time
		if err := rows.Scan(&r.At, &seq, &tj, &r.Queue.Discussion, &r.EventID, &r.EventType, &r.Attempt, &lat,
			&r.Outcome, &r.Status, &r.Error, &r.Response, &next, &r.DeadLetter); err != nil {
			return nil, s.fail("attempts", err)
		}
		if err := json.Unmarshal(tj, &r.Queue.Target); err != nil {
			return nil, s.fail("attempts", fmt.Errorf("decode target: %w", err))
		}
		r.Seq, r.Latency, r.NextTry = uint64(seq), time.Duration(lat), tv(next)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("attempts", err)
	}
	return out, nil
}

// PruneAttempts forgets attempts made before before and returns how many.
func (s *Store) PruneAttempts(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM kdbridge_attempts WHERE at < $1`, before)
	if err != nil {
		return 0, s.fail("prune attempts", err)
	}
	return int(tag.RowsAffected()), nil
}
