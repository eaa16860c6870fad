package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// This file runs the system under test of a bench scenario: kdbridge (the real daemon wiring,
// serve) or the raw client (bench_raw.go). By default it runs in a child process — the bench
// binary re-executed with the hidden -sut flag — so that its CPU time and peak RSS are its
// own, not the simulator's or the receiver's; -inprocess runs it as goroutines instead.

// Modes of a system under test.
const (
	benchKdbridge = "kdbridge"
	benchRaw      = "raw"
)

// benchSpec is what a system under test needs to know; a child reads it from a JSON file.
type benchSpec struct {
	Mode         string            `json:"mode"`
	SimURL       string            `json:"sim_url"`
	ClientID     string            `json:"client_id"`
	ClientSecret string            `json:"client_secret"`
	Discussions  []string          `json:"discussions"`
	Targets      []string          `json:"targets"`               // receiver URLs: one webhook sink (kdbridge) or POST target (raw) each
	Secret       string            `json:"secret"`                // webhook signing secret (kdbridge)
	StateDir     string            `json:"state_dir"`             // kdbridge
	DSN          string            `json:"dsn,omitempty"`         // kdbridge-pg: the run's database (a schema of its own)
	Checkpoints  map[string]string `json:"checkpoints,omitempty"` // raw: discussion → newest message already seen
	CPUProfile   string            `json:"cpu_profile,omitempty"`
	LogLevel     string            `json:"log_level"`
	ReadAhead    int64             `json:"read_ahead,omitempty"` // kdbridge: the source's read_ahead; 0: the default
}

// benchSUTReport is what a system under test reports when it stops.
type benchSUTReport struct {
	OK     int64  `json:"ok"`     // deliveries that succeeded (kdbridge) or POSTs answered 2xx (raw)
	Failed int64  `json:"failed"` // failed attempts
	Dead   int64  `json:"dead"`   // dead-lettered deliveries (kdbridge)
	Err    string `json:"err,omitempty"`
}

// benchSUT is a running system under test, seen from the harness.
type benchSUT interface {
	cpu() time.Duration      // CPU time used so far
	mem() (rss, hwm int64)   // resident set now and at its peak, bytes
	anonPeak() int64         // the largest anonymous resident set sampled (see benchAnonPeak)
	exited() <-chan struct{} // closed if it ends before stop
	stop() (benchSUTReport, error)
	logTail() string // the last lines it logged, for a failure report
	addr() string    // kdbridge's HTTP listener, once ready
}

// benchStartSUT starts spec as a child process (or in this process when inProcess).
func benchStartSUT(ctx context.Context, spec benchSpec, inProcess bool) (benchSUT, error) {
	if inProcess {
		return benchStartInProcess(ctx, spec)
	}
	return benchStartChild(spec)
}

// benchRunSUT is the body of a system under test: it runs until ctx ends and calls ready
// once it is up, with kdbridge's HTTP address.
func benchRunSUT(ctx context.Context, spec benchSpec, logw io.Writer, ready func(addr string)) (benchSUTReport, error) {
	var rep benchSUTReport
	if spec.Mode == benchRaw {
		err := benchRawRun(ctx, spec, &rep, func() { ready("") })
		return rep, err
	}
	cfg, err := benchConfig(spec)
	if err != nil {
		return rep, err
	}
	log, err := newLogger(cfg.Log, logw)
	if err != nil {
		return rep, err
	}
	var ok, failed, dead atomic.Int64
	err = serve(ctx, cfg, daemonDeps{
		log:    log,
		stdout: io.Discard,
		ready:  ready,
		observe: func(o bridge.Outcome) {
			switch {
			case o.Dead:
				dead.Add(1)
			case o.Err != nil:
				failed.Add(1)
			default:
				ok.Add(1)
			}
		},
	})
	rep.OK, rep.Failed, rep.Dead = ok.Load(), failed.Load(), dead.Load()
	return rep, err
}

