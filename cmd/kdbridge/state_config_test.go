package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/internal/pgtest"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

const pgPassword = "pw-Never-Shown-42"

func TestStateBackendConfig(t *testing.T) {
	withState := func(state string) string { return goodBase + "state: " + state + "\n" }
	dsn := "postgres://kdbridge:" + pgPassword + "@db.internal:5432/kdbridge?sslmode=disable"
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, state, want string
	}{
		{"unknown backend", "{backend: etcd}", `state.backend: "etcd" is not a state backend (bbolt or postgres)`},
		{"postgres without dsn", "{backend: postgres}", "state.dsn: backend postgres needs dsn (or dsn_file)"},
		{"dsn on bbolt", "{dsn: '" + dsn + "'}", `state.dsn: applies to backend postgres only`},
		{"dsn and dsn_file", "{backend: postgres, dsn: '" + dsn + "', dsn_file: " + dsnFile + "}", "set either dsn or dsn_file, not both"},
		{"unparsable dsn", "{backend: postgres, dsn: 'postgres://u:" + pgPassword + "@h:notaport/db'}", "state.dsn: not a PostgreSQL connection string"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseConfig([]byte(withState(tt.state)), lookupFrom(nil), settings{})
			err := ps.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("problems = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pgPassword) {
				t.Errorf("the password is in the problem: %v", err)
			}
		})
	}

	cfg, ps := parseConfig([]byte(withState("{backend: postgres, dsn_file: "+dsnFile+", replica: r1}")), lookupFrom(nil), settings{})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if cfg.State.DSN.Reveal() != dsn || cfg.State.Replica != "r1" {
		t.Errorf("state = %+v", cfg.State)
	}
	s := summary(cfg)
	if strings.Contains(s, pgPassword) || !strings.Contains(s, "state.dsn        postgres://kdbridge:xxxxx@db.internal:5432/kdbridge") || !strings.Contains(s, "state.replica    r1 ") {
		t.Errorf("summary:\n%s", s)
	}

	// The environment: backend, DSN (which replaces dsn_file) and replica.
	cfg, ps = parseConfig([]byte(goodBase), lookupFrom(nil), settings{Backend: "postgres", DSN: dsn, Replica: "pod-1"})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if cfg.State.Backend != "postgres" || cfg.State.DSN.Reveal() != dsn || cfg.State.Replica != "pod-1" {
		t.Errorf("settings not applied: %+v", cfg.State)
	}
	// Defaults: bbolt, and the host name as the replica.
	cfg, _ = parseConfig([]byte(goodBase), lookupFrom(nil), settings{})
	if host, _ := os.Hostname(); cfg.State.Backend != "bbolt" || cfg.State.Replica != host {
		t.Errorf("defaults: %+v", cfg.State)
	}
}

// TestCheckOnlinePostgres: check -online connects and reports the schema version, and says
// what is wrong (no such database, wrong password) without the password, exiting with
// problems.
func TestCheckOnlinePostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	cfgFor := func(dsn string) string {
		return writeConfig(t, goodBase+"state: {backend: postgres, dsn: '"+dsn+"'}\n")
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "-online", "-config", cfgFor(dsn)}, &out, &out); err != nil {
		t.Fatalf("check -online: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "schema not created yet") {
		t.Errorf("empty database:\n%s", out.String())
	}

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pgPassword)
	u.Path = "/no_such_database"
	out.Reset()
	err = run(context.Background(), []string{"check", "-online", "-config", cfgFor(u.String())}, &out, &out)
	if !errors.Is(err, errOnline) || exitCode(err) != 1 || !strings.Contains(out.String(), "online: state: postgres") || strings.Contains(out.String(), pgPassword) {
		t.Errorf("bad database: %v\n%s", err, out.String())
	}
}

// A Kinetic source that sets no read_ahead reads 4 MiB ahead of an embedded store and 64 MiB
// ahead of PostgreSQL (whose commits want longer batches), whichever way the backend was
// chosen; a read_ahead in the file is kept on either.
func TestReadAheadDefaultFollowsTheBackend(t *testing.T) {
	dsn := "postgres://kdbridge:" + pgPassword + "@db.internal:5432/kdbridge?sslmode=disable"
	withReadAhead := strings.Replace(goodBase, "    discussions:", "    read_ahead: 1048576\n    discussions:", 1)
	if withReadAhead == goodBase {
		t.Fatal("the base configuration changed: no discussions line to put read_ahead before")
	}
	for _, tc := range []struct {
		name string
		file string
		over settings
		want int64
	}{
		{"bbolt by default", goodBase, settings{}, kinetic.DefaultReadAhead},
		{"postgres in the file", goodBase + "state: {backend: postgres, dsn: '" + dsn + "'}\n", settings{}, postgresReadAhead},
		{"postgres from the environment", goodBase, settings{Backend: "postgres", DSN: dsn, Replica: "pod-1"}, postgresReadAhead},
		{"set, on bbolt", withReadAhead, settings{}, 1 << 20},
		{"set, on postgres", withReadAhead, settings{Backend: "postgres", DSN: dsn, Replica: "pod-1"}, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ps := parseConfig([]byte(tc.file), lookupFrom(nil), tc.over)
			if err := ps.Err(); err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sources[0].Kinetic.ReadAhead; got != tc.want {
				t.Errorf("read_ahead %d, want %d", got, tc.want)
			}
			// check says which it is.
			if want := "discussion(s), read_ahead " + byteCount(tc.want) + "\n"; !strings.Contains(summary(cfg), want) {
				t.Errorf("check's summary lacks %q:\n%s", want, summary(cfg))
			}
		})
	}
	for n, want := range map[int64]string{4 << 20: "4 MiB", 64 << 20: "64 MiB", 1024: "1 KiB", 1536 << 10: "1536 KiB", 1500: "1500 bytes"} {
		if got := byteCount(n); got != want {
			t.Errorf("byteCount(%d) = %q, want %q", n, got, want)
		}
	}
}
