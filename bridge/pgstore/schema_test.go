package pgstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// Replicas that start at the same instant on an empty database all open it; the schema is
// created once.
func TestOpenConcurrentlyOnEmptyDatabase(t *testing.T) {
	dsn := pgtest.DB(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := Open(ctx, dsn, Options{MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if v, err := Probe(context.Background(), dsn); err != nil || v != SchemaVersion {
		t.Fatalf("Probe = %d, %v; want %d", v, err, SchemaVersion)
	}
	openT(t, dsn) // and again, on a migrated database
}

func TestProbeEmptyDatabase(t *testing.T) {
	if v, err := Probe(context.Background(), pgtest.DB(t)); err != nil || v != 0 {
		t.Fatalf("Probe of an empty database = %d, %v; want 0", v, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	dsn := pgtest.DB(t)
	openT(t, dsn).Close()
	pgtest.Exec(t, dsn, `UPDATE kdbridge_schema SET version = 99`)
	_, err := Open(context.Background(), dsn, Options{})
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "99") || !strings.Contains(err.Error(), fmt.Sprintf("version %d", SchemaVersion)) {
		t.Fatalf("Open of a newer schema: %v", err)
	}
	if _, err := Probe(context.Background(), dsn); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Probe of a newer schema: %v", err)
	}
}

// A role without privileges gets an error that names what to grant.
func TestRoleWithoutPrivileges(t *testing.T) {
	dsn := pgtest.DB(t)
	pgtest.Exec(t, dsn, `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kdb_nopriv') THEN CREATE ROLE kdb_nopriv LOGIN; END IF;
	END $$`)
	u := strings.Replace(dsn, "postgres://postgres@", "postgres://kdb_nopriv@", 1)
	ctx := context.Background()
	// An empty database: the role cannot create the schema.
	for _, call := range []func() error{
		func() error { _, err := Open(ctx, u, Options{}); return err },
		func() error { _, err := Probe(ctx, u); return err },
	} {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "permission denied for schema public") ||
			!strings.Contains(err.Error(), "GRANT CREATE, USAGE ON SCHEMA public") || !strings.Contains(err.Error(), "SELECT, INSERT, UPDATE, DELETE") {
			t.Fatalf("without CREATE on the schema: %v", err)
		}
	}
	// Created by another role: the tables are not granted.
	openT(t, dsn).Close()
	_, err := Open(ctx, u, Options{})
	if err == nil || !strings.Contains(err.Error(), "permission denied for table") || !strings.Contains(err.Error(), "kdbridge_events") {
		t.Fatalf("without privileges on the tables: %v", err)
	}
	// Read-only is not enough.
	pgtest.Exec(t, dsn, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO kdb_nopriv`)
	if _, err := Open(ctx, u, Options{}); err == nil || !strings.Contains(err.Error(), "permission denied for table") {
		t.Fatalf("with SELECT only: %v", err)
	}
	// Granted: it works.
	pgtest.Exec(t, dsn, `GRANT USAGE ON SCHEMA public TO kdb_nopriv;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO kdb_nopriv;
		GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO kdb_nopriv`)
	s := openT(t, u)
	if err := s.Put(ctx, "ns", "k", []byte("v")); err != nil {
		t.Fatalf("with the documented grants: %v", err)
	}
}

// Errors never show the DSN's password: a wrong host, a wrong database, a wrong password.
func TestErrorsHideThePassword(t *testing.T) {
	const pw = "s3cr3t-Pw"
	c := pgtest.StartCluster(t)
	pgtest.Exec(t, c.AdminDSN(), `ALTER ROLE postgres PASSWORD '`+pw+`'`)
	hba := filepath.Join(c.Dir, "data", "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	good := strings.Replace(c.AdminDSN(), "postgres@", "postgres:"+pw+"@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, good, Options{})
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	s.Close()
	for _, tc := range []struct{ name, dsn, want string }{
		{"wrong password", strings.Replace(good, pw, pw+"x", 1), "password authentication failed"},
		{"wrong host", strings.Replace(good, fmt.Sprintf(":%d/", c.Port), ":1/", 1), "connect"},
		{"wrong database", pgtest.WithDatabase(good, "nope"), `database "nope" does not exist`},
		{"key=value form", "host=127.0.0.1 port=1 user=postgres password=" + pw + " sslmode=disable", "connect"},
		{"unparsable", "postgres://postgres:" + pw + "@127.0.0.1:notaport/x", "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, call := range []func() error{
				func() error { _, err := Open(ctx, tc.dsn, Options{}); return err },
				func() error { _, err := Probe(ctx, tc.dsn); return err },
			} {
				err := call()
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), pw) {
					t.Fatalf("the error shows the password: %v", err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q does not say %q", err, tc.want)
				}
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:pw@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db"},
		{"postgres://u@h/db?password=pw", "postgres://u@h/db?password=xxxxx"},
		{"host=h user=u password=pw dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{"host=h password='p w\\'x' dbname=db", "host=h password=xxxxx dbname=db"},
		{"host=h dbname=db", "host=h dbname=db"},
	} {
		if got := RedactDSN(tc.in); got != tc.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Messages and errors lose the DSN's password however it is spelt, also when the DSN does
// not parse (its parse error may quote it).
func TestScrubDSN(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cretpw@h:5432/db",
		"postgres://u@h/db?password=s3cretpw",
		"host=h user=u password=s3cretpw dbname=db",
		"host=h password='s3cretpw' dbname=db",
		"postgres://u:s3cretpw@h:5432/db?connect_timeout=soon", // does not parse
	} {
		if got := ScrubDSN("failed: "+dsn, dsn); strings.Contains(got, "s3cretpw") {
			t.Errorf("ScrubDSN kept the password of %q: %s", dsn, got)
		}
	}
	_, err := Open(context.Background(), "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=soon", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cretpw") {
		t.Errorf("Open with a DSN that does not parse: %v, want an error without the password", err)
	}
}
