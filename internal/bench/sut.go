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
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// This file runs the system under test of a bench scenario: kdbridge (the command's Daemon,
// its real wiring) or the raw client (raw.go). By default it runs in a child process — the
// program started again by the command's Child, which calls ChildMain — so that its CPU time
// and peak RSS are its own, not the simulator's or the receiver's; Options.InProcess runs it
// as goroutines instead.

// Modes of a system under test.
const (
	ModeKdbridge = "kdbridge"
	ModeRaw      = "raw"
)

// Spec is what a system under test needs to know; a child reads it from a JSON file.
type Spec struct {
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
	Attempts     string            `json:"attempts,omitempty"`   // kdbridge: state.attempts.record; "": the default
}

// SUTReport is what a system under test reports when it stops.
type SUTReport struct {
	OK     int64  `json:"ok"`     // deliveries that succeeded (kdbridge) or POSTs answered 2xx (raw)
	Failed int64  `json:"failed"` // failed attempts
	Dead   int64  `json:"dead"`   // dead-lettered deliveries (kdbridge)
	Err    string `json:"err,omitempty"`
}

// system is a running system under test, seen from the harness.
type system interface {
	cpu() time.Duration      // CPU time used so far
	mem() (rss, hwm int64)   // resident set now and at its peak, bytes
	anonPeak() int64         // the largest anonymous resident set sampled (see anonWatch)
	exited() <-chan struct{} // closed if it ends before stop
	stop() (SUTReport, error)
	logTail() string // the last lines it logged, for a failure report
	addr() string    // kdbridge's HTTP listener, once ready
}

// systems starts systems under test: kdbridge through the command's Daemon, the raw client
// here, either in a child process (the command's Child) or in this one.
type systems struct {
	daemon Daemon
	child  func(specFile string) *exec.Cmd
}

// start starts spec as a child process (or in this process when inProcess).
func (s systems) start(ctx context.Context, spec Spec, inProcess bool) (system, error) {
	if inProcess {
		return startInProcess(ctx, spec, s.daemon)
	}
	return startChild(spec, s.child)
}

// runSUT is the body of a system under test: it runs until ctx ends and calls ready once it
// is up, with kdbridge's HTTP address.
func runSUT(ctx context.Context, spec Spec, daemon Daemon, logw io.Writer, ready func(addr string)) (SUTReport, error) {
	var rep SUTReport
	if spec.Mode == ModeRaw {
		err := rawRun(ctx, spec, &rep, func() { ready("") })
		return rep, err
	}
	var ok, failed, dead atomic.Int64
	err := daemon(ctx, spec, logw, ready, func(o bridge.Outcome) {
		switch {
		case o.Dead:
			dead.Add(1)
		case o.Err != nil:
			failed.Add(1)
		default:
			ok.Add(1)
		}
	})
	rep.OK, rep.Failed, rep.Dead = ok.Load(), failed.Load(), dead.Load()
	return rep, err
}

// ChildMain is `kdbridge bench -sut FILE`: a system under test in its own process, kdbridge
// run by daemon or the raw client, as the spec in FILE says. It prints "ready ADDR" once up
// and, when ctx ends (SIGTERM), one line with its report.
func ChildMain(ctx context.Context, specFile string, daemon Daemon, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var spec Spec
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
	rep, err := runSUT(ctx, spec, daemon, stderr, func(addr string) { once.Do(func() { fmt.Fprintln(stdout, "ready", addr) }) })
	if err != nil {
		rep.Err = err.Error()
	}
	out, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "report %s\n", out)
	return err
}

// childSUT is a system under test in a child process.
type childSUT struct {
	cmd    *exec.Cmd
	log    *tailBuffer
	done   chan struct{}
	ready  chan struct{}
	report chan SUTReport
	dir    string
	mu     sync.Mutex
	http   string
	anon   anonWatch
}

