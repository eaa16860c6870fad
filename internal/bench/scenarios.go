package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// The scenarios of issue 8. Each starts its own simulator and receiver in this process and
// the system under test (kdbridge or the raw client) beside them, and measures from the
// outside: send times are taken just before PostMessage, arrival times in the receiver.

// Sizes are the sizes of the scenarios: issue 8's, or tiny ones for the smoke test.
type Sizes struct {
	BurstMessages, BurstDiscussions     int
	Posters                             int // goroutines posting a burst
	SteadyRate                          int // messages a second
	SteadyFor                           time.Duration
	SteadyDiscussions                   int
	FanoutTargets                       int
	ScaleDiscussions                    int
	CatchupMessages, CatchupDiscussions int
	// ListDelay is how long the simulator takes to answer each listing of a discussion's
	// messages in the catch-up: a real Kinetic's REST latency, which the catch-up's reading
	// ahead and holding back meet (-list-delay). Zero: at once.
	ListDelay time.Duration
	// ReadAhead is kdbridge's read_ahead (-read-ahead); zero: the default.
	ReadAhead int64
	// Attempts is kdbridge's state.attempts.record (-attempts); "": the default (all).
	Attempts string
	// Quiet is how long the simulator must see no REST call, and the system under test use
	// almost no CPU, for it to count as at rest (its start-up catch-ups done).
	Quiet time.Duration
	// Timeout bounds each wait (subscriptions, deliveries).
	Timeout time.Duration
}

// fullSizes are the scenarios' sizes: issue 8's.
var fullSizes = Sizes{
	BurstMessages: 20000, BurstDiscussions: 200, Posters: 4,
	SteadyRate: 1000, SteadyFor: 20 * time.Second, SteadyDiscussions: 200,
	FanoutTargets:    3,
	ScaleDiscussions: 10000,
	CatchupMessages:  50000, CatchupDiscussions: 200,
	Quiet:   time.Second,
	Timeout: 2 * time.Minute,
}

// SmokeSizes are tiny scenarios that check the bench itself (Options.Smoke) and measure
// nothing.
var SmokeSizes = Sizes{
	BurstMessages: 200, BurstDiscussions: 50, Posters: 4,
	SteadyRate: 1000, SteadyFor: 200 * time.Millisecond, SteadyDiscussions: 50,
	FanoutTargets:    3,
	ScaleDiscussions: 200,
	CatchupMessages:  500, CatchupDiscussions: 50,
	Quiet:   150 * time.Millisecond,
	Timeout: 30 * time.Second,
}

// Scenario names, in the order they run.
var Scenarios = []string{"burst", "steady", "fanout", "scale", "catchup"}

