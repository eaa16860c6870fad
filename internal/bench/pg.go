package bench

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kdbridge/kdbridge/bridge/pgstore"
)

// ModeKdbridgePG is kdbridge on the PostgreSQL backend (bench -state postgres), run beside
// ModeKdbridge (bbolt) on the same scenarios.
const ModeKdbridgePG = "kdbridge-pg"

// PGEnv names the database bench -state postgres uses: each run gets a schema of its
// own in it, dropped after the run.
const PGEnv = "KDBRIDGE_BENCH_PG_DSN"

// pgSchema creates a fresh schema for one run and returns a DSN whose search_path is
// it, and a function that drops it.
func pgSchema(ctx context.Context, dsn, name string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %s", PGEnv, pgstore.ScrubDSN(err.Error(), dsn))
	}
	defer conn.Close(context.Background())
	schema := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %s", name, pgstore.ScrubDSN(err.Error(), dsn))
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(dctx, dsn); err == nil {
			_, _ = c.Exec(dctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			_ = c.Close(dctx)
		}
	}
	return withSearchPath(dsn, name), drop, nil
}

// withSearchPath adds search_path to a DSN in URL or key=value form.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

// pgDescribe is the state line of the report for the database.
func pgDescribe(dsn string) string {
	return "PostgreSQL " + pgstore.RedactDSN(dsn) + " (a schema per run)"
}
