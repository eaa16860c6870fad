package main

import (
	"os"
	"testing"

	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// TestMain lets a test run the real kdbridge binary as a child process: the test binary
// re-executes itself with KDBRIDGE_TEST_CHILD=1 and the kdbridge arguments, and main runs.
func TestMain(m *testing.M) {
	if os.Getenv("KDBRIDGE_TEST_CHILD") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(pgtest.Main(m))
}