func startChild(spec Spec, child func(specFile string) *exec.Cmd) (*childSUT, error) {
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
	cmd := child(specFile)
	c := &childSUT{cmd: cmd, log: &tailBuffer{}, done: make(chan struct{}), ready: make(chan struct{}),
		report: make(chan SUTReport, 1), dir: dir}
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
				var rep SUTReport
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

func (c *childSUT) cpu() time.Duration { return procCPU(c.cmd.Process.Pid) }

func (c *childSUT) mem() (rss, hwm int64) { return procMem(strconv.Itoa(c.cmd.Process.Pid)) }

func (c *childSUT) anonPeak() int64 { return c.anon.peak.Load() }

func (c *childSUT) exited() <-chan struct{} { return c.done }

func (c *childSUT) logTail() string { return c.log.String() }

func (c *childSUT) addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.http
}

func (c *childSUT) stop() (SUTReport, error) {
	defer os.RemoveAll(c.dir)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return SUTReport{}, errors.New("the system under test did not stop within 30s of SIGTERM; killed")
	}
	select {
	case rep := <-c.report:
		if rep.Err != "" {
			return rep, errors.New(rep.Err)
		}
		return rep, nil
	default:
		return SUTReport{}, fmt.Errorf("the system under test ended without a report (%v); its log:\n%s", c.cmd.ProcessState, c.logTail())
	}
}

// inProcessSUT is a system under test running as goroutines of this process: its CPU and
// memory figures are the whole process's, harness included.
type inProcessSUT struct {
	cancel  context.CancelFunc
	done    chan struct{}
	log     *tailBuffer
	rep     SUTReport
	err     error
	stopCPU func()
	http    atomic.Value // string: kdbridge's HTTP address
	anon    anonWatch
}

func startInProcess(ctx context.Context, spec Spec, daemon Daemon) (*inProcessSUT, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &inProcessSUT{cancel: cancel, done: make(chan struct{}), log: &tailBuffer{}, stopCPU: func() {}}
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
		p.rep, p.err = runSUT(ctx, spec, daemon, p.log, func(addr string) { p.http.Store(addr) })
	}()
	return p, nil
}

func (p *inProcessSUT) cpu() time.Duration { return selfCPU() }

func (p *inProcessSUT) mem() (rss, hwm int64) { return procMem("self") }

func (p *inProcessSUT) anonPeak() int64 { return p.anon.peak.Load() }

func (p *inProcessSUT) exited() <-chan struct{} { return p.done }

func (p *inProcessSUT) logTail() string { return p.log.String() }

func (p *inProcessSUT) addr() string {
	s, _ := p.http.Load().(string)
	return s
}

func (p *inProcessSUT) stop() (SUTReport, error) {
	p.cancel()
	<-p.done
	p.stopCPU()
	return p.rep, p.err
}

// procMem reads VmRSS and VmHWM of a process ("self" or a pid) from /proc, in bytes;
// zeros where there is no /proc.
func procMem(pid string) (rss, hwm int64) {
	m := procStatus(pid)
	return m["VmRSS:"], m["VmHWM:"]
}

// procStatus reads the sizes in /proc/PID/status, in bytes, by field name ("VmRSS:");
// empty where there is no /proc.
func procStatus(pid string) map[string]int64 {
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

// anonWatch is the largest anonymous resident set (RssAnon: the heap, stacks, the
// runtime) of a process among samples taken every anonEvery. The kernel keeps a peak
// only of the whole resident set (VmHWM), which also counts the file pages mapped in — the
// bbolt files read through their maps, the binary — so the peak RSS alone does not say what
// the process itself needed. Sampled, it can miss a spike shorter than the interval.
type anonWatch struct{ peak atomic.Int64 }

const anonEvery = 20 * time.Millisecond

// watch samples pid until done is closed.
func (a *anonWatch) watch(pid string, done <-chan struct{}) {
	t := time.NewTicker(anonEvery)
	defer t.Stop()
	for {
		if v := procStatus(pid)["RssAnon:"]; v > a.peak.Load() {
			a.peak.Store(v)
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// tailBuffer keeps the last 64 KiB written to it: a child's log, shown when a scenario fails.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 64 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if lines := strings.Split(s, "\n"); len(lines) > 30 {
		s = strings.Join(lines[len(lines)-30:], "\n")
	}
	return s
}
