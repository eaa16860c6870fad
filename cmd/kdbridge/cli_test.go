package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestHelpDoesNothingElse: `kdbridge CMD -h` prints the command's flags and exits 0 without
// running the command (a demo, a daemon or a bench started by -h would surprise anyone).
func TestHelpDoesNothingElse(t *testing.T) {
	for _, cmd := range []string{"run", "check", "demo", "simulate", "receive", "healthcheck", "bench", "dlq", "dlq list", "dlq replay", "dlq drop", "version"} {
		t.Run(cmd, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append(strings.Fields(cmd), "-h")
			start := time.Now()
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("kdbridge %s -h: %v (want success)", cmd, err)
			}
			if ctx.Err() != nil {
				t.Fatalf("kdbridge %s -h ran until the deadline (%v): it started the command", cmd, time.Since(start))
			}
			if !strings.Contains(stderr.String(), "Usage of kdbridge") {
				t.Errorf("kdbridge %s -h printed no usage; stderr:\n%s", cmd, stderr.String())
			}
		})
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, &stderr, &stderr)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("unknown command: err=%v exit=%d, want a usage error (exit 2)", err, exitCode(err))
	}
}
