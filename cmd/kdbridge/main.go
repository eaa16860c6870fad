// Command kdbridge mirrors Kinetic Platform Discussions into Slack channels and HTTP webhooks.
// See README.md; `kdbridge help` lists the commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kdbridge:", err)
		os.Exit(exitCode(err))
	}
}
