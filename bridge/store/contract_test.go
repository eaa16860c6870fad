package store

import (
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/storetest"
)

// The store contract, shared with bridge/pgstore. The tests beside it cover what is bbolt's
// own: event bodies and their release, the Done group commit, the cache, reopening, crashes,
// upgrades.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) bridge.Store {
		return openT(t, t.TempDir(), Options{})
	})
}

// BenchmarkHeadDone is the contract's delivery benchmark, run on PostgreSQL as well
// (bridge/pgstore) for the comparison.
func BenchmarkHeadDone(b *testing.B) {
	storetest.BenchHeadDone(b, func(b *testing.B) bridge.Store { return openT(b, b.TempDir(), Options{}) })
}
