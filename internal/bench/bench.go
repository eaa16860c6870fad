// Package bench is the harness of `kdbridge bench`, the performance measurement of issues 8
// and 14. Each scenario starts the Kinetic simulator and a loopback webhook receiver in this
// process and the system under test beside them — kdbridge's real wiring, with its durable
// store and fsync on, or the raw client that is the ceiling (raw.go) — measures it from the
// outside, and prints, per scenario, the medians of its runs.
//
// The harness does not know how kdbridge is wired: the command gives it a Daemon, which runs
// kdbridge for a Spec, and a way to start this program again as a child (ChildMain), so that
// a system under test's CPU time and memory are its own.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// Daemon runs kdbridge as a scenario's system under test until ctx ends: the real wiring,
// configured for spec (one Kinetic source, one webhook sink per target, the store in
// spec.StateDir or spec.DSN), logging to log. It calls ready once it is up, with its HTTP
// listener's address, and observe with the outcome of every delivery.
type Daemon func(ctx context.Context, spec Spec, log io.Writer, ready func(addr string), observe func(bridge.Outcome)) error

// Options are a bench invocation's, as `kdbridge bench` parsed them from its flags.
type Options struct {
	Scenarios []string // from ParseScenarios
	Runs      int      // runs of each scenario, at least 1
	Raw       string   // the raw ceiling: "also", "only" or "off"
	PGDSN     string   // non-empty: kdbridge also runs on PostgreSQL here, a schema per run
	StateDir  string   // where each run gets a fresh state directory; "": a temporary one
	// CPUProfile and MemProfile are files for kdbridge's profiles ("": none), suffixed
	// .SCENARIO.RUN when several runs are profiled.
	CPUProfile, MemProfile string
	InProcess              bool          // the system under test runs in this process
	Smoke                  bool          // tiny scenarios (SmokeSizes)
	JSON                   string        // also write every run's figures to this file
	LogLevel               string        // the daemon's log level
	ListDelay              time.Duration // catch-up: the simulator's delay answering a listing of messages
	ReadAhead              int64         // kdbridge's read_ahead; 0: its default
	Attempts               string        // kdbridge's state.attempts.record; "": its default
	Version                string        // kdbridge's version, for the report's header
	Secret                 string        // the webhook sinks' signing secret

	Daemon Daemon
	// Child returns the command that runs this program as ChildMain(specFile): a system
	// under test in its own process.
	Child func(specFile string) *exec.Cmd
}

