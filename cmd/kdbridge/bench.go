package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// runBench is `kdbridge bench`: the performance measurement of issue 8. Each scenario starts
// the Kinetic simulator and a loopback webhook receiver in this process and the system under
// test beside them — kdbridge's real wiring (serve) with the durable store, fsync on, or the
// raw client that is the ceiling — and prints, per scenario, the medians of -runs runs.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	scenario := fs.String("scenario", "all", "all, or a comma-separated list of: "+strings.Join(benchScenarios, ", "))
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
	stateFlag := fs.String("state", "bbolt", "bbolt, or postgres: also run the kdbridge scenarios on PostgreSQL (the database in "+benchPGEnv+"; a schema per run), beside bbolt")
	readAhead := fs.Int64("read-ahead", 0, "kdbridge's read_ahead (bytes of live events its Kinetic source reads ahead of the store); 0: its default")
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
		return benchChildMain(ctx, *sut, stdout, stderr)
	}
	scenarios, err := benchParseScenarios(*scenario)
	if err != nil {
		return err
	}
	if *from != "" {
		return benchReprint(*from, *smoke, stdout)
	}
	if *runs < 1 {
		return fmt.Errorf("%w: -runs must be at least 1", errUsage)
	}
	if _, err := parseLevel(*logLevel); err != nil {
		return fmt.Errorf("%w: -log-level: %v", errUsage, err)
	}
	var modes []string
	switch raw {
	case "also":
		modes = []string{benchKdbridge, benchRaw}
	case "only":
		modes = []string{benchRaw}
	default:
		modes = []string{benchKdbridge}
	}
	pgDSN := ""
	switch *stateFlag {
	case "bbolt":
	case "postgres":
		pgDSN = os.Getenv(benchPGEnv)
		if pgDSN == "" {
			return fmt.Errorf("%w: -state postgres needs %s (a database where the bench may create and drop schemas)", errUsage, benchPGEnv)
		}
		if raw != "only" {
			modes = slices.Insert(modes, 1, benchKdbridgePG)
		}
	default:
		return fmt.Errorf("%w: -state: %q is neither bbolt nor postgres", errUsage, *stateFlag)
	}
	sizes := benchFullSizes
	if *smoke {
		sizes = benchSmokeSizes
	}
	if *listDelay < 0 {
		return fmt.Errorf("%w: -list-delay must not be negative", errUsage)
	}
	sizes.ListDelay = *listDelay
	if *readAhead != 0 && (*readAhead < 1024 || *readAhead > 1<<40) {
		return fmt.Errorf("%w: -read-ahead: %d bytes is out of range (1024 to 1 TiB; 0: the default)", errUsage, *readAhead)
	}
	sizes.ReadAhead = *readAhead
	base := *stateDir
	if base == "" {
		if base, err = os.MkdirTemp("", "kdbridge-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	} else if err := os.MkdirAll(base, 0o700); err != nil {
		return err
	}
	secret, err := newWebhookSecret()
	if err != nil {
		return err
	}

	where := "in a child process per run"
	if *inProcess {
		where = "in this process (CPU and RSS include the simulator and the receiver)"
	}
	fmt.Fprintln(stdout, "kdbridge bench")
	fmt.Fprintf(stdout, "  machine:  %d CPUs (nproc), %s, %s RAM; %s\n", runtime.NumCPU(), benchCPUModel(), benchMemTotal(), runtime.Version())
	fmt.Fprintf(stdout, "  kdbridge: %s\n", versionString())
	fmt.Fprintf(stdout, "  state:    %s (bbolt, fsync on); kdbridge runs %s\n", base, where)
	if pgDSN != "" {
		fmt.Fprintf(stdout, "  state:    %s for %s\n", benchPGDescribe(pgDSN), benchKdbridgePG)
	}
	fmt.Fprintf(stdout, "  runs:     %d per scenario; figures are medians (delivered: the worst run; duplicates, order violations: the worst run)\n\n", *runs)

	for _, f := range []string{*cpuProfile, *memProfile} {
		if f != "" {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				return err
			}
		}
	}
	profiled := 0
	if (*cpuProfile != "" || *memProfile != "") && slices.Contains(modes, benchKdbridge) {
		profiled = len(scenarios) * *runs
	}
	profileName := func(file, sc string, run int) string {
		if profiled <= 1 {
			return file
		}
		ext := filepath.Ext(file)
		return fmt.Sprintf("%s.%s.%d%s", strings.TrimSuffix(file, ext), sc, run, ext)
	}
	began := time.Now()
	var results []benchResult
	var problems []string
	for run := 1; run <= *runs; run++ {
		for _, sc := range scenarios {
			for _, mode := range modes {
				r := &benchRun{scenario: sc, mode: mode, run: run, sizes: sizes, inProcess: *inProcess,
					stateDir: filepath.Join(base, fmt.Sprintf("%s-%s-%d", sc, mode, run)), secret: secret, logLevel: *logLevel}
				if err := os.RemoveAll(r.stateDir); err != nil {
					return err
				}
				if mode == benchKdbridgePG {
					dsn, drop, err := benchPGSchema(ctx, pgDSN, fmt.Sprintf("kdbridge_bench_%s_%d", sc, run))
					if err != nil {
						return err
					}
					defer drop()
					r.dsn = dsn
				}
				if mode == benchKdbridge && *cpuProfile != "" {
					r.profile = profileName(*cpuProfile, sc, run)
				}
				if mode == benchKdbridge && *memProfile != "" {
					r.memProfile = profileName(*memProfile, sc, run)
				}
				res, err := r.do(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					res.Err = err.Error()
					problems = append(problems, fmt.Sprintf("%s/%s run %d: %v", sc, mode, run, err))
				}
				results = append(results, res)
				fmt.Fprintln(stderr, benchProgress(res))
				if *stateDir == "" {
					_ = os.RemoveAll(r.stateDir)
				}
			}
		}
	}

	benchPrint(stdout, scenarios, modes, results, sizes)
	fmt.Fprintf(stdout, "\n(%d runs in %s)\n", len(results), time.Since(began).Round(time.Second))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(stdout, "\nProblems:")
		for _, p := range problems {
			fmt.Fprintln(stdout, "  "+p)
		}
		return fmt.Errorf("%d of %d runs had problems", len(problems), len(results))
	}
	return nil
}