// Result is one run of one scenario in one mode.
type Result struct {
	Scenario string `json:"scenario"`
	Mode     string `json:"mode"`
	Run      int    `json:"run"`

	Sent            int `json:"sent"`             // messages posted in the measured phase
	Expected        int `json:"expected"`         // deliveries expected: sent × targets
	Delivered       int `json:"delivered"`        // distinct (message, target) deliveries
	Duplicates      int `json:"duplicates"`       // deliveries of a message a target already had
	OrderViolations int `json:"order_violations"` // first deliveries older than one before them in the same discussion
	Unexpected      int `json:"unexpected"`       // deliveries of messages not posted in the measured phase

	Elapsed      time.Duration `json:"elapsed_ns"`              // the measured window
	EventsPerSec float64       `json:"events_per_s"`            // Delivered / Elapsed
	PostedPerSec float64       `json:"posted_per_s"`            // how fast the harness posted
	P50          time.Duration `json:"p50_ns"`                  // send → arrival
	P90          time.Duration `json:"p90_ns"`                  //
	P99          time.Duration `json:"p99_ns"`                  //
	Max          time.Duration `json:"max_ns"`                  //
	Subscribe    time.Duration `json:"subscribe_ns"`            // start → every discussion subscribed
	Settle       time.Duration `json:"settle_ns"`               // start → at rest (scale)
	CPU          time.Duration `json:"cpu_ns"`                  // the system under test's CPU in the measured window
	CPUTotal     time.Duration `json:"cpu_total_ns"`            // its CPU over its whole life (the last process, for catch-up)
	HarnessCPU   time.Duration `json:"harness_cpu_ns"`          // this process's CPU (simulator, posters, receiver) in the measured window
	PeakRSS      int64         `json:"peak_rss"`                // VmHWM
	PeakAnon     int64         `json:"peak_anon"`               // the largest RssAnon sampled every 20 ms: the peak without file pages
	EndRSS       int64         `json:"end_rss"`                 // VmRSS at the end (scale: at rest)
	StoreBytes   int64         `json:"store_bytes"`             // kdbridge.db at the end
	SlowKills    int64         `json:"slow_kills"`              // connections the simulator dropped as slow consumers
	Connections  int64         `json:"connections"`             // websockets the simulator accepted
	FailedTries  int64         `json:"failed_tries"`            // failed delivery attempts the system under test reported
	ListDelay    time.Duration `json:"list_delay_ns,omitempty"` // catch-up: -list-delay
	ReadAhead    int64         `json:"read_ahead,omitempty"`    // kdbridge: -read-ahead
	Attempts     string        `json:"attempts,omitempty"`      // kdbridge: -attempts
	LiveWaits    int64         `json:"live_waits,omitempty"`    // kdbridge: times its reading waited for the store (kdbridge_source_live_waits_total)
	StoreCommits int64         `json:"store_commits,omitempty"` // kdbridge on bbolt: commits of kdbridge.db (kdbridge_store_commit_duration_seconds_count)
	PagesWritten int64         `json:"pages_written,omitempty"` // kdbridge on bbolt: pages those commits wrote (kdbridge_store_pages_written_total)
	// kdbridge's Go memory at the end (scale: at rest), from its /metrics.
	HeapInuse  int64  `json:"heap_inuse"`  // go_memstats_heap_inuse_bytes
	HeapKept   int64  `json:"heap_kept"`   // idle heap not yet returned to the OS (heap_idle − heap_released)
	StackInuse int64  `json:"stack_inuse"` // go_memstats_stack_inuse_bytes
	Goroutines int64  `json:"goroutines"`  // go_goroutines
	Err        string `json:"err,omitempty"`
	// LogFile keeps the system under test's log tail when a run delivered a message twice,
	// out of order or unexpectedly: not a failed run (redeliveries are allowed), but one to
	// look into.
	LogFile string `json:"log_file,omitempty"`
}

// CPUPerEvent is the measured window's CPU per message posted.
func (r Result) CPUPerEvent() time.Duration {
	if r.Sent == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Sent)
}

// scenarioRun runs one scenario once in one mode.
type scenarioRun struct {
	scenario   string
	mode       string
	run        int
	sizes      Sizes
	inProcess  bool
	sys        systems
	stateDir   string // fresh, for this run only
	dsn        string // kdbridge-pg: the run's database, fresh
	profile    string // CPU profile file of kdbridge, or ""
	memProfile string // heap profile file of kdbridge, taken at the end, or ""
	secret     string
	logLevel   string
}

func (r *scenarioRun) do(ctx context.Context) (Result, error) {
	s := r.sizes
	switch r.scenario {
	case "burst":
		return r.delivery(ctx, s.BurstDiscussions, s.BurstMessages, 1, 0)
	case "steady":
		return r.delivery(ctx, s.SteadyDiscussions, int(float64(s.SteadyRate)*s.SteadyFor.Seconds()), 1, s.SteadyRate)
	case "fanout":
		return r.delivery(ctx, s.BurstDiscussions, s.BurstMessages, s.FanoutTargets, 0)
	case "scale":
		return r.scale(ctx)
	case "catchup":
		return r.catchup(ctx)
	}
	return Result{}, fmt.Errorf("unknown scenario %q", r.scenario)
}

func (r *scenarioRun) result() Result {
	res := Result{Scenario: r.scenario, Mode: r.mode, Run: r.run}
	if r.mode != ModeRaw {
		res.ReadAhead, res.Attempts = r.sizes.ReadAhead, r.sizes.Attempts
	}
	return res
}

