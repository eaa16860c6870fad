package pgstore

import (
	"context"
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
