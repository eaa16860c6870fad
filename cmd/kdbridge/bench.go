package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/bench"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// runBench is `kdbridge bench`: the performance measurement of issues 8 and 14. The harness
// is internal/bench; this is its command line and the daemon it measures (benchDaemon).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	scenario := fs.String("scenario", "all", "all, or a comma-separated list of: "+strings.Join(bench.Scenarios, ", "))
	runs := fs.Int("runs", 3, "runs of each scenario; the table shows medians")
	raw := benchRawFlag("also")
	fs.Var(&raw, "raw", "the raw ceiling (a client with no kdbridge in the path): also, only or off")
	stateDir := fs.String("state-dir", "", "where each run gets a fresh state directory (default: a temporary one, removed on exit)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of kdbridge to this file (suffixed .SCENARIO.RUN when several runs are profiled)")
	memProfile := fs.String("memprofile", "", "write a heap profile of kdbridge, taken at the end of each run (scale: at rest), to this file (suffixed like -cpuprofile)")
	inProcess := fs.Bool("inprocess", false, "run the system under test in this process (CPU and RSS then include the simulator and the receiver)")
	smoke := fs.Bool("smoke", false, "tiny scenarios: checks the bench itself, measures nothing")
	jsonOut := fs.String("json", "", "also write every run's figures to this file as JSON")
	logLevel := fs.String("log-level", "warn", "log level of the daemon under test (its log is shown when a run fails)")
	from := fs.String("from", "", "print the report of runs saved with -json instead of running anything")
	stateFlag := fs.String("state", "bbolt", "bbolt, or postgres: also run the kdbridge scenarios on PostgreSQL (the database in "+bench.PGEnv+"; a schema per run), beside bbolt")
	readAhead := fs.Int64("read-ahead", 0, "kdbridge's read_ahead (bytes of live events its Kinetic source reads ahead of the store); 0: its default")
	attempts := fs.String("attempts", "", "kdbridge's state.attempts.record: all or failures; empty: its default")
	listDelay := fs.Duration("list-delay", 0, "catch-up: how long the simulator takes to answer each listing of a discussion's messages, as a real Kinetic's REST latency would")
	sut := fs.String("sut", "", "internal: bench starts itself with this to run the system under test a file describes")
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return errHelp // the usage is printed; a help request is not a run
	case err != nil:
		return fmt.Errorf("%w: %v", errUsage, err)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *sut != "" {
		return bench.ChildMain(ctx, *sut, benchDaemon, stdout, stderr)
	}
	scenarios, err := bench.ParseScenarios(*scenario)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *from != "" {
		return bench.Reprint(*from, *smoke, stdout)
	}
	if *runs < 1 {
		return fmt.Errorf("%w: -runs must be at least 1", errUsage)
	}
	if _, err := parseLevel(*logLevel); err != nil {
		return fmt.Errorf("%w: -log-level: %v", errUsage, err)
	}
	pgDSN := ""
	switch *stateFlag {
	case "bbolt":
	case "postgres":
		if pgDSN = os.Getenv(bench.PGEnv); pgDSN == "" {
			return fmt.Errorf("%w: -state postgres needs %s (a database where the bench may create and drop schemas)", errUsage, bench.PGEnv)
		}
	default:
		return fmt.Errorf("%w: -state: %q is neither bbolt nor postgres", errUsage, *stateFlag)
	}
	if *listDelay < 0 {
		return fmt.Errorf("%w: -list-delay must not be negative", errUsage)
	}
	if *readAhead != 0 && (*readAhead < kinetic.MinReadAhead || *readAhead > kinetic.MaxReadAhead) {
		return fmt.Errorf("%w: -read-ahead: %d bytes is out of range (1024 to 1 TiB; 0: the default)", errUsage, *readAhead)
	}
	if *attempts != "" && *attempts != recordAll && *attempts != recordFailures {
		return fmt.Errorf("%w: -attempts: %q is not all or failures", errUsage, *attempts)
	}
	secret, err := newWebhookSecret()
	if err != nil {
		return err
	}
	return bench.Run(ctx, bench.Options{
		Scenarios: scenarios, Runs: *runs, Raw: string(raw), PGDSN: pgDSN, StateDir: *stateDir,
		CPUProfile: *cpuProfile, MemProfile: *memProfile, InProcess: *inProcess, Smoke: *smoke,
		JSON: *jsonOut, LogLevel: *logLevel, ListDelay: *listDelay, ReadAhead: *readAhead, Attempts: *attempts,
		Version: versionString(), Secret: secret,
		Daemon: benchDaemon, Child: benchChild,
	}, stdout, stderr)
}

