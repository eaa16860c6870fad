package kinetictest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every Server is closed by
// its test, and Close must stop everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