// benchConfig is the daemon configuration of a scenario, built in code as the demo does: one
// Kinetic source, one webhook sink per target, one route to all of them, the durable store in
// the scenario's state directory (fsync on, as always).
func benchConfig(spec benchSpec) (*Config, error) {
	kc := &kinetic.Config{URL: spec.SimURL, ClientID: spec.ClientID, ClientSecret: config.Secret(spec.ClientSecret), Discussions: spec.Discussions,
		ReadAhead: spec.ReadAhead}
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
		HTTP:    httpConfig{Listen: "127.0.0.1:0"},
		State:   stateConfig{Backend: backendBolt, Dir: spec.StateDir, Retention: config.Duration(7 * 24 * time.Hour)},
		Sources: []sourceEntry{{Name: "bench", Type: "kinetic", Kinetic: kc}},
		Routes:  []bridge.RouteConfig{{Name: "all"}},
	}
	if spec.DSN != "" {
		cfg.State.Backend, cfg.State.DSN, cfg.State.Replica = backendPostgres, config.Secret(spec.DSN), "bench"
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

// benchChildMain is `kdbridge bench -sut FILE`: a system under test in its own process. It
// prints "ready ADDR" once up and, when ctx ends (SIGTERM), one line with its report.
func benchChildMain(ctx context.Context, specFile string, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var spec benchSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("bench spec %s: %w", specFile, err)
	}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var once sync.Once
	rep, err := benchRunSUT(ctx, spec, stderr, func(addr string) { once.Do(func() { fmt.Fprintln(stdout, "ready", addr) }) })
	if err != nil {
		rep.Err = err.Error()
	}
	out, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "report %s\n", out)
	return err
}

// benchChild is a system under test in a child process.
type benchChild struct {
	cmd    *exec.Cmd
	log    *benchTail
	done   chan struct{}
	ready  chan struct{}
	report chan benchSUTReport
	dir    string
	mu     sync.Mutex
	http   string
	anon   benchAnonPeak
}

func benchStartChild(spec benchSpec) (*benchChild, error) {
	dir, err := os.MkdirTemp("", "kdbridge-bench-sut-")
	if err != nil {
		return nil, err
	}
	specFile := dir + "/spec.json"
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(specFile, b, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "bench", "-sut", specFile)
	// A test binary re-executes into main only with this set (see main_test.go); the real
	// binary ignores it.
	cmd.Env = append(os.Environ(), "KDBRIDGE_TEST_CHILD=1")
	c := &benchChild{cmd: cmd, log: &benchTail{}, done: make(chan struct{}), ready: make(chan struct{}),
		report: make(chan benchSUTReport, 1), dir: dir}
	cmd.Stderr = c.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go c.anon.watch(strconv.Itoa(cmd.Process.Pid), c.done)
	go func() {
		sc := bufio.NewScanner(out)
		readyOnce := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready" || strings.HasPrefix(line, "ready "):
				readyOnce.Do(func() {
					c.mu.Lock()
					c.http = strings.TrimSpace(strings.TrimPrefix(line, "ready"))
					c.mu.Unlock()
					close(c.ready)
				})
			case strings.HasPrefix(line, "report "):
				var rep benchSUTReport
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "report ")), &rep) == nil {
					c.report <- rep
				}
			default:
				_, _ = c.log.Write([]byte(line + "\n"))
			}
		}
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *benchChild) cpu() time.Duration { return benchProcCPU(c.cmd.Process.Pid) }

func (c *benchChild) mem() (rss, hwm int64) { return benchProcMem(strconv.Itoa(c.cmd.Process.Pid)) }

func (c *benchChild) anonPeak() int64 { return c.anon.peak.Load() }

func (c *benchChild) exited() <-chan struct{} { return c.done }

func (c *benchChild) logTail() string { return c.log.String() }

func (c *benchChild) addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.http
}