func newSim(discussions int, listDelay time.Duration) (*kinetictest.Server, []string) {
	// A send buffer deep enough for a whole burst: the simulator drops a connection whose
	// buffer fills (a slow consumer), and what we measure here is the daemon, not the
	// recovery from that (which the table would show as slow-consumer kills).
	sim := kinetictest.NewServer(kinetictest.Options{SendBuffer: 1 << 17, ListDelay: listDelay})
	ids := make([]string, discussions)
	for i := range ids {
		ids[i] = sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Bench discussion " + strconv.Itoa(i)}).ID
	}
	return sim, ids
}

func (r *scenarioRun) spec(sim *kinetictest.Server, ids, targets []string, cps map[string]string) Spec {
	return Spec{
		Mode: r.mode, SimURL: sim.URL(), ClientID: "integration-user", ClientSecret: "integration-secret",
		Discussions: ids, Targets: targets, Secret: r.secret, StateDir: r.stateDir, DSN: r.dsn, Checkpoints: cps,
		CPUProfile: r.profile, LogLevel: r.logLevel, ReadAhead: r.sizes.ReadAhead, Attempts: r.sizes.Attempts,
	}
}

// waitFor polls cond until it holds, the system under test ends, ctx ends or timeout passes.
func waitFor(ctx context.Context, sut system, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sut.exited():
			return fmt.Errorf("the system under test ended while waiting for %s; its log:\n%s", what, sut.logTail())
		case <-t.C:
		}
	}
	return nil
}

// settle waits until the simulator has had no REST call for quiet and the system under
// test used under 5% of a core meanwhile: its start-up catch-ups are over.
func settle(ctx context.Context, sim *kinetictest.Server, sut system, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	rest, cpu, since := sim.Stats().RESTRequests, sut.cpu(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sut.exited():
			return fmt.Errorf("the system under test ended while settling; its log:\n%s", sut.logTail())
		case <-time.After(quiet / 10):
		}
		now := time.Now()
		r, c := sim.Stats().RESTRequests, sut.cpu()
		if r != rest || c-cpu > quiet/20 {
			rest, cpu, since = r, c, now
		} else if now.Sub(since) >= quiet {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("not at rest after %s", timeout)
		}
	}
}

var simUser = kinetictest.User{Username: "alice", DisplayName: "Alice Example", Email: "alice@example.com"}

// messageText is a message of a realistic length.
func messageText(n int) string {
	return "Update " + strconv.Itoa(n) + ": the deploy finished, error rates are back to normal; closing the incident once the customer confirms."
}

// posted is what a posting phase sent: message id → time just before PostMessage.
type posted struct {
	at          map[string]time.Time
	first, last time.Time
	errs        int
}

// postBurst posts total messages back to back from posters goroutines, each owning a
// disjoint share of the discussions, so a discussion's order is its poster's.
func postBurst(sim *kinetictest.Server, ids []string, total, posters, offset int) posted {
	posters = max(1, min(posters, len(ids)))
	parts := make([]posted, posters)
	var wg sync.WaitGroup
	for g := range posters {
		var mine []string
		for i := g; i < len(ids); i += posters {
			mine = append(mine, ids[i])
		}
		n := total / posters
		if g < total%posters {
			n++
		}
		wg.Go(func() {
			p := &parts[g]
			p.at = make(map[string]time.Time, n)
			for k := range n {
				p.post(sim, mine[k%len(mine)], messageText(offset+k*posters+g))
			}
			p.last = time.Now()
		})
	}
	wg.Wait()
	return mergePosted(parts)
}

// postPaced posts total messages at rate a second from one goroutine, round-robin over ids.
func postPaced(sim *kinetictest.Server, ids []string, total, rate int) posted {
	s := posted{at: make(map[string]time.Time, total)}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		s.post(sim, ids[i%len(ids)], messageText(i))
	}
	s.last = time.Now()
	return s
}

// post posts one message as simUser and records when: just before PostMessage.
func (p *posted) post(sim *kinetictest.Server, discussion, text string) {
	t := time.Now()
	m, err := sim.PostMessage(discussion, simUser, text)
	if err != nil {
		p.errs++
		return
	}
	p.at[m.ID] = t
	if p.first.IsZero() {
		p.first = t
	}
}

