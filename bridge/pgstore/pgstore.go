// Package pgstore is the PostgreSQL implementation of bridge.Store, for running several
// replicas of kdbridge on one database: the same semantics as the embedded bbolt store
// (bridge/store), plus a leader lease (Elector) that fences the writes of a replica that no
// longer leads.
//
// The schema is created and migrated by Open (see schema.go); the event bodies are the same
// JSON encoding of bridge.Event that bridge/store keeps.
//
// Writes of the leader are one round trip each: the statements and, when the store has an
// Elector, the fence (kdbridge_fence: the lease row must name this replica and its epoch
// and not be expired, and is share-locked so that a takeover waits) are pipelined as one
// implicit transaction. Append and Replay take one advisory lock while they number
// deliveries, so that a queue's order is its commit order whichever replica writes. Done
// is group-committed behind the caller, as in bbolt. Reads, Replay, Drop and Prune are not
// fenced: any replica serves the operator.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/writebehind"
)

// SchemaVersion is the schema this binary writes.
const SchemaVersion = 2

var (
	// ErrFenced is returned by a write of a replica that no longer leads (or never did) when
	// the store has an Elector.
	ErrFenced = errors.New("pgstore: fenced: this replica does not hold the leader lease")
	// ErrSchemaTooNew is returned when the database was migrated by a newer kdbridge.
	ErrSchemaTooNew = errors.New("pgstore: database schema is newer than this binary")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("pgstore: closed")
)

// Options configure a Store.
type Options struct {
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
	// Retention is the de-duplication window, as bbolt's (default 7 days). It is
	// informational: the caller decides when to prune and passes the cut-off to Prune.
	Retention time.Duration
	// MaxConns is the pool size; 0: a sensible default (16).
	MaxConns int32
}

// Store is the PostgreSQL bridge.Store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// leasePool serves the leader lease alone (campaign, renewal, release, Leader), so that
	// a renewal never waits behind deliveries for one of pool's connections: under load that
	// wait could outlast the lease and depose a healthy leader. It connects when first used.
	leasePool *pgxpool.Pool
	log       *slog.Logger
	opts      Options
	secrets   []string // the DSN's password as spelt (dsnSecrets), scrubbed from every error

	fence atomic.Pointer[fence] // nil: no elector, writes are not fenced

	appends  chan *appendReq // Append calls for the appender
	dones    *dones
	commitMu sync.Mutex    // serialises commits of dones and values put later, and Put
	kick     chan struct{} // tells the committer that Done calls or values put later wait
	quit     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool

	later writebehind.Values // values put later, not yet committed
}

var (
	_ bridge.Store          = (*Store)(nil)
	_ bridge.BacklogCounter = (*Store)(nil)
	_ bridge.AttemptLog     = (*Store)(nil)
	_ bridge.Peeker         = (*Store)(nil)
)

// Open connects to the database named by dsn, creates or migrates kdbridge's schema, and
// returns the store. Errors never contain the DSN's password.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 16
	}
	secrets := dsnSecrets(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, scrub(fmt.Errorf("pgstore: parse DSN %s: %w", RedactDSN(dsn), err), secrets)
	}
	cfg.MaxConns = o.MaxConns
	cfg.MinConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("pgstore: connect to %s: %w", RedactDSN(dsn), err), secrets)
	}
	lcfg := cfg.Copy()
	lcfg.MaxConns, lcfg.MinConns = 2, 0
	leasePool, err := pgxpool.NewWithConfig(ctx, lcfg)
	if err != nil {
		pool.Close()
		return nil, scrub(fmt.Errorf("pgstore: connect to %s: %w", RedactDSN(dsn), err), secrets)
	}
	s := &Store{pool: pool, leasePool: leasePool, log: o.Logger, opts: o, secrets: secrets,
		appends: make(chan *appendReq), dones: newDones(), kick: make(chan struct{}, 1), quit: make(chan struct{})}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		leasePool.Close()
		return nil, scrub(fmt.Errorf("pgstore: connect to %s: %w", RedactDSN(dsn), err), secrets)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		leasePool.Close()
		return nil, scrub(err, secrets)
	}
	s.wg.Add(1)
	go s.committer()
	s.wg.Add(1)
	go s.appender()
	return s, nil
}

// Close stops the store's goroutines (committing Done calls already made) and closes the
// pool. Electors and ListenQueues must have returned first.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.later.Close()
	s.dones.close()
	close(s.quit)
	s.wg.Wait()
	s.pool.Close()
	s.leasePool.Close()
	return nil
}

// Probe connects without migrating and reports the schema version the database holds (0:
// empty). The error says what is wrong: the connection, a schema newer than this binary
// (ErrSchemaTooNew), or privileges missing to create, migrate or use the schema.
func Probe(ctx context.Context, dsn string) (version int, err error) {
	secrets := dsnSecrets(dsn)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, scrub(fmt.Errorf("pgstore: connect to %s: %w", RedactDSN(dsn), err), secrets)
	}
	defer conn.Close(context.Background())
	v, err := schemaVersion(ctx, conn)
	if err != nil {
		return 0, scrub(err, secrets)
	}
	if v > SchemaVersion {
		return v, tooNew(v)
	}
	if err := checkPrivileges(ctx, conn, v); err != nil {
		return v, scrub(err, secrets)
	}
	return v, nil
}

var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// RedactDSN returns dsn with its password replaced by "xxxxx" (URL and key=value forms).
func RedactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "(unparsable DSN)"
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// ScrubDSN removes the DSN's password from a message; a parse error may quote part of the
// DSN.
func ScrubDSN(msg, dsn string) string { return scrubText(msg, dsnSecrets(dsn)) }

// dsnSecrets lists the spellings of dsn's password, to scrub from messages: the URL's user
// info and password parameter, a key=value password, and the one pgx would use (which may
// come from PGPASSWORD or a passfile). A DSN that does not parse still gives what it shows.
func dsnSecrets(dsn string) []string {
	var out []string
	add := func(pw string) {
		if pw != "" && !slices.Contains(out, pw) {
			out = append(out, pw)
		}
	}
	if u, err := url.Parse(dsn); err == nil {
		if u.User != nil {
			pw, _ := u.User.Password()
			add(pw)
		}
		add(u.Query().Get("password"))
	}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && k == "password" {
			add(strings.Trim(v, "'"))
		}
	}
	if cfg, err := pgx.ParseConfig(dsn); err == nil {
		add(cfg.Password)
	}
	return out
}

// scrubText replaces every secret in msg with "xxxxx".
func scrubText(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// scrub makes sure err's message contains none of secrets (dsnSecrets), keeping its chain.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := scrubText(err.Error(), secrets)
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