func (c *benchChild) stop() (benchSUTReport, error) {
	defer os.RemoveAll(c.dir)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return benchSUTReport{}, errors.New("the system under test did not stop within 30s of SIGTERM; killed")
	}
	select {
	case rep := <-c.report:
		if rep.Err != "" {
			return rep, errors.New(rep.Err)
		}
		return rep, nil
	default:
		return benchSUTReport{}, fmt.Errorf("the system under test ended without a report (%v); its log:\n%s", c.cmd.ProcessState, c.logTail())
	}
}

// benchInProcess is a system under test running as goroutines of this process: its CPU and
// memory figures are the whole process's, harness included.
type benchInProcess struct {
	cancel  context.CancelFunc
	done    chan struct{}
	log     *benchTail
	rep     benchSUTReport
	err     error
	stopCPU func()
	http    atomic.Value // string: kdbridge's HTTP address
	anon    benchAnonPeak
}

func benchStartInProcess(ctx context.Context, spec benchSpec) (*benchInProcess, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &benchInProcess{cancel: cancel, done: make(chan struct{}), log: &benchTail{}, stopCPU: func() {}}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			cancel()
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			cancel()
			return nil, err
		}
		p.stopCPU = func() { pprof.StopCPUProfile(); f.Close() }
	}
	go p.anon.watch("self", p.done) // the whole process: the harness too, as with the RSS
	go func() {
		defer close(p.done)
		p.rep, p.err = benchRunSUT(ctx, spec, p.log, func(addr string) { p.http.Store(addr) })
	}()
	return p, nil
}

func (p *benchInProcess) cpu() time.Duration { return benchSelfCPU() }

func (p *benchInProcess) mem() (rss, hwm int64) { return benchProcMem("self") }

func (p *benchInProcess) anonPeak() int64 { return p.anon.peak.Load() }

func (p *benchInProcess) exited() <-chan struct{} { return p.done }

func (p *benchInProcess) logTail() string { return p.log.String() }

func (p *benchInProcess) addr() string {
	s, _ := p.http.Load().(string)
	return s
}

func (p *benchInProcess) stop() (benchSUTReport, error) {
	p.cancel()
	<-p.done
	p.stopCPU()
	return p.rep, p.err
}

// benchProcMem reads VmRSS and VmHWM of a process ("self" or a pid) from /proc, in bytes;
// zeros where there is no /proc.
func benchProcMem(pid string) (rss, hwm int64) {
	m := benchProcStatus(pid)
	return m["VmRSS:"], m["VmHWM:"]
}

// benchProcStatus reads the sizes in /proc/PID/status, in bytes, by field name ("VmRSS:");
// empty where there is no /proc.
func benchProcStatus(pid string) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return m
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "kB" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			m[f[0]] = v << 10
		}
	}
	return m
}

// benchAnonPeak is the largest anonymous resident set (RssAnon: the heap, stacks, the
// runtime) of a process among samples taken every benchAnonEvery. The kernel keeps a peak
// only of the whole resident set (VmHWM), which also counts the file pages mapped in — the
// bbolt files read through their maps, the binary — so the peak RSS alone does not say what
// the process itself needed. Sampled, it can miss a spike shorter than the interval.
type benchAnonPeak struct{ peak atomic.Int64 }

const benchAnonEvery = 20 * time.Millisecond

// watch samples pid until done is closed.
func (a *benchAnonPeak) watch(pid string, done <-chan struct{}) {
	t := time.NewTicker(benchAnonEvery)
	defer t.Stop()
	for {
		if v := benchProcStatus(pid)["RssAnon:"]; v > a.peak.Load() {
			a.peak.Store(v)
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// benchTail keeps the last 64 KiB written to it: a child's log, shown when a scenario fails.
type benchTail struct {
	mu  sync.Mutex
	buf []byte
}

const benchTailSize = 64 << 10

func (t *benchTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > benchTailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-benchTailSize:]...)
	}
	return len(p), nil
}

func (t *benchTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if lines := strings.Split(s, "\n"); len(lines) > 30 {
		s = strings.Join(lines[len(lines)-30:], "\n")
	}
	return s
}