func mergePosted(parts []posted) posted {
	var out posted
	n := 0
	for _, p := range parts {
		n += len(p.at)
	}
	out.at = make(map[string]time.Time, n)
	for _, p := range parts {
		for k, v := range p.at {
			out.at[k] = v
		}
		if !p.first.IsZero() && (out.first.IsZero() || p.first.Before(out.first)) {
			out.first = p.first
		}
		if p.last.After(out.last) {
			out.last = p.last
		}
		out.errs += p.errs
	}
	return out
}

// collect fills in what the receiver saw against what was sent: counts, order, latencies
// from each send to the first arrival, and the window from the first send to the last
// arrival.
func (res *Result) collect(sim *kinetictest.Server, ids []string, recv *receiver, sent posted) {
	res.Sent = len(sent.at)
	res.Expected = res.Sent * len(recv.targets)
	var lats []time.Duration
	var last time.Time
	for _, t := range recv.targets {
		t.mu.Lock()
		res.Duplicates += t.dups
		res.Unexpected += t.unexpected
		for id, at := range t.first {
			s, ok := sent.at[id]
			if !ok {
				res.Unexpected++
				continue
			}
			res.Delivered++
			lats = append(lats, at.Sub(s))
			if at.After(last) {
				last = at
			}
		}
		t.mu.Unlock()
	}
	// Order: the simulator's order of each discussion is the truth.
	for _, d := range ids {
		pos := map[string]int{}
		for i, m := range sim.Messages(d) {
			pos[m.ID] = i
		}
		for _, t := range recv.targets {
			t.mu.Lock()
			prev := -1
			for _, id := range t.order[d] {
				p, ok := pos[id]
				if !ok {
					continue
				}
				if p < prev {
					res.OrderViolations++
				}
				prev = max(prev, p)
			}
			t.mu.Unlock()
		}
	}
	slices.Sort(lats)
	if n := len(lats); n > 0 {
		q := func(f float64) time.Duration { return lats[min(n-1, int(f*float64(n)))] }
		res.P50, res.P90, res.P99, res.Max = q(0.50), q(0.90), q(0.99), lats[n-1]
	}
	if !sent.first.IsZero() && last.After(sent.first) {
		res.Elapsed = last.Sub(sent.first)
		res.EventsPerSec = float64(res.Delivered) / res.Elapsed.Seconds()
	}
	if d := sent.last.Sub(sent.first); d > 0 {
		res.PostedPerSec = float64(res.Sent) / d.Seconds()
	}
	st := sim.Stats()
	res.SlowKills, res.Connections = st.SlowConsumers, st.ConnectionsTotal
}

// finish stops the system under test and records what only the end can tell; with
// -memprofile, kdbridge's heap profile is taken first, from its loopback /debug/pprof.
func (r *scenarioRun) finish(res *Result, sut system) error {
	res.EndRSS, res.PeakRSS = sut.mem()
	res.PeakAnon = sut.anonPeak()
	var perr error
	if r.mode != ModeRaw && !r.inProcess && sut.addr() != "" {
		res.readMetrics("http://" + sut.addr() + "/metrics")
	}
	if r.memProfile != "" && sut.addr() != "" {
		perr = fetchTo("http://"+sut.addr()+"/debug/pprof/heap", r.memProfile)
	}
	rep, err := sut.stop()
	res.FailedTries += rep.Failed
	if fi, serr := os.Stat(filepath.Join(r.stateDir, store.FileName)); serr == nil {
		res.StoreBytes = fi.Size()
	}
	return errors.Join(err, perr)
}

// keepLog writes the log tail of the system under test to a file of its own, and names it
// in LogFile, when the run delivered a message twice, out of order or unexpectedly.
func (res *Result) keepLog(sut interface{ logTail() string }) {
	if res.Duplicates+res.OrderViolations+res.Unexpected == 0 {
		return
	}
	f, err := os.CreateTemp("", fmt.Sprintf("kdbridge-bench-%s-%s-%d-*.log", res.Scenario, res.Mode, res.Run))
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.WriteString(sut.logTail()); err == nil {
		res.LogFile = f.Name()
	}
}

