package pgstore

import (
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/storetest"
	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// The same benchmarks as bridge/store's BenchmarkAppend and BenchmarkHeadDone, on PostgreSQL.
func BenchmarkAppend(b *testing.B) {
	storetest.BenchAppend(b, func(b *testing.B) bridge.Store { return openT(b, pgtest.DB(b)) })
}

func BenchmarkHeadDone(b *testing.B) {
	storetest.BenchHeadDone(b, func(b *testing.B) bridge.Store { return openT(b, pgtest.DB(b)) })
}
