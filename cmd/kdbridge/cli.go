package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Set by the build: -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234".
var (
	version = "dev"
	commit  = ""
)

// errUsage marks a command-line mistake (exit code 2).
var errUsage = errors.New("usage")

// errHelp marks a -h request: the command's usage is printed and it does nothing else (exit 0).
var errHelp = errors.New("help requested")

// errProblems marks an invalid configuration (exit code 1, problems already printed).
var errProblems = errors.New("configuration has problems")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const usage = `kdbridge mirrors Kinetic Platform Discussions into Slack channels and HTTP webhooks.

Usage:
  kdbridge run -config FILE        run the daemon
  kdbridge check -config FILE      validate a configuration (no network calls; -online also asks Slack)
  kdbridge demo                    a self-contained demo: simulator, console and webhook receiver
  kdbridge simulate -listen ADDR   run the Kinetic simulator on its own
  kdbridge receive -secret whsec_…  a webhook receiver that verifies signatures and prints deliveries
  kdbridge dlq list|replay|drop -config FILE [-sink S] [-since T] [ID…]
                                   dead-lettered deliveries (daemon running or not)
  kdbridge bench [-scenario S] [-runs N] [-raw also|only|off]
                                   measure throughput, latency and memory against the simulator
  kdbridge state copy -from bbolt:DIR -to-env VAR [-force]
                                   move a single node's state into PostgreSQL (for replicas)
  kdbridge healthcheck             ask a running daemon's /healthz (exit 0 when healthy)
  kdbridge version                 print version information

Process settings may also come from KDBRIDGE_CONFIG, KDBRIDGE_STATE_DIR,
KDBRIDGE_STATE_BACKEND, KDBRIDGE_STATE_DSN, KDBRIDGE_REPLICA, KDBRIDGE_HTTP_LISTEN,
KDBRIDGE_LOG_LEVEL and KDBRIDGE_LOG_FORMAT.
`

// run is the whole program behind main, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	err := runCommand(ctx, args[0], args[1:], stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil // the command printed its usage and did nothing else
	}
	return err
}

func runCommand(ctx context.Context, cmd string, rest []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "run":
		return runDaemon(ctx, rest, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "simulate":
		return runSimulate(ctx, rest, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, stdout, stderr)
	case "receive":
		return runReceive(ctx, rest, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "state":
		return runState(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

func versionString() string {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					c = s.Value[:12]
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("kdbridge %s (commit %s, %s, %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newFlags makes a flag set that reports errors through run's error, not os.Exit.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kdbridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// configFlags are the flags of every command that reads the configuration file.
type configFlags struct {
	path, stateDir, listen, logLevel, logFormat string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "configuration file (or KDBRIDGE_CONFIG)")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory, overrides state.dir (or KDBRIDGE_STATE_DIR)")
	fs.StringVar(&c.listen, "http-listen", "", `HTTP listener, overrides http.listen; "off" disables it (or KDBRIDGE_HTTP_LISTEN)`)
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (or KDBRIDGE_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", "", "text or json (or KDBRIDGE_LOG_FORMAT)")
}

// load reads the configuration: file, then KDBRIDGE_* environment, then flags.
func (c *configFlags) load() (*Config, error) {
	s, err := envSettings()
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{
		{&s.Config, c.path}, {&s.StateDir, c.stateDir}, {&s.HTTPListen, c.listen},
		{&s.LogLevel, c.logLevel}, {&s.LogFormat, c.logFormat},
	} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	if s.Config == "" {
		return nil, fmt.Errorf("%w: -config FILE (or KDBRIDGE_CONFIG) is required", errUsage)
	}
	return loadConfig(s.Config, os.LookupEnv, s)
}