// readMetrics reads the Go runtime's memory figures, and how often reading waited for the
// store, from kdbridge's /metrics.
func (res *Result) readMetrics(url string) {
	resp, err := http.Get(url)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			v, _ := strconv.ParseFloat(f[1], 64)
			m[f[0]] = v
		}
	}
	res.HeapInuse = int64(m["go_memstats_heap_inuse_bytes"])
	res.HeapKept = int64(m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"])
	res.StackInuse = int64(m["go_memstats_stack_inuse_bytes"])
	res.Goroutines = int64(m["go_goroutines"])
	res.LiveWaits = int64(m[`kdbridge_source_live_waits_total{source="bench"}`])
	res.StoreCommits = int64(m[`kdbridge_store_commit_duration_seconds_count{file="kdbridge.db"}`])
	res.PagesWritten = int64(m[`kdbridge_store_pages_written_total{file="kdbridge.db"}`])
}

func fetchTo(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// subscribed is a scenario's simulator, receiver and system under test, the last started
// and subscribed to every discussion.
type subscribed struct {
	sim     *kinetictest.Server
	ids     []string
	recv    *receiver
	sut     system
	started time.Time // when sut was started
	stopped bool      // the scenario stopped sut itself (finish)
}

// subscribe starts a simulator with discussions, a receiver with targets (expecting messages
// each) and the system under test, and waits until it has subscribed to every discussion;
// res.Subscribe is how long that took from its start. The caller closes what it returns.
func (r *scenarioRun) subscribe(ctx context.Context, res *Result, discussions, targets, messages int) (_ *subscribed, err error) {
	env := &subscribed{}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	env.sim, env.ids = newSim(discussions, 0)
	if env.recv, err = startReceiver(targets, messages); err != nil {
		return nil, err
	}
	env.started = time.Now()
	if env.sut, err = r.sys.start(ctx, r.spec(env.sim, env.ids, env.recv.URLs(), nil), r.inProcess); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, env.sut, r.sizes.Timeout, "subscriptions", func() bool { return env.sim.Stats().Subscriptions >= int64(len(env.ids)) }); err != nil {
		return nil, err
	}
	res.Subscribe = time.Since(env.started)
	return env, nil
}

// close stops what subscribe started: the system under test (unless the scenario stopped
// it), the receiver, the simulator.
func (env *subscribed) close() {
	if env.sut != nil && !env.stopped {
		_, _ = env.sut.stop()
	}
	if env.recv != nil {
		env.recv.close()
	}
	if env.sim != nil {
		env.sim.Close()
	}
}

// delivery is burst (rate 0: back to back), steady (paced at rate) and fan-out (targets > 1).
func (r *scenarioRun) delivery(ctx context.Context, discussions, messages, targets, rate int) (res Result, err error) {
	res = r.result()
	env, err := r.subscribe(ctx, &res, discussions, targets, messages)
	if err != nil {
		return res, err
	}
	defer env.close()
	sim, ids, recv, sut := env.sim, env.ids, env.recv, env.sut
	if err := settle(ctx, sim, sut, r.sizes.Quiet, r.sizes.Timeout); err != nil {
		return res, err
	}
	cpu0, self0 := sut.cpu(), selfCPU()
	var sent posted
	if rate > 0 {
		sent = postPaced(sim, ids, messages, rate)
	} else {
		sent = postBurst(sim, ids, messages, r.sizes.Posters, 0)
	}
	want := int64(len(sent.at) * targets)
	werr := waitFor(ctx, sut, r.sizes.Timeout, "deliveries", func() bool { return recv.unique() >= want })
	res.CPU, res.HarnessCPU = sut.cpu()-cpu0, selfCPU()-self0
	res.CPUTotal = sut.cpu()
	env.stopped = true
	ferr := r.finish(&res, sut)
	res.collect(sim, ids, recv, sent)
	res.keepLog(sut)
	if sent.errs > 0 {
		return res, fmt.Errorf("%d posts failed", sent.errs)
	}
	return res, errors.Join(werr, ferr)
}

