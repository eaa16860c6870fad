package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrations[i] takes the schema from version i to i+1. Each runs in the transaction that
// holds the migration lock, and records its version.
var migrations = []string{
	// 1: events (their JSON bodies, as bridge/store keeps them, while a delivery or a dead
	// letter needs them; their IDs for dedupe until Prune), pending deliveries, dead letters,
	// key/value namespaces, attempt history, the leader lease.
	`
CREATE SEQUENCE kdbridge_seq;
CREATE TABLE kdbridge_events (
	seq       bigint PRIMARY KEY,
	id        text NOT NULL UNIQUE,
	stored_at timestamptz NOT NULL,
	body      bytea
);
CREATE INDEX kdbridge_events_stored_at ON kdbridge_events (stored_at);
CREATE TABLE kdbridge_pending (
	target_key bytea NOT NULL, -- bridge.Target.Key(), which holds NUL bytes
	discussion text NOT NULL,
	seq        bigint NOT NULL,
	event_seq  bigint NOT NULL,
	idx        int NOT NULL,
	target     bytea NOT NULL,
	attempts   int NOT NULL DEFAULT 0,
	first_try  timestamptz,
	last_error text NOT NULL DEFAULT '',
	next_try   timestamptz,
	PRIMARY KEY (target_key, discussion, seq)
);
CREATE INDEX kdbridge_pending_event ON kdbridge_pending (event_seq);
CREATE TABLE kdbridge_dead (
	event_seq  bigint NOT NULL,
	idx        int NOT NULL,
	seq        bigint NOT NULL,
	target     bytea NOT NULL,
	sink       text NOT NULL,
	discussion text NOT NULL,
	attempts   int NOT NULL,
	first_try  timestamptz,
	last_error text NOT NULL,
	next_try   timestamptz,
	reason     text NOT NULL,
	failed_at  timestamptz NOT NULL,
	PRIMARY KEY (event_seq, idx)
);
CREATE TABLE kdbridge_kv (
	namespace text NOT NULL,
	key       text NOT NULL,
	value     bytea NOT NULL,
	PRIMARY KEY (namespace, key)
);
CREATE TABLE kdbridge_attempts (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL,
	seq         bigint NOT NULL,
	target      bytea NOT NULL,
	sink        text NOT NULL,
	discussion  text NOT NULL,
	event_id    text NOT NULL,
	event_type  text NOT NULL,
	attempt     int NOT NULL,
	latency_ns  bigint NOT NULL,
	outcome     text NOT NULL,
	status      text NOT NULL,
	error       text NOT NULL,
	response    text NOT NULL,
	next_try    timestamptz,
	dead_letter text NOT NULL
);
CREATE INDEX kdbridge_attempts_at ON kdbridge_attempts (at);
CREATE INDEX kdbridge_attempts_discussion ON kdbridge_attempts (discussion, at);
CREATE INDEX kdbridge_attempts_event ON kdbridge_attempts (event_id, at);
CREATE TABLE kdbridge_lease (
	name       text PRIMARY KEY,
	holder     text NOT NULL,
	epoch      bigint NOT NULL,
	expires_at timestamptz NOT NULL
);
-- The fence of every write of the leader: share-locks its lease row (a takeover's UPDATE
-- waits for the transaction) or fails the transaction with SQLSTATE KB001.
CREATE FUNCTION kdbridge_fence(p_holder text, p_epoch bigint) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	PERFORM 1 FROM kdbridge_lease
	WHERE name = 'leader' AND holder = p_holder AND epoch = p_epoch AND expires_at > now() FOR SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'replica % does not hold the leader lease of epoch %', p_holder, p_epoch USING ERRCODE = 'KB001';
	END IF;
END
$f$;
`,
	// 2: the fence share-locks the lease row FOR KEY SHARE, and epoch is a key column (in a
	// unique index with name). A takeover changes epoch, so its UPDATE still takes the row
	// FOR UPDATE and waits for the leader's fenced transactions; the leader's renewal changes
	// expires_at only, a FOR NO KEY UPDATE that no longer waits for them. Under FOR SHARE a
	// stream of overlapping writes could keep the renewal waiting until its timeout, and
	// the leader lose its lease while busy (PostgreSQL's log showed renewals cancelled
	// while waiting for the row in a bench catch-up that redelivered 16,434 messages).
	`
CREATE UNIQUE INDEX kdbridge_lease_epoch ON kdbridge_lease (name, epoch);
CREATE OR REPLACE FUNCTION kdbridge_fence(p_holder text, p_epoch bigint) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	PERFORM 1 FROM kdbridge_lease
	WHERE name = 'leader' AND holder = p_holder AND epoch = p_epoch AND expires_at > now() FOR KEY SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'replica % does not hold the leader lease of epoch %', p_holder, p_epoch USING ERRCODE = 'KB001';
	END IF;
END
$f$;
`,
}

