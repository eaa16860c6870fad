package pgstore

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/storetest"
	"github.com/kdbridge/kdbridge/internal/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(envChild); dsn != "" {
		os.Exit(runChild(dsn))
	}
	code := pgtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// openT opens a store on dsn, closed when the test ends.
func openT(t testing.TB, dsn string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, dsn, Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ev(disc string, n int) bridge.Event { return storetest.Ev(disc, n) }

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) bridge.Store { return openT(t, pgtest.DB(t)) })
}

// A value put later reaches the database by itself, and Close writes what is left.
func TestPutLaterIsWritten(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := openT(t, dsn), openT(t, dsn)
	ctx := context.Background()
	if err := a.PutLater("cp", "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, ok, err := b.Get(ctx, "cp", "k"); err != nil {
			t.Fatal(err)
		} else if ok && string(v) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the value put later was not written within 60s")
		}
		time.Sleep(10 * time.Millisecond) // polling the database, bounded by the deadline
	}
	if err := a.PutLater("cp", "k", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if v, _, err := b.Get(ctx, "cp", "k"); err != nil || string(v) != "2" {
		t.Fatalf("after Close the database holds %q, %v; want 2", v, err)
	}
	if err := a.PutLater("cp", "k", []byte("3")); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutLater after Close: %v", err)
	}
}
