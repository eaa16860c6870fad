package pgstore

import (
	"context"
	"strconv"
	"testing"

	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// A Put made after a PutLater of the same key wins, also when the committer has just taken
// the value put later and is writing it while the Put runs.
func TestPutAfterPutLaterWins(t *testing.T) {
	s := openT(t, pgtest.DB(t))
	ctx := context.Background()
	for i := range 300 {
		key := "k" + strconv.Itoa(i)
		if err := s.PutLater("cp", key, []byte("later")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "cp", key, []byte("put")); err != nil {
			t.Fatal(err)
		}
	}
	s.Flush()
	for i := range 300 {
		key := "k" + strconv.Itoa(i)
		v, ok, err := s.Get(ctx, "cp", key)
		if err != nil || !ok || string(v) != "put" {
			t.Fatalf("%s = %q (found %v, %v) after PutLater then Put, want put", key, v, ok, err)
		}
	}
}