// benchReprint prints the report of the runs saved in file by -json.
func benchReprint(file string, smoke bool, stdout io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var results []benchResult
	if err := json.Unmarshal(b, &results); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var scenarios, modes []string
	for _, sc := range benchScenarios {
		for _, r := range results {
			if r.Scenario == sc && !slices.Contains(scenarios, sc) {
				scenarios = append(scenarios, sc)
			}
		}
	}
	for _, m := range []string{benchKdbridge, benchKdbridgePG, benchRaw} {
		for _, r := range results {
			if r.Mode == m && !slices.Contains(modes, m) {
				modes = append(modes, m)
			}
		}
	}
	sizes := benchFullSizes
	if smoke {
		sizes = benchSmokeSizes
	}
	for _, r := range results {
		sizes.ListDelay = max(sizes.ListDelay, r.ListDelay)
		sizes.ReadAhead = max(sizes.ReadAhead, r.ReadAhead)
	}
	fmt.Fprintf(stdout, "kdbridge bench: the %d runs saved in %s\n\n", len(results), file)
	benchPrint(stdout, scenarios, modes, results, sizes)
	return nil
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

func benchParseScenarios(s string) ([]string, error) {
	if s == "all" || s == "" {
		return benchScenarios, nil
	}
	var out []string
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "fan-out" {
			name = "fanout"
		}
		if name == "catch-up" {
			name = "catchup"
		}
		if !slices.Contains(benchScenarios, name) {
			return nil, fmt.Errorf("%w: unknown scenario %q (all, %s)", errUsage, name, strings.Join(benchScenarios, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

func benchCPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func benchMemTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			var kb float64
			fmt.Sscan(f[1], &kb)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "?"
}

func benchProgress(r benchResult) string {
	s := fmt.Sprintf("%-8s %-8s run %d: ", r.Scenario, r.Mode, r.Run)
	switch r.Scenario {
	case "scale":
		s += fmt.Sprintf("subscribed in %s, at rest after %s, RSS %s", benchDur(r.Subscribe), benchDur(r.Settle), benchMB(r.EndRSS))
	default:
		s += fmt.Sprintf("%d/%d delivered in %s (%.0f/s), p99 %s, CPU %.2fs", r.Delivered, r.Expected, benchDur(r.Elapsed), r.EventsPerSec, benchDur(r.P99), r.CPU.Seconds())
	}
	if r.Err != "" {
		s += " — " + strings.SplitN(r.Err, "\n", 2)[0]
	}
	if r.LogFile != "" {
		s += fmt.Sprintf(" — %d duplicates, %d out of order, %d unexpected: its log is in %s", r.Duplicates, r.OrderViolations, r.Unexpected, r.LogFile)
	}
	return s
}

// benchSummary is the median of a scenario's runs in one mode.
type benchSummary struct {
	benchResult
	runs int
}

func benchSummarize(rs []benchResult) benchSummary {
	var s benchSummary
	if len(rs) == 0 {
		return s
	}
	s.runs = len(rs)
	s.Scenario, s.Mode = rs[0].Scenario, rs[0].Mode
	med := func(f func(benchResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			return v[n/2]
		} else {
			return (v[n/2-1] + v[n/2]) / 2
		}
	}
	d := func(f func(benchResult) time.Duration) time.Duration {
		return time.Duration(med(func(r benchResult) float64 { return float64(f(r)) }))
	}
	i64 := func(f func(benchResult) int64) int64 {
		return int64(med(func(r benchResult) float64 { return float64(f(r)) }))
	}
	s.Sent = int(med(func(r benchResult) float64 { return float64(r.Sent) }))
	s.Expected = int(med(func(r benchResult) float64 { return float64(r.Expected) }))
	s.Delivered = rs[0].Delivered
	for _, r := range rs {
		s.Delivered = min(s.Delivered, r.Delivered)
		s.Duplicates = max(s.Duplicates, r.Duplicates)
		s.OrderViolations = max(s.OrderViolations, r.OrderViolations)
		s.Unexpected = max(s.Unexpected, r.Unexpected)
		s.SlowKills = max(s.SlowKills, r.SlowKills)
		s.FailedTries = max(s.FailedTries, r.FailedTries)
		s.Connections = max(s.Connections, r.Connections)
		if r.Err != "" && s.Err == "" {
			s.Err = r.Err
		}
	}
	s.Elapsed = d(func(r benchResult) time.Duration { return r.Elapsed })
	s.EventsPerSec = med(func(r benchResult) float64 { return r.EventsPerSec })
	s.PostedPerSec = med(func(r benchResult) float64 { return r.PostedPerSec })
	s.P50 = d(func(r benchResult) time.Duration { return r.P50 })
	s.P90 = d(func(r benchResult) time.Duration { return r.P90 })
	s.P99 = d(func(r benchResult) time.Duration { return r.P99 })
	s.Max = d(func(r benchResult) time.Duration { return r.Max })
	s.Subscribe = d(func(r benchResult) time.Duration { return r.Subscribe })
	s.Settle = d(func(r benchResult) time.Duration { return r.Settle })
	s.CPU = d(func(r benchResult) time.Duration { return r.CPU })
	s.CPUTotal = d(func(r benchResult) time.Duration { return r.CPUTotal })
	s.HarnessCPU = d(func(r benchResult) time.Duration { return r.HarnessCPU })
	s.PeakRSS = i64(func(r benchResult) int64 { return r.PeakRSS })
	s.PeakAnon = i64(func(r benchResult) int64 { return r.PeakAnon })
	s.EndRSS = i64(func(r benchResult) int64 { return r.EndRSS })
	s.StoreBytes = i64(func(r benchResult) int64 { return r.StoreBytes })
	s.HeapInuse = i64(func(r benchResult) int64 { return r.HeapInuse })
	s.HeapKept = i64(func(r benchResult) int64 { return r.HeapKept })
	s.StackInuse = i64(func(r benchResult) int64 { return r.StackInuse })
	s.Goroutines = i64(func(r benchResult) int64 { return r.Goroutines })
	s.LiveWaits = i64(func(r benchResult) int64 { return r.LiveWaits })
	return s
}

func benchPrint(w io.Writer, scenarios, modes []string, results []benchResult, sizes benchSizes) {
	sum := map[[2]string]benchSummary{}
	for _, sc := range scenarios {
		for _, m := range modes {
			var rs []benchResult
			for _, r := range results {
				if r.Scenario == sc && r.Mode == m {
					rs = append(rs, r)
				}
			}
			sum[[2]string{sc, m}] = benchSummarize(rs)
		}
	}
	get := func(sc, m string) (benchSummary, bool) {
		s, ok := sum[[2]string{sc, m}]
		return s, ok && s.runs > 0
	}

	desc := map[string]string{
		"burst":   fmt.Sprintf("%d msgs, %d discussions, %d posters back to back", sizes.BurstMessages, sizes.BurstDiscussions, sizes.Posters),
		"steady":  fmt.Sprintf("%d msgs/s for %s, %d discussions", sizes.SteadyRate, sizes.SteadyFor, sizes.SteadyDiscussions),
		"fanout":  fmt.Sprintf("burst to %d webhook targets", sizes.FanoutTargets),
		"scale":   fmt.Sprintf("%d discussions subscribed", sizes.ScaleDiscussions),
		"catchup": fmt.Sprintf("%d msgs in %d discussions missed while stopped", sizes.CatchupMessages, sizes.CatchupDiscussions) + listDelayNote(sizes.ListDelay),
	}
	fmt.Fprintln(w, "Results")
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, " scenario\t mode\t delivered\t dup\t order\t events/s\t × raw\t p50\t p90\t p99\t max\t time\t CPU s\t CPU/msg\t peak RSS\t peak anon\t RSS end\t store\t")
	for _, sc := range scenarios {
		for _, m := range modes {
			s, ok := get(sc, m)
			if !ok {
				continue
			}
			ratio := "—"
			if rw, ok := get(sc, benchRaw); ok && m == benchKdbridge {
				switch {
				case sc == "scale" && s.Subscribe > 0:
					ratio = fmt.Sprintf("%.2f", rw.Subscribe.Seconds()/s.Subscribe.Seconds())
				case rw.EventsPerSec > 0:
					ratio = fmt.Sprintf("%.2f", s.EventsPerSec/rw.EventsPerSec)
				}
			}
			delivered := fmt.Sprintf("%d/%d", s.Delivered, s.Expected)
			eps, lat := fmt.Sprintf("%.0f", s.EventsPerSec), [4]string{"—", "—", "—", "—"}
			if s.P50 > 0 {
				lat = [4]string{benchDur(s.P50), benchDur(s.P90), benchDur(s.P99), benchDur(s.Max)}
			}
			cpuMsg := "—"
			if s.Sent > 0 {
				cpuMsg = fmt.Sprintf("%.0fµs", float64(s.CPU.Microseconds())/float64(s.Sent))
			}
			if sc == "scale" {
				delivered, eps = "—", "—"
			}
			store := "—"
			if m == benchKdbridge {
				store = benchMB(s.StoreBytes)
			}
			fmt.Fprintf(tw, " %s\t %s\t %s\t %d\t %d\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %.2f\t %s\t %s\t %s\t %s\t %s\t\n",
				sc, m, delivered, s.Duplicates, s.OrderViolations, eps, ratio, lat[0], lat[1], lat[2], lat[3],
				benchDur(s.Elapsed), s.CPU.Seconds(), cpuMsg, benchMB(s.PeakRSS), benchMB(s.PeakAnon), benchMB(s.EndRSS), store)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\n  time: burst, steady, fanout: first post → last arrival; scale: start → all subscribed; catchup: restart → last arrival.")
	fmt.Fprintln(w, "  CPU: the system under test's, user+sys, in that window (scale: until subscribed); CPU/msg per message posted.")
	fmt.Fprintln(w, "  × raw: events/s as a fraction of the raw client's (scale: raw subscribe time / kdbridge's).")
	fmt.Fprintln(w, "  peak RSS: the kernel's (VmHWM), file pages mapped in included (the store's files, the binary); peak anon: the largest RssAnon sampled every 20 ms.")
	for _, sc := range scenarios {
		fmt.Fprintf(w, "  %-8s %s\n", sc+":", desc[sc])
	}
	if sizes.ReadAhead > 0 {
		fmt.Fprintf(w, "  kdbridge: its Kinetic source's read_ahead set to %d bytes (-read-ahead)\n", sizes.ReadAhead)
	}
	var waits []string
	for _, sc := range scenarios {
		if s, ok := get(sc, benchKdbridge); ok && s.LiveWaits > 0 {
			waits = append(waits, fmt.Sprintf("%s %d", sc, s.LiveWaits))
		}
	}
	if len(waits) > 0 {
		fmt.Fprintf(w, "  kdbridge: reading waited for the store (kdbridge_source_live_waits_total, medians): %s\n", strings.Join(waits, ", "))
	}
	if s, ok := get("scale", benchKdbridge); ok {
		fmt.Fprintf(w, "  scale kdbridge: at rest (catch-ups done) %s after start; CPU to rest %.2fs", benchDur(s.Settle), s.CPUTotal.Seconds())
		if s.HeapInuse > 0 {
			fmt.Fprintf(w, "; at rest: Go heap in use %s, freed heap not yet returned to the OS %s, stacks %s, %d goroutines",
				benchMB(s.HeapInuse), benchMB(s.HeapKept), benchMB(s.StackInuse), s.Goroutines)
		}
		fmt.Fprintln(w)
	}
	var load []string
	for _, sc := range []string{"burst", "steady", "fanout"} {
		for _, m := range modes {
			if s, ok := get(sc, m); ok && s.Elapsed > 0 && s.HarnessCPU > 0 {
				load = append(load, fmt.Sprintf("%s/%s %.2f + %.2f", sc, m, s.CPU.Seconds()/s.Elapsed.Seconds(), s.HarnessCPU.Seconds()/s.Elapsed.Seconds()))
			}
		}
	}
	if len(load) > 0 {
		fmt.Fprintf(w, "  cores busy in the window (system under test + simulator, posters and receiver), of %d: %s\n", runtime.NumCPU(), strings.Join(load, "; "))
	}
	for _, sc := range scenarios {
		for _, m := range modes {
			if s, ok := get(sc, m); ok && (s.SlowKills > 0 || s.Unexpected > 0 || s.FailedTries > 0) {
				fmt.Fprintf(w, "  %s/%s: %d slow-consumer disconnects, %d unexpected deliveries, %d failed attempts (worst run)\n",
					sc, m, s.SlowKills, s.Unexpected, s.FailedTries)
			}
		}
	}

	// The targets of issue 8.
	type target struct {
		name, got, ceiling string
		met                bool
	}
	var ts []target
	check := func(ok bool, s benchSummary) bool {
		return ok && s.Err == "" && s.OrderViolations == 0 && s.Delivered == s.Expected
	}
	if s, ok := get("burst", benchKdbridge); ok {
		ts = append(ts, target{"burst ≥ 10,000 events/s, durable, in order", fmt.Sprintf("%.0f/s, %d order violations", s.EventsPerSec, s.OrderViolations), "", check(s.EventsPerSec >= 10000, s)})
		if rw, ok := get("burst", benchRaw); ok && rw.EventsPerSec > 0 {
			r := s.EventsPerSec / rw.EventsPerSec
			ts = append(ts, target{"burst ≥ 0.5× the raw ceiling", fmt.Sprintf("%.2f×", r), fmt.Sprintf("raw %.0f/s", rw.EventsPerSec), r >= 0.5})
		}
	}
	if s, ok := get("steady", benchKdbridge); ok {
		ts = append(ts, target{"steady 1,000/s: p99 ≤ 20ms", benchDur(s.P99), benchRawCol(get("steady", benchRaw))(func(r benchSummary) string { return benchDur(r.P99) }), check(s.P99 <= 20*time.Millisecond, s)})
		ts = append(ts, target{"steady 1,000/s: max ≤ 100ms", benchDur(s.Max), benchRawCol(get("steady", benchRaw))(func(r benchSummary) string { return benchDur(r.Max) }), check(s.Max <= 100*time.Millisecond, s)})
	}
	if s, ok := get("scale", benchKdbridge); ok {
		ts = append(ts, target{"scale: 10,000 subscribed ≤ 5s", benchDur(s.Subscribe), benchRawCol(get("scale", benchRaw))(func(r benchSummary) string { return benchDur(r.Subscribe) }), s.Err == "" && s.Subscribe <= 5*time.Second})
		ts = append(ts, target{"scale: ≤ 80 MB RSS at rest", benchMB(s.EndRSS), benchRawCol(get("scale", benchRaw))(func(r benchSummary) string { return benchMB(r.EndRSS) }), s.Err == "" && s.EndRSS <= 80<<20})
	}
	if s, ok := get("catchup", benchKdbridge); ok {
		ts = append(ts, target{"catch-up: 50,000 missed delivered ≤ 15s", benchDur(s.Elapsed), benchRawCol(get("catchup", benchRaw))(func(r benchSummary) string { return benchDur(r.Elapsed) }), check(s.Elapsed <= 15*time.Second, s)})
	}
	if f, ok := get("fanout", benchKdbridge); ok {
		if b, ok := get("burst", benchKdbridge); ok && b.CPUPerEvent() > 0 {
			r := float64(f.CPUPerEvent()) / float64(b.CPUPerEvent())
			ceiling := ""
			if rf, ok := get("fanout", benchRaw); ok {
				if rb, ok := get("burst", benchRaw); ok && rb.CPUPerEvent() > 0 {
					ceiling = fmt.Sprintf("%.2f× (%s vs %s)", float64(rf.CPUPerEvent())/float64(rb.CPUPerEvent()), benchMicros(rf.CPUPerEvent()), benchMicros(rb.CPUPerEvent()))
				}
			}
			ts = append(ts, target{"fan-out ×3: ≤ 2× single-target CPU/event", fmt.Sprintf("%.2f× (%s vs %s)", r, benchMicros(f.CPUPerEvent()), benchMicros(b.CPUPerEvent())), ceiling, check(r <= 2, f)})
		}
	}
	// The targets of issue 12: the PostgreSQL backend beside bbolt.
	if p, ok := get("burst", benchKdbridgePG); ok {
		if b, ok := get("burst", benchKdbridge); ok && b.EventsPerSec > 0 {
			r := p.EventsPerSec / b.EventsPerSec
			ts = append(ts, target{"postgres burst ≥ 0.5× bbolt's (issue 12)", fmt.Sprintf("%.0f/s = %.2f× bbolt's %.0f/s", p.EventsPerSec, r, b.EventsPerSec), "", check(r >= 0.5, p)})
		}
	}
	if p, ok := get("steady", benchKdbridgePG); ok {
		ts = append(ts, target{"postgres steady: p99 ≤ 50ms (issue 12)", benchDur(p.P99), "", check(p.P99 <= 50*time.Millisecond, p)})
	}
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTargets (issue 8)")
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " target\t kdbridge\t raw ceiling\t verdict\t")
	for _, t := range ts {
		verdict := "MISSED"
		if t.met {
			verdict = "met"
		}
		if t.ceiling == "" {
			t.ceiling = "—"
		}
		fmt.Fprintf(tw, " %s\t %s\t %s\t %s\t\n", t.name, t.got, t.ceiling, verdict)
	}
	tw.Flush()
}

// benchRawCol formats a raw figure when there is one.
func benchRawCol(s benchSummary, ok bool) func(func(benchSummary) string) string {
	return func(f func(benchSummary) string) string {
		if !ok {
			return ""
		}
		return f(s)
	}
}

func benchDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func benchMicros(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

func benchMB(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

// listDelayNote is the catch-up's description's mention of -list-delay, if any.
func listDelayNote(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf(", each listing of messages answered after %s", d)
}
