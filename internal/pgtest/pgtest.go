// Package pgtest gives tests a real PostgreSQL: a throwaway cluster on a loopback port, started
// from the binaries that `pg_config --bindir` names, or the server that KDBRIDGE_TEST_PG names.
//
// Each test gets its own database (DB), dropped when the test ends. Tests that need to stop
// and start the server (outage tests) start a cluster of their own (StartCluster).
//
// When PostgreSQL is not installed the tests skip with a clear message, unless
// KDBRIDGE_REQUIRE_PG=1 (CI sets it): then they fail.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// EnvServer names the admin (superuser) DSN of a running server to use instead of a
	// throwaway cluster.
	EnvServer = "KDBRIDGE_TEST_PG"
	// EnvRequire set to 1 turns a missing PostgreSQL into a test failure.
	EnvRequire = "KDBRIDGE_REQUIRE_PG"
)

var (
	sharedOnce    sync.Once
	sharedCluster *Cluster
	sharedAdmin   string
	sharedErr     error
	dbCounter     atomic.Int64
)

// Main runs the tests, then stops the cluster that they shared, if one was started. Call it
// from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if sharedCluster != nil {
		if err := sharedCluster.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		_ = os.RemoveAll(sharedCluster.Dir)
	}
	return code
}

// unavailable skips or fails the test, as EnvRequire says.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("PostgreSQL is required (%s=1) but not available: %v", EnvRequire, err)
	}
	t.Skipf("PostgreSQL not available, skipping (set %s=1 to fail instead): %v", EnvRequire, err)
}

// AdminDSN returns the superuser DSN of the shared server (database "postgres").
func AdminDSN(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() {
		if dsn := os.Getenv(EnvServer); dsn != "" {
			sharedAdmin = dsn
			return
		}
		sharedCluster, sharedErr = newCluster()
		if sharedErr == nil {
			sharedErr = sharedCluster.Start()
		}
		if sharedErr == nil {
			sharedAdmin = sharedCluster.AdminDSN()
		}
	})
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return sharedAdmin
}

// DB creates a fresh, empty database on the shared server and returns its DSN; the database
// is dropped when the test ends.
func DB(t testing.TB) string {
	t.Helper()
	return createDB(t, AdminDSN(t))
}

func createDB(t testing.TB, admin string) string {
	t.Helper()
	name := fmt.Sprintf("kdb_test_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := exec1(admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := exec1(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// WithDatabase returns dsn with its database replaced.
func WithDatabase(dsn, db string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Path = "/" + db
	return u.String()
}

// Exec runs one statement on dsn (for a test's set-up: roles, grants).
func Exec(t testing.TB, dsn, sql string) {
	t.Helper()
	if err := exec1(dsn, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func exec1(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Cluster is a throwaway PostgreSQL cluster on a loopback port, owned by one test (or, for
// the shared one, by the test binary).
type Cluster struct {
	Dir  string // holds data/ and the unix socket
	Port int
	bin  string
	asPG bool // running as root: run the server as the postgres account
}

// StartCluster starts a cluster of the test's own, stopped and removed when the test ends.
// Unlike DB, it never uses KDBRIDGE_TEST_PG: the test may stop and start it.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := newCluster()
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		if c != nil {
			_ = os.RemoveAll(c.Dir)
		}
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Logf("pgtest: %v", err)
		}
		_ = os.RemoveAll(c.Dir)
	})
	return c
}

// NewDB creates a fresh database on c and returns its DSN.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	return createDB(t, c.AdminDSN())
}

// AdminDSN is the superuser DSN of c (database "postgres").
func (c *Cluster) AdminDSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

func newCluster() (*Cluster, error) {
	out, err := exec.Command("pg_config", "--bindir").Output()
	bin := strings.TrimSpace(string(out))
	if err != nil || bin == "" {
		// pg_config may be missing while the server is installed in Debian's place.
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		if len(matches) == 0 {
			return nil, errors.New("no pg_config on PATH and no /usr/lib/postgresql/*/bin/initdb")
		}
		bin = filepath.Dir(matches[len(matches)-1])
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		return nil, fmt.Errorf("initdb not in %s: %w", bin, err)
	}
	dir, err := os.MkdirTemp("", "kdbridge-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin, asPG: os.Geteuid() == 0}
	if c.asPG {
		// PostgreSQL refuses to run as root: the server runs as the postgres account, which
		// must own its directory.
		u, err := user.Lookup("postgres")
		if err != nil {
			return c, fmt.Errorf("running as root and there is no postgres account: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return c, err
		}
	}
	port, err := freePort()
	if err != nil {
		return c, err
	}
	c.Port = port
	if out, err := c.command("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust",
		"--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		return c, fmt.Errorf("initdb: %v: %s", err, out)
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.Dir, "data") }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asPG {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=400 "+
		"-c fsync=off -c full_page_writes=off -c shared_buffers=64MB", c.Port, c.Dir)
	cmd := c.command("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.Dir, "log"), "-o", opts,
		"-w", "-t", "60", "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the server at once (as a crash or a lost network would).
func (c *Cluster) Stop() error {
	if out, err := c.command("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").
		CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

func (c *Cluster) stop() error {
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err != nil {
		return nil // not running
	}
	return c.Stop()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