// benchRawFlag is -raw: a boolean flag (-raw means also) that also takes "only" and "off".
type benchRawFlag string

func (f *benchRawFlag) String() string { return string(*f) }

func (f *benchRawFlag) IsBoolFlag() bool { return true }

func (f *benchRawFlag) Set(s string) error {
	switch s {
	case "also", "true":
		*f = "also"
	case "only":
		*f = "only"
	case "off", "false":
		*f = "off"
	default:
		return fmt.Errorf("%q is not also, only or off", s)
	}
	return nil
}

// benchChild starts this program again as a bench's system under test (`bench -sut FILE`).
func benchChild(specFile string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "bench", "-sut", specFile)
	// A test binary re-executes into main only with this set (see main_test.go); the real
	// binary ignores it.
	cmd.Env = append(os.Environ(), "KDBRIDGE_TEST_CHILD=1")
	return cmd
}

// benchDaemon is kdbridge as a bench scenario's system under test: the daemon's real wiring
// (serve) with benchConfig's configuration.
func benchDaemon(ctx context.Context, spec bench.Spec, logw io.Writer, ready func(addr string), observe func(bridge.Outcome)) error {
	cfg, err := benchConfig(spec)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, logw)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, daemonDeps{log: log, stdout: io.Discard, ready: ready, observe: observe})
}

// benchConfig is the daemon configuration of a scenario, built in code as the demo does: one
// Kinetic source, one webhook sink per target, one route to all of them, the durable store in
// the scenario's state directory (fsync on, as always).
func benchConfig(spec bench.Spec) (*Config, error) {
	backend := backendBolt
	if spec.DSN != "" {
		backend = backendPostgres
	}
	kc := &kinetic.Config{URL: spec.SimURL, ClientID: spec.ClientID, ClientSecret: config.Secret(spec.ClientSecret), Discussions: spec.Discussions,
		ReadAhead: spec.ReadAhead}
	if kc.ReadAhead == 0 {
		kc.ReadAhead = readAheadFor(backend) // as the daemon's configuration would have it
	}
	kc.Defaults()
	if err := kc.Validate(); err != nil {
		return nil, err
	}
	level := spec.LogLevel
	if level == "" {
		level = "info"
	}
	cfg := &Config{
		Log: logConfig{Level: level, Format: "text"},
		// The listener is on, as in a default deployment (metrics, health); nothing polls it.
		HTTP: httpConfig{Listen: "127.0.0.1:0"},
		State: stateConfig{Backend: backend, Dir: spec.StateDir, Retention: config.Duration(7 * 24 * time.Hour),
			Attempts: attemptsConfig{Record: spec.Attempts}},
		Sources: []sourceEntry{{Name: "bench", Type: "kinetic", Kinetic: kc}},
		Routes:  []bridge.RouteConfig{{Name: "all"}},
	}
	if backend == backendPostgres {
		cfg.State.DSN, cfg.State.Replica = config.Secret(spec.DSN), "bench"
	}
	for i, u := range spec.Targets {
		wc := &webhook.Config{URL: u, Secret: config.Secrets{config.Secret(spec.Secret)}}
		wc.Defaults()
		if err := wc.Validate(); err != nil {
			return nil, err
		}
		e := sinkEntry{Name: "hook" + strconv.Itoa(i), Type: "webhook", Webhook: wc}
		e.Retry.Defaults()
		cfg.Sinks = append(cfg.Sinks, e)
		cfg.Routes[0].To = append(cfg.Routes[0].To, bridge.TargetConfig{Sink: e.Name})
	}
	cfg.Routes[0].Defaults()
	return cfg, nil
}
