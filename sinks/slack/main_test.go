package slack

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (an unclosed server, a
// keep-alive connection of a sink that was not closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
