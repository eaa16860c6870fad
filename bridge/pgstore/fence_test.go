package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// fencedTx opens a transaction that has passed the fence of replica with epoch, as every
// write of a leader does, and leaves it open; the caller commits it.
func fencedTx(t *testing.T, dsn, replica string, epoch int64) (pgx.Tx, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT kdbridge_fence($1, $2)`, replica, epoch); err != nil {
		t.Fatalf("fence: %v", err)
	}
	return tx, conn
}

// The leader's own renewal never waits for its fenced writes (a busy leader kept the
// renewal waiting until the lease expired), while a takeover still waits until they end —
// on a database created at schema version 1 and migrated, as an upgrade finds it.
func TestRenewalDoesNotWaitForFencedWrites(t *testing.T) {
	dsn := pgtest.DB(t)
	pgtest.Exec(t, dsn, migrations[0]+`
CREATE TABLE kdbridge_schema (version int NOT NULL);
INSERT INTO kdbridge_schema (version) VALUES (1);`)
	s := openT(t, dsn)
	if v, err := Probe(context.Background(), dsn); err != nil || v != SchemaVersion {
		t.Fatalf("after Open of a version 1 schema: version %d, %v; want %d", v, err, SchemaVersion)
	}
	e := s.Elector("a", 30*time.Second)
	ctx := context.Background()
	epoch, err := e.acquire(ctx)
	if err != nil || epoch == 0 {
		t.Fatalf("acquire = %d, %v", epoch, err)
	}

	// Two overlapping writes, as a busy leader has at every moment.
	tx1, _ := fencedTx(t, dsn, "a", epoch)
	tx2, _ := fencedTx(t, dsn, "a", epoch)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ok, err := e.renewOnce(rctx, epoch)
	cancel()
	if err != nil || !ok {
		t.Fatalf("renewal while the leader's writes are open: ok %t, %v; want renewed at once", ok, err)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// A takeover (another replica, after the lease expired) waits for the open write.
	pgtest.Exec(t, dsn, `UPDATE kdbridge_lease SET expires_at = now() - interval '1 second'`)
	taken := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := s.leasePool.Exec(c, `UPDATE kdbridge_lease SET holder = 'b', epoch = epoch + 1, expires_at = now() + interval '1 minute'
WHERE name = $1 AND expires_at <= now()`, leaseName)
		taken <- err
	}()
	select {
	case err := <-taken:
		t.Fatalf("the takeover did not wait for the deposed leader's open write (err %v)", err)
	case <-time.After(300 * time.Millisecond): // ample for an UPDATE that does not wait
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatalf("the write fenced before the takeover: %v", err)
	}
	select {
	case err := <-taken:
		if err != nil {
			t.Fatalf("takeover: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the takeover still waits after the write ended")
	}
	if holder, _, _, err := s.Leader(ctx); err != nil || holder != "b" {
		t.Fatalf("Leader = %q, %v; want b", holder, err)
	}
}
