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

// errUnreachable marks `check -online` failing to reach a service at all (exit code 3):
// nothing is known then about the credentials, unlike when the service says no (exit 1).
var errUnreachable = errors.New("could not reach")

// errOnline marks `check -online` finding problems that the service reported (exit code 1).
var errOnline = errors.New("found online")

func exitCode(err error) int {
	switch {
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errUnreachable):
		return 3
	}
	return 1
}

const usage = `kdbridge mirrors Kinetic Platform Discussions into Slack channels and HTTP webhooks.

Usage:
  kdbridge run -config FILE        run the daemon
  kdbridge check [-config] FILE    validate a configuration (no network calls; -online also asks Slack)
  kdbridge demo                    a self-contained demo: simulator, console and webhook receiver
  kdbridge simulate -listen ADDR   run the Kinetic simulator on its own
  kdbridge receive -secret whsec_…  a webhook receiver that verifies signatures and prints deliveries
  kdbridge dlq list|replay|drop -config FILE [-sink S] [-since T] [ID…]
                                   dead-lettered deliveries (daemon running or not)
  kdbridge send-test -config FILE -sink S [-route R] [-channel C]
                                   send a marked test event through a sink; print the answer
  kdbridge bench [-scenario S] [-runs N] [-raw also|only|off]
                                   measure throughput, latency and memory against the simulator
  kdbridge state copy -from bbolt:DIR -to-env VAR [-force]
                                   move a single node's state into PostgreSQL (for replicas)
  kdbridge healthcheck             ask a running daemon's /healthz (exit 0 when healthy)
  kdbridge version                 print version information (also -v, --version)

-c is short for -config on every command that reads the configuration.

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
	case "send-test":
		return runSendTest(ctx, rest, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "state":
		return runState(ctx, rest, stdout, stderr)
	case "version":
		fs := newFlags("version", stderr)
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		fmt.Fprintln(stdout, versionString())
		return nil
	case "-v", "-version", "--version":
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
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// flagError turns an error of flag.Parse into a help request or a usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

// configFlags are the flags of every command that reads the configuration file.
type configFlags struct {
	path, stateDir, listen, logLevel, logFormat string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "configuration file (or KDBRIDGE_CONFIG)")
	fs.StringVar(&c.path, "c", "", "short for -config")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory, overrides state.dir (or KDBRIDGE_STATE_DIR)")
	fs.StringVar(&c.listen, "http-listen", "", `HTTP listener, overrides http.listen; "off" disables it (or KDBRIDGE_HTTP_LISTEN)`)
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error (or KDBRIDGE_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", "", "text or json (or KDBRIDGE_LOG_FORMAT)")
}

// load reads the configuration: flag > KDBRIDGE_* environment > file > default.
func (c *configFlags) load() (*Config, error) {
	s, err := c.settings()
	if err != nil {
		return nil, err
	}
	return loadConfig(s.Config, os.LookupEnv, s)
}

// loadProcess reads only the process settings and sink names, leniently (the dlq commands).
func (c *configFlags) loadProcess() (*Config, error) {
	s, err := c.settings()
	if err != nil {
		return nil, err
	}
	return loadProcessConfig(s.Config, os.LookupEnv, s)
}

// settings merges the KDBRIDGE_* environment and the flags, recording where each value came
// from. A bad flag value is command-line misuse (exit 2), reported with the flag's name.
func (c *configFlags) settings() (settings, error) {
	s, err := envSettings()
	if err != nil {
		return settings{}, fmt.Errorf("environment: %w", err)
	}
	s.from = map[string]string{}
	env := map[string]string{"state.dir": "KDBRIDGE_STATE_DIR", "state.backend": "KDBRIDGE_STATE_BACKEND", "state.replica": "KDBRIDGE_REPLICA", "http.listen": "KDBRIDGE_HTTP_LISTEN", "log.level": "KDBRIDGE_LOG_LEVEL", "log.format": "KDBRIDGE_LOG_FORMAT"}
	flags := map[string]struct{ name, v string }{
		"state.dir": {"state-dir", c.stateDir}, "http.listen": {"http-listen", c.listen},
		"log.level": {"log-level", c.logLevel}, "log.format": {"log-format", c.logFormat},
	}
	for _, k := range s.processKeys() {
		if *k.v != "" {
			s.from[k.key] = "environment " + env[k.key]
		}
		f := flags[k.key]
		if f.v == "" {
			continue
		}
		if check := processCheck[k.key]; check != nil {
			if err := check(f.v); err != nil {
				return settings{}, fmt.Errorf("%w: -%s: %v", errUsage, f.name, err)
			}
		}
		*k.v = f.v
		s.from[k.key] = "flag -" + f.name
	}
	if c.path != "" {
		s.Config = c.path
	}
	if s.Config == "" {
		return settings{}, fmt.Errorf("%w: -config FILE (or KDBRIDGE_CONFIG) is required", errUsage)
	}
	return s, nil
}