// tables are kdbridge's tables, for the privilege check.
var tables = []string{"kdbridge_schema", "kdbridge_events", "kdbridge_pending", "kdbridge_dead",
	"kdbridge_kv", "kdbridge_attempts", "kdbridge_lease"}

// migrationLock is the key of the advisory lock that serialises migrations of replicas
// starting at the same time.
const migrationLock = 0x6b6462_736368 // "kdb" "sch"

// migrate creates or migrates the schema to SchemaVersion, under the migration lock.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: connect: %w", err)
	}
	defer conn.Release()
	v, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return tooNew(v)
	}
	if err := checkPrivileges(ctx, conn.Conn(), v); err != nil {
		return err
	}
	if v == SchemaVersion {
		return nil
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS kdbridge_schema (version int NOT NULL)`); err != nil {
			return err
		}
		// Another replica may have migrated while this one waited for the lock.
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM kdbridge_schema`).Scan(&cur); err != nil {
			return err
		}
		if cur > SchemaVersion {
			return tooNew(cur)
		}
		for ; cur < SchemaVersion; cur++ {
			if _, err := tx.Exec(ctx, migrations[cur]); err != nil {
				return fmt.Errorf("to version %d: %w", cur+1, err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM kdbridge_schema`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO kdbridge_schema (version) VALUES ($1)`, cur+1); err != nil {
				return err
			}
			s.log.Info("pgstore: schema migrated", "version", cur+1)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrSchemaTooNew) {
			return err
		}
		return privilegeHint(fmt.Errorf("pgstore: migrate schema: %w", err))
	}
	return nil
}

// schemaVersion reads the version of kdbridge's schema; 0 when there is none.
func schemaVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('kdbridge_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("pgstore: read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	if err := checkTables(ctx, conn); err != nil {
		return 0, err
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM kdbridge_schema`).Scan(&v); err != nil {
		return 0, privilegeHint(fmt.Errorf("pgstore: read schema version: %w", err))
	}
	return v, nil
}

func tooNew(v int) error {
	return fmt.Errorf("%w: the database holds schema version %d, this kdbridge knows up to version %d: upgrade kdbridge", ErrSchemaTooNew, v, SchemaVersion)
}

// neededPrivileges is what the README says the role needs.
const neededPrivileges = "CONNECT on the database; CREATE and USAGE on its schema (to create and migrate kdbridge's tables); SELECT, INSERT, UPDATE, DELETE on the kdbridge_* tables and USAGE, SELECT, UPDATE on their sequences (the owner has them)"

// checkPrivileges tells, before anything fails half-way, whether the current role can create
// or migrate the schema (version v now) and use its tables, naming what is missing.
func checkPrivileges(ctx context.Context, conn *pgx.Conn, v int) error {
	var role, schema string
	var create, usage bool
	err := conn.QueryRow(ctx, `SELECT current_user, coalesce(current_schema(), ''),
		coalesce(has_schema_privilege(current_schema(), 'CREATE'), false),
		coalesce(has_schema_privilege(current_schema(), 'USAGE'), false)`).Scan(&role, &schema, &create, &usage)
	if err != nil {
		return fmt.Errorf("pgstore: check privileges: %w", err)
	}
	if schema == "" {
		return fmt.Errorf("pgstore: permission denied for schema: role %q has no schema on its search_path it may use; grant %s", role, neededPrivileges)
	}
	if v < SchemaVersion && (!create || !usage) {
		return fmt.Errorf("pgstore: permission denied for schema %s: role %q cannot create kdbridge's tables (schema version %d, this kdbridge needs %d); run GRANT CREATE, USAGE ON SCHEMA %s TO %s (kdbridge needs %s)",
			schema, role, v, SchemaVersion, schema, pgx.Identifier{role}.Sanitize(), neededPrivileges)
	}
	if v == 0 {
		return nil
	}
	return checkTables(ctx, conn)
}

// checkTables names the tables of kdbridge's schema the current role cannot use.
func checkTables(ctx context.Context, conn *pgx.Conn) error {
	var role string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
		return fmt.Errorf("pgstore: check privileges: %w", err)
	}
	var missing []string
	for _, t := range tables {
		var ok bool
		// Tables a newer schema dropped, or an older one lacks, are not this check's concern.
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NULL OR (has_table_privilege($1, 'SELECT')
	AND has_table_privilege($1, 'INSERT') AND has_table_privilege($1, 'UPDATE') AND has_table_privilege($1, 'DELETE'))`, t).Scan(&ok); err != nil {
			return fmt.Errorf("pgstore: check privileges on %s: %w", t, err)
		}
		if !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pgstore: permission denied for table %s: role %q lacks SELECT, INSERT, UPDATE or DELETE; grant them (kdbridge needs %s)",
			strings.Join(missing, ", "), role, neededPrivileges)
	}
	return nil
}

// privilegeHint adds the privileges needed to a "permission denied" error from the server.
func privilegeHint(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("%w; grant %s", err, neededPrivileges)
	}
	return err
}