// Run runs every scenario Runs times in each mode and prints the report to stdout (each
// run's progress to stderr). It fails if any run had a problem, after reporting them all.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	var modes []string
	switch o.Raw {
	case "also":
		modes = []string{ModeKdbridge, ModeRaw}
	case "only":
		modes = []string{ModeRaw}
	default:
		modes = []string{ModeKdbridge}
	}
	if o.PGDSN != "" && o.Raw != "only" {
		modes = slices.Insert(modes, 1, ModeKdbridgePG)
	}
	switch {
	case o.Raw != "only" && o.Daemon == nil:
		return errors.New("bench: no Daemon to run kdbridge with")
	case !o.InProcess && o.Child == nil:
		return errors.New("bench: no Child command to run a system under test in its own process")
	}
	sizes := fullSizes
	if o.Smoke {
		sizes = SmokeSizes
	}
	sizes.ListDelay, sizes.ReadAhead, sizes.Attempts = o.ListDelay, o.ReadAhead, o.Attempts
	base := o.StateDir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "kdbridge-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	} else if err := os.MkdirAll(base, 0o700); err != nil {
		return err
	}

	where := "in a child process per run"
	if o.InProcess {
		where = "in this process (CPU and RSS include the simulator and the receiver)"
	}
	fmt.Fprintln(stdout, "kdbridge bench")
	fmt.Fprintf(stdout, "  machine:  %d CPUs (nproc), %s, %s RAM; %s\n", runtime.NumCPU(), cpuModel(), memTotal(), runtime.Version())
	fmt.Fprintf(stdout, "  kdbridge: %s\n", o.Version)
	fmt.Fprintf(stdout, "  state:    %s (bbolt, fsync on); kdbridge runs %s\n", base, where)
	if o.PGDSN != "" {
		fmt.Fprintf(stdout, "  state:    %s for %s\n", pgDescribe(o.PGDSN), ModeKdbridgePG)
	}
	fmt.Fprintf(stdout, "  runs:     %d per scenario; figures are medians (delivered: the worst run; duplicates, order violations: the worst run)\n\n", o.Runs)

	for _, f := range []string{o.CPUProfile, o.MemProfile} {
		if f != "" {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				return err
			}
		}
	}
	profiled := 0
	if (o.CPUProfile != "" || o.MemProfile != "") && slices.Contains(modes, ModeKdbridge) {
		profiled = len(o.Scenarios) * o.Runs
	}
	profileName := func(file, sc string, run int) string {
		if profiled <= 1 {
			return file
		}
		ext := filepath.Ext(file)
		return fmt.Sprintf("%s.%s.%d%s", strings.TrimSuffix(file, ext), sc, run, ext)
	}
	sys := systems{daemon: o.Daemon, child: o.Child}
	began := time.Now()
	var results []Result
	var problems []string
	for run := 1; run <= o.Runs; run++ {
		for _, sc := range o.Scenarios {
			for _, mode := range modes {
				r := &scenarioRun{scenario: sc, mode: mode, run: run, sizes: sizes, inProcess: o.InProcess, sys: sys,
					stateDir: filepath.Join(base, fmt.Sprintf("%s-%s-%d", sc, mode, run)), secret: o.Secret, logLevel: o.LogLevel}
				if err := os.RemoveAll(r.stateDir); err != nil {
					return err
				}
				if mode == ModeKdbridgePG {
					dsn, drop, err := pgSchema(ctx, o.PGDSN, fmt.Sprintf("kdbridge_bench_%s_%d", sc, run))
					if err != nil {
						return err
					}
					defer drop()
					r.dsn = dsn
				}
				if mode == ModeKdbridge && o.CPUProfile != "" {
					r.profile = profileName(o.CPUProfile, sc, run)
				}
				if mode == ModeKdbridge && o.MemProfile != "" {
					r.memProfile = profileName(o.MemProfile, sc, run)
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
				fmt.Fprintln(stderr, progress(res))
				if o.StateDir == "" {
					_ = os.RemoveAll(r.stateDir)
				}
			}
		}
	}

	printReport(stdout, o.Scenarios, modes, results, sizes)
	fmt.Fprintf(stdout, "\n(%d runs in %s)\n", len(results), time.Since(began).Round(time.Second))
	if o.JSON != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.JSON, b, 0o644); err != nil {
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

// Reprint prints the report of the runs saved in file by -json.
func Reprint(file string, smoke bool, stdout io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var results []Result
	if err := json.Unmarshal(b, &results); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var scenarios, modes []string
	for _, sc := range Scenarios {
		for _, r := range results {
			if r.Scenario == sc && !slices.Contains(scenarios, sc) {
				scenarios = append(scenarios, sc)
			}
		}
	}
	for _, m := range []string{ModeKdbridge, ModeKdbridgePG, ModeRaw} {
		for _, r := range results {
			if r.Mode == m && !slices.Contains(modes, m) {
				modes = append(modes, m)
			}
		}
	}
	sizes := fullSizes
	if smoke {
		sizes = SmokeSizes
	}
	for _, r := range results {
		sizes.ListDelay = max(sizes.ListDelay, r.ListDelay)
		sizes.ReadAhead = max(sizes.ReadAhead, r.ReadAhead)
		if r.Attempts != "" {
			sizes.Attempts = r.Attempts
		}
	}
	fmt.Fprintf(stdout, "kdbridge bench: the %d runs saved in %s\n\n", len(results), file)
	printReport(stdout, scenarios, modes, results, sizes)
	return nil
}

// ParseScenarios reads -scenario: "all" (or ""), or a comma-separated list of Scenarios
// ("fan-out" and "catch-up" are accepted too), each once, in the order given.
func ParseScenarios(s string) ([]string, error) {
	if s == "all" || s == "" {
		return Scenarios, nil
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
		if !slices.Contains(Scenarios, name) {
			return nil, fmt.Errorf("unknown scenario %q (all, %s)", name, strings.Join(Scenarios, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

func cpuModel() string {
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

func memTotal() string {
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

func progress(r Result) string {
	s := fmt.Sprintf("%-8s %-8s run %d: ", r.Scenario, r.Mode, r.Run)
	switch r.Scenario {
	case "scale":
		s += fmt.Sprintf("subscribed in %s, at rest after %s, RSS %s", dur(r.Subscribe), dur(r.Settle), mb(r.EndRSS))
	default:
		s += fmt.Sprintf("%d/%d delivered in %s (%.0f/s), p99 %s, CPU %.2fs", r.Delivered, r.Expected, dur(r.Elapsed), r.EventsPerSec, dur(r.P99), r.CPU.Seconds())
	}
	if r.Err != "" {
		s += " — " + strings.SplitN(r.Err, "\n", 2)[0]
	}
	if r.LogFile != "" {
		s += fmt.Sprintf(" — %d duplicates, %d out of order, %d unexpected: its log is in %s", r.Duplicates, r.OrderViolations, r.Unexpected, r.LogFile)
	}
	return s
}

// summary is the median of a scenario's runs in one mode.
type summary struct {
	Result
	runs int
}

func summarize(rs []Result) summary {
	var s summary
	if len(rs) == 0 {
		return s
	}
	s.runs = len(rs)
	s.Scenario, s.Mode = rs[0].Scenario, rs[0].Mode
	med := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	d := func(f func(Result) time.Duration) time.Duration {
		return time.Duration(med(func(r Result) float64 { return float64(f(r)) }))
	}
	i64 := func(f func(Result) int64) int64 {
		return int64(med(func(r Result) float64 { return float64(f(r)) }))
	}
	s.Sent = int(med(func(r Result) float64 { return float64(r.Sent) }))
	s.Expected = int(med(func(r Result) float64 { return float64(r.Expected) }))
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
	s.Elapsed = d(func(r Result) time.Duration { return r.Elapsed })
	s.EventsPerSec = med(func(r Result) float64 { return r.EventsPerSec })
	s.PostedPerSec = med(func(r Result) float64 { return r.PostedPerSec })
	s.P50 = d(func(r Result) time.Duration { return r.P50 })
	s.P90 = d(func(r Result) time.Duration { return r.P90 })
	s.P99 = d(func(r Result) time.Duration { return r.P99 })
	s.Max = d(func(r Result) time.Duration { return r.Max })
	s.Subscribe = d(func(r Result) time.Duration { return r.Subscribe })
	s.Settle = d(func(r Result) time.Duration { return r.Settle })
	s.CPU = d(func(r Result) time.Duration { return r.CPU })
	s.CPUTotal = d(func(r Result) time.Duration { return r.CPUTotal })
	s.HarnessCPU = d(func(r Result) time.Duration { return r.HarnessCPU })
	s.PeakRSS = i64(func(r Result) int64 { return r.PeakRSS })
	s.PeakAnon = i64(func(r Result) int64 { return r.PeakAnon })
	s.EndRSS = i64(func(r Result) int64 { return r.EndRSS })
	s.StoreBytes = i64(func(r Result) int64 { return r.StoreBytes })
	s.HeapInuse = i64(func(r Result) int64 { return r.HeapInuse })
	s.HeapKept = i64(func(r Result) int64 { return r.HeapKept })
	s.StackInuse = i64(func(r Result) int64 { return r.StackInuse })
	s.Goroutines = i64(func(r Result) int64 { return r.Goroutines })
	s.LiveWaits = i64(func(r Result) int64 { return r.LiveWaits })
	s.StoreCommits = i64(func(r Result) int64 { return r.StoreCommits })
	s.PagesWritten = i64(func(r Result) int64 { return r.PagesWritten })
	return s
}

// median is the middle of v (the mean of the two middle values for an even count); it sorts v.
func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	}
	n := len(v)
	return (v[n/2-1] + v[n/2]) / 2
}

// rawRatio is kdbridge against the raw client in a scenario, run by run — each kdbridge run
// against the raw client's run of the same number, made right after it in the same
// invocation, so that both meet the same moment of a shared machine — and the median of
// those ratios: events/s over the raw client's, or for scale the raw client's time to
// subscribe over kdbridge's. ok is false without a pair.
func rawRatio(results []Result, sc string) (ratio float64, ok bool) {
	raw := map[int]Result{}
	for _, r := range results {
		if r.Scenario == sc && r.Mode == ModeRaw {
			raw[r.Run] = r
		}
	}
	var rs []float64
	for _, r := range results {
		w, paired := raw[r.Run]
		if r.Scenario != sc || r.Mode != ModeKdbridge || !paired {
			continue
		}
		switch {
		case sc == "scale" && r.Subscribe > 0 && w.Subscribe > 0:
			rs = append(rs, w.Subscribe.Seconds()/r.Subscribe.Seconds())
		case sc != "scale" && w.EventsPerSec > 0:
			rs = append(rs, r.EventsPerSec/w.EventsPerSec)
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

func printReport(w io.Writer, scenarios, modes []string, results []Result, sizes Sizes) {
	sum := map[[2]string]summary{}
	for _, sc := range scenarios {
		for _, m := range modes {
			var rs []Result
			for _, r := range results {
				if r.Scenario == sc && r.Mode == m {
					rs = append(rs, r)
				}
			}
			sum[[2]string{sc, m}] = summarize(rs)
		}
	}
	get := func(sc, m string) (summary, bool) {
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
			if r, ok := rawRatio(results, sc); ok && m == ModeKdbridge {
				ratio = fmt.Sprintf("%.2f", r)
			}
			delivered := fmt.Sprintf("%d/%d", s.Delivered, s.Expected)
			eps, lat := fmt.Sprintf("%.0f", s.EventsPerSec), [4]string{"—", "—", "—", "—"}
			if s.P50 > 0 {
				lat = [4]string{dur(s.P50), dur(s.P90), dur(s.P99), dur(s.Max)}
			}
			cpuMsg := "—"
			if s.Sent > 0 {
				cpuMsg = fmt.Sprintf("%.0fµs", float64(s.CPU.Microseconds())/float64(s.Sent))
			}
			if sc == "scale" {
				delivered, eps = "—", "—"
			}
			store := "—"
			if m == ModeKdbridge {
				store = mb(s.StoreBytes)
			}
			fmt.Fprintf(tw, " %s\t %s\t %s\t %d\t %d\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %.2f\t %s\t %s\t %s\t %s\t %s\t\n",
				sc, m, delivered, s.Duplicates, s.OrderViolations, eps, ratio, lat[0], lat[1], lat[2], lat[3],
				dur(s.Elapsed), s.CPU.Seconds(), cpuMsg, mb(s.PeakRSS), mb(s.PeakAnon), mb(s.EndRSS), store)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\n  time: burst, steady, fanout: first post → last arrival; scale: start → all subscribed; catchup: restart → last arrival.")
	fmt.Fprintln(w, "  CPU: the system under test's, user+sys, in that window (scale: until subscribed); CPU/msg per message posted.")
	fmt.Fprintln(w, "  × raw: events/s as a fraction of the raw client's run of the same number, right after it (scale: raw subscribe time / kdbridge's); the median of the runs' ratios.")
	fmt.Fprintln(w, "  peak RSS: the kernel's (VmHWM), file pages mapped in included (the store's files, the binary); peak anon: the largest RssAnon sampled every 20 ms.")
	for _, sc := range scenarios {
		fmt.Fprintf(w, "  %-8s %s\n", sc+":", desc[sc])
	}
	if sizes.ReadAhead > 0 {
		fmt.Fprintf(w, "  kdbridge: its Kinetic source's read_ahead set to %d bytes (-read-ahead)\n", sizes.ReadAhead)
	}
	if sizes.Attempts != "" {
		fmt.Fprintf(w, "  kdbridge: state.attempts.record set to %s (-attempts)\n", sizes.Attempts)
	}
	var waits []string
	for _, sc := range scenarios {
		if s, ok := get(sc, ModeKdbridge); ok && s.LiveWaits > 0 {
			waits = append(waits, fmt.Sprintf("%s %d", sc, s.LiveWaits))
		}
	}
	if len(waits) > 0 {
		fmt.Fprintf(w, "  kdbridge: reading waited for the store (kdbridge_source_live_waits_total, medians): %s\n", strings.Join(waits, ", "))
	}
	var disk []string
	for _, sc := range scenarios {
		if s, ok := get(sc, ModeKdbridge); ok && s.StoreCommits > 0 && s.Sent > 0 {
			disk = append(disk, fmt.Sprintf("%s %d commits, %d pages = %.2f a message, %.0f a commit", sc, s.StoreCommits, s.PagesWritten,
				float64(s.PagesWritten)/float64(s.Sent), float64(s.PagesWritten)/float64(s.StoreCommits)))
		}
	}
	if len(disk) > 0 {
		fmt.Fprintf(w, "  kdbridge's store, kdbridge.db (its metrics at the end of a run, medians): %s\n", strings.Join(disk, "; "))
	}
	if s, ok := get("scale", ModeKdbridge); ok {
		fmt.Fprintf(w, "  scale kdbridge: at rest (catch-ups done) %s after start; CPU to rest %.2fs", dur(s.Settle), s.CPUTotal.Seconds())
		if s.HeapInuse > 0 {
			fmt.Fprintf(w, "; at rest: Go heap in use %s, freed heap not yet returned to the OS %s, stacks %s, %d goroutines",
				mb(s.HeapInuse), mb(s.HeapKept), mb(s.StackInuse), s.Goroutines)
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
	var ts []target
	check := func(ok bool, s summary) bool {
		return ok && s.Err == "" && s.OrderViolations == 0 && s.Delivered == s.Expected
	}
	if s, ok := get("burst", ModeKdbridge); ok {
		ts = append(ts, target{"burst ≥ 10,000 events/s, durable, in order", fmt.Sprintf("%.0f/s, %d order violations", s.EventsPerSec, s.OrderViolations), "", check(s.EventsPerSec >= 10000, s)})
		if rw, ok := get("burst", ModeRaw); ok {
			if r, ok := rawRatio(results, "burst"); ok {
				ts = append(ts, target{"burst ≥ 0.5× the raw ceiling", fmt.Sprintf("%.2f×", r), fmt.Sprintf("raw %.0f/s", rw.EventsPerSec), r >= 0.5})
			}
		}
	}
	if s, ok := get("steady", ModeKdbridge); ok {
		ts = append(ts, target{"steady 1,000/s: p99 ≤ 20ms", dur(s.P99), rawCol(get("steady", ModeRaw))(func(r summary) string { return dur(r.P99) }), check(s.P99 <= 20*time.Millisecond, s)})
		ts = append(ts, target{"steady 1,000/s: max ≤ 100ms", dur(s.Max), rawCol(get("steady", ModeRaw))(func(r summary) string { return dur(r.Max) }), check(s.Max <= 100*time.Millisecond, s)})
	}
	if s, ok := get("scale", ModeKdbridge); ok {
		ts = append(ts, target{"scale: 10,000 subscribed ≤ 5s", dur(s.Subscribe), rawCol(get("scale", ModeRaw))(func(r summary) string { return dur(r.Subscribe) }), s.Err == "" && s.Subscribe <= 5*time.Second})
		ts = append(ts, target{"scale: ≤ 80 MB RSS at rest", mb(s.EndRSS), rawCol(get("scale", ModeRaw))(func(r summary) string { return mb(r.EndRSS) }), s.Err == "" && s.EndRSS <= 80<<20})
	}
	if s, ok := get("catchup", ModeKdbridge); ok {
		ts = append(ts, target{"catch-up: 50,000 missed delivered ≤ 15s", dur(s.Elapsed), rawCol(get("catchup", ModeRaw))(func(r summary) string { return dur(r.Elapsed) }), check(s.Elapsed > 0 && s.Elapsed <= 15*time.Second, s)})
	}
	if f, ok := get("fanout", ModeKdbridge); ok {
		if b, ok := get("burst", ModeKdbridge); ok && b.CPUPerEvent() > 0 {
			r := float64(f.CPUPerEvent()) / float64(b.CPUPerEvent())
			ceiling := ""
			if rf, ok := get("fanout", ModeRaw); ok {
				if rb, ok := get("burst", ModeRaw); ok && rb.CPUPerEvent() > 0 {
					ceiling = fmt.Sprintf("%.2f× (%s vs %s)", float64(rf.CPUPerEvent())/float64(rb.CPUPerEvent()), micros(rf.CPUPerEvent()), micros(rb.CPUPerEvent()))
				}
			}
			ts = append(ts, target{"fan-out ×3: ≤ 2× single-target CPU/event", fmt.Sprintf("%.2f× (%s vs %s)", r, micros(f.CPUPerEvent()), micros(b.CPUPerEvent())), ceiling, check(r <= 2, f)})
		}
	}
	// The targets of issue 12: the PostgreSQL backend beside bbolt.
	if p, ok := get("burst", ModeKdbridgePG); ok {
		if b, ok := get("burst", ModeKdbridge); ok && b.EventsPerSec > 0 {
			r := p.EventsPerSec / b.EventsPerSec
			ts = append(ts, target{"postgres burst ≥ 0.5× bbolt's (issue 12)", fmt.Sprintf("%.0f/s = %.2f× bbolt's %.0f/s", p.EventsPerSec, r, b.EventsPerSec), "", check(r >= 0.5, p)})
		}
	}
	if p, ok := get("steady", ModeKdbridgePG); ok {
		ts = append(ts, target{"postgres steady: p99 ≤ 50ms (issue 12)", dur(p.P99), "", check(p.P99 <= 50*time.Millisecond, p)})
	}
	printTargets(w, "Targets (issue 8)", ts)
	printTargets(w, "Targets (issue 14: × raw as in the table, each run against the raw client's; MB = 10⁶ bytes)", issue14Targets(get, func(sc string) (float64, bool) { return rawRatio(results, sc) }))
}

// target is a line of a report's targets: what kdbridge did, the raw client's figure beside
// it, and whether the target was met.
type target struct {
	name, got, ceiling string
	met                bool
}

func printTargets(w io.Writer, title string, ts []target) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+title)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
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

// issue14Targets are the targets of issue 14 that the runs in get measured. A target that is
// a ratio to the raw client is there only when the raw client ran in the same invocation.
func issue14Targets(get func(scenario, mode string) (summary, bool), ratioOf func(scenario string) (float64, bool)) []target {
	var ts []target
	// whole: nothing lost, duplicated or out of order, and no error.
	whole := func(s summary) bool {
		return s.Err == "" && s.Delivered == s.Expected && s.Duplicates == 0 && s.OrderViolations == 0
	}
	ratio := func(sc string, want float64) (target, bool) {
		k, ok := get(sc, ModeKdbridge)
		rw, rok := get(sc, ModeRaw)
		r, pok := ratioOf(sc)
		if !ok || !rok || !pok {
			return target{}, false
		}
		return target{got: fmt.Sprintf("%.2f× (%.0f/s)", r, k.EventsPerSec), ceiling: fmt.Sprintf("%.0f/s", rw.EventsPerSec), met: r >= want && whole(k)}, true
	}
	peak := func(sc string, limitMB int64) (target, bool) {
		k, ok := get(sc, ModeKdbridge)
		if !ok {
			return target{}, false
		}
		return target{name: fmt.Sprintf("%s peak RSS ≤ %d MB", sc, limitMB), got: megabytes(k.PeakRSS),
			met: k.Err == "" && k.PeakRSS > 0 && k.PeakRSS <= limitMB*1e6}, true
	}
	if t, ok := ratio("burst", 0.7); ok {
		k, _ := get("burst", ModeKdbridge)
		t.name, t.met = "burst ≥ 0.7× raw and ≥ 11,000/s, nothing lost, duplicated or reordered", t.met && k.EventsPerSec >= 11000
		ts = append(ts, t)
	}
	if t, ok := peak("burst", 80); ok {
		ts = append(ts, t)
	}
	if t, ok := ratio("catchup", 0.5); ok {
		t.name = "catchup ≥ 0.5× raw"
		ts = append(ts, t)
	}
	if t, ok := peak("catchup", 100); ok {
		ts = append(ts, t)
	}
	if t, ok := ratio("fanout", 0.6); ok {
		t.name = "fanout ×3 ≥ 0.6× raw deliveries/s"
		ts = append(ts, t)
		f, _ := get("fanout", ModeKdbridge)
		b, bok := get("burst", ModeKdbridge)
		rf, _ := get("fanout", ModeRaw)
		rb, rbok := get("burst", ModeRaw)
		if bok && rbok && b.CPUPerEvent() > 0 && rb.CPUPerEvent() > 0 {
			k := float64(f.CPUPerEvent()) / float64(b.CPUPerEvent())
			r := float64(rf.CPUPerEvent()) / float64(rb.CPUPerEvent())
			ts = append(ts, target{name: "fanout CPU/msg ÷ burst's ≤ raw's ratio + 10 %", got: fmt.Sprintf("%.2f×", k),
				ceiling: fmt.Sprintf("%.2f× (+10 %%: %.2f×)", r, r*1.1), met: k <= r*1.1 && whole(f)})
		}
	}
	if s, ok := get("steady", ModeKdbridge); ok {
		raw := rawCol(get("steady", ModeRaw))
		ts = append(ts,
			target{"steady 1,000/s: p99 ≤ 5ms", dur(s.P99), raw(func(r summary) string { return dur(r.P99) }), s.P99 > 0 && s.P99 <= 5*time.Millisecond && whole(s)},
			target{"steady 1,000/s: max ≤ 25ms", dur(s.Max), raw(func(r summary) string { return dur(r.Max) }), s.Max > 0 && s.Max <= 25*time.Millisecond && whole(s)})
	}
	if s, ok := get("scale", ModeKdbridge); ok {
		raw := rawCol(get("scale", ModeRaw))
		ts = append(ts,
			target{"scale: 10,000 subscribed ≤ 0.5s", dur(s.Subscribe), raw(func(r summary) string { return dur(r.Subscribe) }), s.Err == "" && s.Subscribe > 0 && s.Subscribe <= 500*time.Millisecond},
			target{"scale: ≤ 60 MB RSS at rest", megabytes(s.EndRSS), raw(func(r summary) string { return megabytes(r.EndRSS) }), s.Err == "" && s.EndRSS > 0 && s.EndRSS <= 60e6})
	}
	return ts
}

// rawCol formats a raw figure when there is one.
func rawCol(s summary, ok bool) func(func(summary) string) string {
	return func(f func(summary) string) string {
		if !ok {
			return ""
		}
		return f(s)
	}
}

func dur(d time.Duration) string {
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

func micros(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

func mb(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// megabytes is b in MB of 10⁶ bytes, the unit of issue 14's memory targets.
func megabytes(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}

// listDelayNote is the catch-up's description's mention of -list-delay, if any.
func listDelayNote(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf(", each listing of messages answered after %s", d)
}
