package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kdbridge/kdbridge/bridge/statecopy"
)

// ErrNotEmpty is returned by Import when the database already holds kdbridge state.
var ErrNotEmpty = errors.New("pgstore: the database already holds kdbridge state")

// Import writes snap (another store's whole state, see statecopy) in one transaction, keeping
// its sequence numbers, and moves the sequence past them. It refuses a database that holds
// events, deliveries, dead letters or values (ErrNotEmpty) unless replace is set: then that
// state is deleted first. The leader lease is left alone; run it with every replica stopped.
func (s *Store) Import(ctx context.Context, snap *statecopy.Snapshot, replace bool) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(seqLock)); err != nil {
			return err
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kdbridge_events) OR EXISTS (SELECT 1 FROM kdbridge_pending)
	OR EXISTS (SELECT 1 FROM kdbridge_dead) OR EXISTS (SELECT 1 FROM kdbridge_kv)`).Scan(&used); err != nil {
			return err
		}
		if used && !replace {
			return ErrNotEmpty
		}
		if used {
			for _, t := range []string{"kdbridge_pending", "kdbridge_dead", "kdbridge_events", "kdbridge_kv"} {
				if _, err := tx.Exec(ctx, "DELETE FROM "+t); err != nil {
					return err
				}
			}
		}
		events := make([][]any, 0, len(snap.Events))
		for _, e := range snap.Events {
			events = append(events, []any{int64(e.Seq), e.ID, e.StoredAt, e.Body})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"kdbridge_events"}, []string{"seq", "id", "stored_at", "body"}, pgx.CopyFromRows(events)); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		pending := make([][]any, 0, len(snap.Pending))
		for _, p := range snap.Pending {
			tj, err := json.Marshal(p.Queue.Target)
			if err != nil {
				return err
			}
			pending = append(pending, []any{[]byte(p.Queue.Target.Key()), p.Queue.Discussion, int64(p.Seq), int64(p.EventSeq), int32(p.Index), tj,
				int32(p.Attempts), tn(p.FirstTry), p.LastError, tn(p.NextTry)})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"kdbridge_pending"}, []string{"target_key", "discussion", "seq", "event_seq", "idx", "target",
			"attempts", "first_try", "last_error", "next_try"}, pgx.CopyFromRows(pending)); err != nil {
			return fmt.Errorf("pending deliveries: %w", err)
		}
		dead := make([][]any, 0, len(snap.Dead))
		for _, d := range snap.Dead {
			tj, err := json.Marshal(d.Queue.Target)
			if err != nil {
				return err
			}
			dead = append(dead, []any{int64(d.EventSeq), int32(d.Index), int64(d.Seq), tj, d.Queue.Target.Sink, d.Queue.Discussion,
				int32(d.Attempts), tn(d.FirstTry), d.LastError, tn(d.NextTry), d.Reason, d.FailedAt})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"kdbridge_dead"}, []string{"event_seq", "idx", "seq", "target", "sink", "discussion",
			"attempts", "first_try", "last_error", "next_try", "reason", "failed_at"}, pgx.CopyFromRows(dead)); err != nil {
			return fmt.Errorf("dead letters: %w", err)
		}
		values := make([][]any, 0, len(snap.Values))
		for _, v := range snap.Values {
			values = append(values, []any{v.Namespace, textKey(v.Key), v.Value})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"kdbridge_kv"}, []string{"namespace", "key", "value"}, pgx.CopyFromRows(values)); err != nil {
			return fmt.Errorf("values: %w", err)
		}
		if m := snap.MaxSeq(); m > 0 {
			if _, err := tx.Exec(ctx, `SELECT setval('kdbridge_seq', GREATEST($1, (SELECT last_value FROM kdbridge_seq)))`, int64(m)); err != nil {
				return fmt.Errorf("sequence: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, ErrNotEmpty) {
		return err
	}
	if err != nil {
		return s.fail("import", err)
	}
	return nil
}
