package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Each test's database is its own and empty.
func TestDBIsFreshAndWritable(t *testing.T) {
	a, b := DB(t), DB(t)
	if a == b {
		t.Fatalf("two databases share a DSN: %s", a)
	}
	Exec(t, a, "CREATE TABLE x (v int)")
	Exec(t, a, "INSERT INTO x VALUES (42)")
	if got := query(t, a, "SELECT v::text FROM x"); got != "42" {
		t.Fatalf("got %q", got)
	}
	if got := query(t, b, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'x'"); got != "0" {
		t.Fatalf("second database sees the first one's table: %s", got)
	}
	if v := query(t, a, "SHOW server_version_num"); v < "150000" {
		t.Fatalf("server version %s, want 15 or later", v)
	}
}

// A cluster of a test's own stops and starts again with its data.
func TestClusterStopStart(t *testing.T) {
	c := StartCluster(t)
	dsn := c.NewDB(t)
	Exec(t, dsn, "CREATE TABLE kept (v int)")
	Exec(t, dsn, "INSERT INTO kept VALUES (7)")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if got := query(t, dsn, "SELECT v::text FROM kept"); got != "7" {
		t.Fatalf("after restart got %q", got)
	}
}
