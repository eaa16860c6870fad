package main

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the container's memory limit given to the Go runtime as
// its soft limit; the rest is for what the runtime does not count (the binary, the store's
// mapped pages, thread stacks) and for the collector to catch up.
const memoryLimitRatio = 0.9

// containerMemoryLimit gives the Go runtime a soft memory limit of 90 % of the container's
// (the cgroup's) memory limit, so that near it the collector works harder instead of the
// kernel killing the process: without one the heap may grow to twice what is live before a
// collection, a burst's peak included. GOMEMLIMIT, when set, is kept; AUTOMEMLIMIT=off
// turns this off and AUTOMEMLIMIT=0.8 changes the share. Without a limit nothing changes.
func containerMemoryLimit(log *slog.Logger, provider memlimit.Provider) {
	before := debug.SetMemoryLimit(-1)
	limit, err := memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(memoryLimitRatio))
	switch {
	case errors.Is(err, memlimit.ErrCgroupsNotSupported):
		// Not Linux: no container to follow.
	case err != nil:
		log.Warn("could not read the container's memory limit; the Go runtime's is left as it was", "err", err)
	case os.Getenv("GOMEMLIMIT") != "":
		log.Info("Go memory limit from GOMEMLIMIT", "bytes", limit)
	case limit != before && limit < math.MaxInt64:
		log.Info("Go memory limit set from the container's", "bytes", limit)
	}
}
