package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/bridge/store"
)

// runState is `kdbridge state copy`: it moves a single-node installation's state (bbolt) into
// PostgreSQL, for running replicas: backlog with attempts, dead letters, checkpoints, the
// Slack message map, disabled targets and de-duplication entries.
func runState(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		fmt.Fprint(stderr, "usage: kdbridge state copy -from bbolt:DIR -to postgres:DSN|-to-env VAR [-force]\n")
		return fmt.Errorf("%w: state needs copy", errUsage)
	}
	fs := newFlags("state copy", stderr)
	from := fs.String("from", "", "the state to copy: bbolt:DIR (the state directory; the daemon must be stopped)")
	to := fs.String("to", "", "the destination: postgres:DSN (the DSN then shows in the shell history and ps: prefer -to-env)")
	toEnv := fs.String("to-env", "", "the destination's DSN is in this environment variable (e.g. KDBRIDGE_STATE_DSN)")
	force := fs.Bool("force", false, "replace the kdbridge state the destination already holds (events, deliveries, dead letters, values)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	dir, ok := strings.CutPrefix(*from, "bbolt:")
	if !ok || dir == "" {
		return fmt.Errorf("%w: -from bbolt:DIR is required (copying is from bbolt to postgres)", errUsage)
	}
	var dsn string
	switch {
	case *to != "" && *toEnv != "":
		return fmt.Errorf("%w: -to or -to-env, not both", errUsage)
	case *toEnv != "":
		v, set := os.LookupEnv(*toEnv)
		if !set || v == "" {
			return fmt.Errorf("%w: -to-env: %s is not set", errUsage, *toEnv)
		}
		dsn = v
	default:
		d, ok := strings.CutPrefix(*to, "postgres:")
		if !ok || d == "" {
			return fmt.Errorf("%w: -to postgres:DSN or -to-env VAR is required", errUsage)
		}
		dsn = d
	}

	src, err := store.Open(dir, store.Options{})
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer src.Close()
	snap, err := src.Export(ctx)
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	dst, err := pgstore.Open(octx, dsn, pgstore.Options{})
	cancel()
	if err != nil {
		return fmt.Errorf("%s", pgstore.ScrubDSN(err.Error(), dsn))
	}
	defer dst.Close()
	if err := dst.Import(ctx, snap, *force); err != nil {
		if errors.Is(err, pgstore.ErrNotEmpty) {
			return fmt.Errorf("%s already holds kdbridge state: nothing copied (-force replaces it)", pgstore.RedactDSN(dsn))
		}
		return fmt.Errorf("%s", pgstore.ScrubDSN(err.Error(), dsn))
	}
	fmt.Fprintf(stdout, "copied %s to postgres %s:\n%s", dir, pgstore.RedactDSN(dsn), snap.Summary())
	return nil
}