// scale subscribes to many discussions: the time until all are subscribed, and the RSS once
// the start-up catch-ups are over.
func (r *scenarioRun) scale(ctx context.Context) (res Result, err error) {
	res = r.result()
	env, err := r.subscribe(ctx, &res, r.sizes.ScaleDiscussions, 1, 0)
	if err != nil {
		return res, err
	}
	defer env.close()
	sim, sut := env.sim, env.sut
	res.Elapsed = res.Subscribe
	res.CPU = sut.cpu()
	if err := settle(ctx, sim, sut, r.sizes.Quiet, r.sizes.Timeout); err != nil {
		return res, err
	}
	// At rest since the quiet window began.
	res.Settle = time.Since(env.started) - r.sizes.Quiet
	res.CPUTotal = sut.cpu()
	env.stopped = true
	err = r.finish(&res, sut)
	st := sim.Stats()
	res.SlowKills, res.Connections = st.SlowConsumers, st.ConnectionsTotal
	return res, err
}

// catchup delivers messages posted while the system under test was down. kdbridge gets its
// checkpoints from a first run that delivered one message per discussion; the raw client is
// handed the same message ids.
func (r *scenarioRun) catchup(ctx context.Context) (res Result, err error) {
	res = r.result()
	s := r.sizes
	res.ListDelay = s.ListDelay
	sim, ids := newSim(s.CatchupDiscussions, s.ListDelay)
	defer sim.Close()
	recv, err := startReceiver(1, s.CatchupMessages)
	if err != nil {
		return res, err
	}
	defer recv.close()

	var cps map[string]string
	if r.mode != ModeRaw {
		spec := r.spec(sim, ids, recv.URLs(), nil)
		spec.CPUProfile = "" // the profile is of the catch-up
		sut, err := r.sys.start(ctx, spec, r.inProcess)
		if err != nil {
			return res, err
		}
		err = waitFor(ctx, sut, s.Timeout, "subscriptions", func() bool { return sim.Stats().Subscriptions >= int64(len(ids)) })
		if err == nil {
			err = settle(ctx, sim, sut, s.Quiet, s.Timeout)
		}
		if err == nil {
			postBurst(sim, ids, len(ids), 1, 0)
			err = waitFor(ctx, sut, s.Timeout, "the first run's deliveries", func() bool { return recv.unique() >= int64(len(ids)) })
		}
		_, serr := sut.stop()
		if err := errors.Join(err, serr); err != nil {
			return res, fmt.Errorf("first run: %w", err)
		}
	} else {
		cps = map[string]string{}
		for _, d := range ids {
			m, err := sim.PostMessage(d, simUser, "checkpoint")
			if err != nil {
				return res, err
			}
			cps[d] = m.ID
		}
	}
	recv.reset(s.CatchupMessages)
	sent := postBurst(sim, ids, s.CatchupMessages, s.Posters, 0)

	start := time.Now()
	sut, err := r.sys.start(ctx, r.spec(sim, ids, recv.URLs(), cps), r.inProcess)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _ = sut.stop()
		}
	}()
	want := int64(len(sent.at))
	werr := waitFor(ctx, sut, s.Timeout, "subscriptions", func() bool { return sim.Stats().Subscriptions >= int64(len(ids)) })
	res.Subscribe = time.Since(start)
	if werr == nil {
		werr = waitFor(ctx, sut, s.Timeout, "deliveries", func() bool { return recv.unique() >= want })
	}
	res.CPU = sut.cpu()
	res.CPUTotal = res.CPU
	stopped = true
	ferr := r.finish(&res, sut)
	res.collect(sim, ids, recv, sent)
	res.keepLog(sut)
	// Measured from the restart: the messages were posted while nothing was running.
	res.Elapsed = 0
	var last time.Time
	for _, t := range recv.targets {
		t.mu.Lock()
		if t.last.After(last) {
			last = t.last
		}
		t.mu.Unlock()
	}
	if last.After(start) {
		res.Elapsed = last.Sub(start)
		res.EventsPerSec = float64(res.Delivered) / res.Elapsed.Seconds()
	}
	res.P50, res.P90, res.P99, res.Max = 0, 0, 0, 0 // send → arrival spans the downtime: meaningless
	return res, errors.Join(werr, ferr)
}
