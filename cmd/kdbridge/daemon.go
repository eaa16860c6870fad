package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/internal/console"
	kineticsink "github.com/kdbridge/kdbridge/sinks/kinetic"
	"github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sinks/stdout"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
	slackin "github.com/kdbridge/kdbridge/sources/slack"
)

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	containerMemoryLimit(log, memlimit.FromCgroup)
	return serve(ctx, cfg, daemonDeps{log: log, stdout: stdout, reload: cf.load})
}

// daemonDeps are what serve takes from its caller besides the configuration.
type daemonDeps struct {
	log    *slog.Logger
	stdout io.Writer // the stdout sink writes here
	// ready, if set, receives the HTTP listener's address once the daemon is up.
	ready func(httpAddr string)
	// observe, if set, hears every delivery outcome.
	observe func(bridge.Outcome)
	// reload, if set, reads the configuration again for SIGHUP and POST /-/reload.
	reload func() (*Config, error)
}

// daemon is a running kdbridge: the one place that knows every adapter and wires them.
type daemon struct {
	deps daemonDeps
	log  *slog.Logger
	met  *metrics
	// console is the operator console (internal/console); nil in tests that build a bare daemon.
	console *console.Console

	// st is the state store, set once before the sinks are built (with backend postgres the
	// HTTP listener is up before: st is nil while the database is not reachable at start).
	stMu sync.RWMutex
	st   stateStore
	pg   *pgstore.Store // st, when the backend is postgres

	postgres bool // backend postgres: several replicas, one leads
	ha       ha   // leadership and the state database's health, for /readyz (backend postgres)

	// started is set while this replica leads and every configured source has started: the
	// HTTP listener is up before, and /readyz must not call a daemon without sources ready.
	started atomic.Bool

	mu      sync.Mutex // guards what follows; held for a whole reload
	cfg     *Config
	sinks   map[string]*liveSink
	sources map[string]*liveSource
	// disp and emit exist while this replica leads (always, with bbolt): the dispatcher of
	// the current term and the emitter its sources use.
	disp   *bridge.Dispatcher
	emit   bridge.Emitter
	srcCtx context.Context // parent of every source's context, for the current term
	srcWG  sync.WaitGroup  // the sources' supervisors

	// selves holds the running sources that know the username they act as, by name, for
	// the router (see selfUsers); read on every routed event, so not under mu.
	selves sync.Map
}

// stateStore is what the daemon needs of a state store: bridge.Store and write-behind puts
// (checkpoints). Both store.Bolt and pgstore.Store are.
type stateStore interface {
	bridge.Store
	PutLater(namespace, key string, value []byte) error
}

type liveSink struct {
	entry  sinkEntry
	spec   bridge.SinkSpec
	closer io.Closer // nil when the sink holds nothing
}

type liveSource struct {
	entry  sourceEntry
	src    bridge.Source
	cancel context.CancelFunc
	done   chan struct{}
}

// serve wires every part explicitly and runs them until ctx ends: sinks start first,
// sources stop first, in-flight deliveries get a bounded grace period, the store closes last.
// With backend postgres, the sources and deliveries run only while this replica leads
// (term); every replica serves HTTP.
func serve(ctx context.Context, cfg *Config, deps daemonDeps) error {
	log := deps.log
	d := &daemon{deps: deps, log: log, cfg: cfg, sinks: map[string]*liveSink{}, sources: map[string]*liveSource{}}
	d.ha.replica = cfg.State.Replica
	pg := cfg.State.Backend == backendPostgres
	d.postgres = pg
	d.met = newMetrics(d.currentSources, d.currentSinks, d.backlog)
	if !pg {
		st, err := store.Open(cfg.State.Dir, store.Options{Logger: log, Retention: cfg.State.Retention.D(), ObserveCommit: d.met.observeCommit})
		if err != nil {
			return fmt.Errorf("open state: %w", err)
		}
		d.st = st
	}
	defer func() {
		if st := d.store(); st != nil {
			_ = st.Close()
		}
	}()
	if pg {
		d.met.leader.WithLabelValues(cfg.State.Replica).Set(0)
	}
	var err error
	if d.console, err = newConsole(d); err != nil {
		return err
	}
	d.met.registerDisabled(d.disabledTargets) // before /metrics is served

	var srv *http.Server
	var httpWG sync.WaitGroup
	addr := ""
	if cfg.HTTP.Listen != "off" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		addr = ln.Addr().String()
		srv = &http.Server{Handler: httpHandler(d), ReadHeaderTimeout: 5 * time.Second}
		httpWG.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http listener failed", "error", err)
			}
		})
		log.Info("http listening", "addr", addr)
	}
	stopHTTP := func() {
		if srv != nil {
			shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(shutCtx)
			cancel()
			httpWG.Wait()
		}
	}
	defer stopHTTP()

	if pg {
		st, err := d.openPostgres(ctx, cfg.State)
		if err != nil {
			return nil // ctx ended while the database was unreachable
		}
		d.stMu.Lock()
		d.st, d.pg = st, st
		d.stMu.Unlock()
	}

	defer d.closeSinks()
	sinks, err := d.buildSinks(cfg.Sinks)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.sinks = sinks
	d.mu.Unlock()

	hup := make(chan os.Signal, 1)
	if deps.reload != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}

	var leading sync.WaitGroup
	// With postgres, a stop ends the term first, while this replica still holds the lease, so
	// that the deliveries it finishes are marked done rather than fenced (and made again by
	// the next leader); then the elector releases the lease.
	var (
		termMu       sync.Mutex
		terms        sync.WaitGroup // the term running, if any
		shuttingDown bool
	)
	shutdown := make(chan struct{})
	runCtx, stopRunning := context.WithCancel(context.WithoutCancel(ctx)) // ended after the term, below
	defer stopRunning()
	if pg {
		el := d.pg.Elector(cfg.State.Replica, 0)
		leading.Go(func() { d.watchState(runCtx, cfg.State.DSN.Reveal()) })
		leading.Go(func() {
			_ = el.Run(runCtx, func(ctx context.Context, epoch int64) {
				termMu.Lock()
				if shuttingDown {
					termMu.Unlock()
					return
				}
				terms.Add(1)
				termMu.Unlock()
				defer terms.Done()
				t, err := d.startTerm(ctx, epoch)
				if err != nil {
					log.Error("leading: not every source started", "error", err)
				}
				select {
				case <-ctx.Done():
				case <-shutdown:
					log.Info("stopping: the term ends before the lease is released", "replica", cfg.State.Replica, "epoch", epoch)
				}
				t.stop()
			})
		})
		log.Info("kdbridge started", "version", version, "replica", cfg.State.Replica, "sources", len(cfg.Sources), "sinks", len(cfg.Sinks), "routes", len(cfg.Routes), "state", "postgres "+pgstore.RedactDSN(cfg.State.DSN.Reveal()))
	} else {
		t, err := d.startTerm(ctx, 0)
		if err != nil {
			t.stop()
			return err
		}
		defer t.stop()
		log.Info("kdbridge started", "version", version, "sources", len(cfg.Sources), "sinks", len(cfg.Sinks), "routes", len(cfg.Routes), "state", cfg.State.Dir)
	}
	if deps.ready != nil {
		deps.ready(addr)
	}

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if err := d.reload(); err != nil {
				log.Error("reload refused; the running configuration is kept", "error", err)
			}
		}
	}

	log.Info("stopping: sources first, then deliveries in flight")
	termMu.Lock()
	shuttingDown = true
	termMu.Unlock()
	close(shutdown)
	terms.Wait() // with postgres: the term ends (sources, then deliveries) while leading
	stopRunning()
	leading.Wait()
	return nil
}

// store returns the state store, nil while it is not open yet.
func (d *daemon) store() stateStore {
	d.stMu.RLock()
	defer d.stMu.RUnlock()
	return d.st
}

// dispatcher is the current term's dispatcher; nil while this replica does not lead.
func (d *daemon) dispatcher() *bridge.Dispatcher {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.disp
}

// backlog is the current dispatcher's backlog; none while this replica does not lead.
func (d *daemon) backlog() []bridge.SinkBacklog {
	if disp := d.dispatcher(); disp != nil {
		return disp.Backlog()
	}
	return nil
}

// term is one period of leadership: a dispatcher delivering and the sources emitting into
// it. With bbolt there is one term, the daemon's life.
type term struct {
	d            *daemon
	stopSources  context.CancelFunc
	stopDispatch context.CancelFunc
	dispDone     chan error
	aux          sync.WaitGroup // prune, and the replay listener (postgres)
}

// startTerm starts delivering and the sources. The error is a source that could not be
// built; the term runs anyway and must be stopped.
func (d *daemon) startTerm(ctx context.Context, epoch int64) (*term, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.cfg
	observe := func(o bridge.Outcome) { d.met.observe(o); d.console.Observe(o) }
	if d.deps.observe != nil {
		observe = func(o bridge.Outcome) { d.met.observe(o); d.console.Observe(o); d.deps.observe(o) }
	}
	opts := bridge.DispatcherOptions{Logger: d.log, Observer: observe,
		FailedAttemptsOnly: cfg.State.Attempts.failedOnly()}
	if d.pg != nil {
		// Leadership lost: stop at once. Deliveries cut short are retried by the new leader,
		// and one that completes anyway cannot be marked done here (fenced): at least once.
		opts.Grace = time.Second
	}
	disp := bridge.NewDispatcher(d.st, bridge.NewRouterSelf(cfg.Routes, d.selfUsers(cfg)), specsOf(d.sinks), opts)
	d.disp = disp
	d.emit = countingEmitter{next: disp, m: d.met}
	t := &term{d: d, dispDone: make(chan error, 1)}
	dispCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	t.stopDispatch = stopDispatch
	go func() { t.dispDone <- disp.Run(dispCtx) }()

	srcCtx, stopSources := context.WithCancel(ctx)
	t.stopSources = stopSources
	d.srcCtx = srcCtx
	var err error
	for _, e := range cfg.Sources {
		if err = d.startSource(e); err != nil {
			break
		}
	}
	st, retention, log := d.st, cfg.State.Retention.D(), d.log
	t.aux.Go(func() { prune(srcCtx, st, retention, log) })
	attempts := cfg.State.Attempts.Retention.D()
	t.aux.Go(func() { pruneAttempts(srcCtx, st, attempts, log) })
	if d.pg != nil {
		t.aux.Go(func() {
			_ = d.pg.ListenQueues(srcCtx, func() {
				if err := disp.Rescan(srcCtx); err != nil && srcCtx.Err() == nil {
					log.Error("resume replayed dead letters", "error", err)
				}
			})
		})
		d.ha.setLeading(epoch)
		d.met.leader.WithLabelValues(cfg.State.Replica).Set(1)
	} else {
		d.met.leader.WithLabelValues(cfg.State.Replica).Set(1)
	}
	if err == nil {
		d.started.Store(true)
	}
	return t, err
}

// stop ends the term: sources first, then deliveries in flight (within the grace period).
func (t *term) stop() {
	d := t.d
	d.started.Store(false)
	d.mu.Lock()
	d.disp, d.emit = nil, nil
	sources := d.sources
	d.sources = map[string]*liveSource{}
	d.mu.Unlock()
	t.stopSources()
	for _, ls := range sources {
		<-ls.done
	}
	d.srcWG.Wait()
	t.aux.Wait()
	t.stopDispatch()
	if err := <-t.dispDone; err != nil {
		d.log.Error("deliveries stopped", "error", err)
	}
	if d.pg != nil {
		// Commit the deliveries marked done (pgstore commits them in groups, behind the
		// caller) while this replica may still lead. Refused once the lease is lost: they
		// are delivered again by the next leader.
		d.pg.Flush()
		d.ha.setLeading(0)
		d.met.leader.WithLabelValues(d.ha.replica).Set(0)
	}
}

// startSource builds and starts one source under its own context. d.mu must be held.
func (d *daemon) startSource(e sourceEntry) error {
	src, err := d.buildSource(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(d.srcCtx)
	ls := &liveSource{entry: e, src: src, cancel: cancel, done: make(chan struct{})}
	d.sources[e.Name] = ls
	if su, ok := src.(interface{ SelfUser() string }); ok {
		d.selves.Store(e.Name, su)
	}
	emit := d.emit
	d.srcWG.Go(func() {
		defer close(ls.done)
		_ = bridge.Supervise(ctx, src, emit, d.log)
	})
	return nil
}

func (ls *liveSource) stop() {
	ls.cancel()
	<-ls.done
}

func (d *daemon) currentSources() []bridge.Source {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]bridge.Source, 0, len(d.sources))
	for _, ls := range d.sources {
		out = append(out, ls.src)
	}
	slices.SortFunc(out, func(a, b bridge.Source) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

func (d *daemon) currentSinks() []bridge.Sink {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]bridge.Sink, 0, len(d.sinks))
	for _, ls := range d.sinks {
		out = append(out, ls.spec.Sink)
	}
	slices.SortFunc(out, func(a, b bridge.Sink) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

func (d *daemon) closeSinks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ls := range d.sinks {
		if ls.closer != nil {
			_ = ls.closer.Close()
		}
	}
}

// prune forgets delivered events past the retention window, hourly.
func prune(ctx context.Context, st bridge.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := st.Prune(ctx, time.Now().Add(-retention)); err != nil {
			log.Error("prune state", "error", err)
		} else if n > 0 {
			log.Info("pruned delivered events", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneAttempts forgets attempt history past its retention (state.attempts.retention),
// hourly, when the store keeps history.
func pruneAttempts(ctx context.Context, st bridge.Store, retention time.Duration, log *slog.Logger) {
	al, ok := st.(bridge.AttemptLog)
	if !ok {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := al.PruneAttempts(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Error("prune attempt history", "error", err)
		} else if n > 0 {
			log.Info("pruned attempt history", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// buildSinks makes a sink for each entry; on error, the ones made so far are closed.
func (d *daemon) buildSinks(entries []sinkEntry) (map[string]*liveSink, error) {
	out := map[string]*liveSink{}
	for _, e := range entries {
		ls, err := d.buildSink(e)
		if err != nil {
			for _, made := range out {
				if made.closer != nil {
					_ = made.closer.Close()
				}
			}
			return nil, err
		}
		out[e.Name] = ls
	}
	return out, nil
}

func (d *daemon) buildSink(e sinkEntry) (*liveSink, error) {
	ls := &liveSink{entry: e, spec: bridge.SinkSpec{Retry: e.Retry}}
	log := d.log.With("sink", e.Name)
	switch e.Type {
	case "webhook":
		s, err := webhook.New(e.Name, *e.Webhook, webhook.Options{Logger: log, UserAgent: "kdbridge/" + version})
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", e.Name, err)
		}
		ls.spec.Sink, ls.spec.MaxInFlight, ls.closer = s, s.MaxInFlight(), s
	case "slack":
		s, err := slack.New(e.Name, *e.Slack, slack.Options{Logger: log, KV: d.st, RouteTemplates: e.RouteTemplates})
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", e.Name, err)
		}
		ls.spec.Sink, ls.spec.MaxInFlight, ls.closer = s, s.MaxInFlight(), s
	case "stdout":
		ls.spec.Sink, ls.spec.MaxInFlight = stdout.New(e.Name, *e.Stdout, d.deps.stdout), 1
	case "kinetic":
		s, err := kineticsink.New(e.Name, *e.ToKinetic, kineticsink.Options{Logger: log, KV: d.st})
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", e.Name, err)
		}
		ls.spec.Sink, ls.spec.MaxInFlight, ls.closer = s, s.MaxInFlight(), s
	default:
		return nil, fmt.Errorf("sink %s: unknown type %q", e.Name, e.Type)
	}
	return ls, nil
}

func specsOf(sinks map[string]*liveSink) []bridge.SinkSpec {
	out := make([]bridge.SinkSpec, 0, len(sinks))
	for _, ls := range sinks {
		out = append(out, ls.spec)
	}
	return out
}

func (d *daemon) buildSource(e sourceEntry) (bridge.Source, error) {
	switch e.Type {
	case "kinetic":
		s, err := kinetic.New(e.Name, *e.Kinetic, kinetic.Options{Logger: d.log, Checkpoints: storeCheckpoints{d.st}})
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", e.Name, err)
		}
		return s, nil
	case "slack":
		s, err := slackin.New(*e.Replies, slackin.Options{Logger: d.log, KV: d.st})
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", e.Name, err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("source %s: unknown type %q", e.Name, e.Type)
	}
}

// selfUsers tells, for each source, the username kdbridge acts as there, so that its own
// messages are never routed back out: a running Kinetic source's SelfUser (its token's
// username claim), else the configured client_id (Kinetic ties the OAuth client to the user
// whose username is the client id).
func (d *daemon) selfUsers(cfg *Config) bridge.SelfUsers {
	fallback := map[string]string{}
	for _, e := range cfg.Sources {
		if e.Kinetic != nil {
			fallback[e.Name] = e.Kinetic.ClientID
		}
	}
	return func(source string) string {
		if v, ok := d.selves.Load(source); ok {
			return v.(interface{ SelfUser() string }).SelfUser()
		}
		return fallback[source]
	}
}

// storeCheckpoints keeps the Kinetic source's catch-up checkpoints in the store.
type storeCheckpoints struct{ st stateStore }

const checkpointNS = "checkpoints"

func (c storeCheckpoints) Checkpoint(ctx context.Context, source, discussion string) (kinetic.Checkpoint, bool, error) {
	var cp kinetic.Checkpoint
	b, ok, err := c.st.Get(ctx, checkpointNS, source+"/"+discussion)
	if err != nil || !ok {
		return cp, false, err
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, false, fmt.Errorf("checkpoint %s/%s: %w", source, discussion, err)
	}
	return cp, true, nil
}

func (c storeCheckpoints) SetCheckpoint(ctx context.Context, source, discussion string, cp kinetic.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	key := source + "/" + discussion
	// Once a key has a checkpoint, a newer one is written behind, with the next commit,
	// rather than with an fsync of its own that the source would wait for after every
	// batch: the batch's events are durable already (Emit returned), and losing the newer
	// checkpoint in a crash only makes the next catch-up start from the older one, whose
	// re-fetched events Append drops as known. The first checkpoint of a key is written
	// durably: losing it would mean no checkpoint at all, which starts a discussion from
	// "now" (and the discovery watermark over), skipping what was missed. The source's own
	// marks ('~' keys: the discovery watermark, the first-start mark) are written durably
	// every time: they are rare, and each must be stored before what it covers happens.
	if discussion != "" && discussion[0] == '~' {
		return c.st.Put(ctx, checkpointNS, key, b)
	}
	if _, ok, err := c.st.Get(ctx, checkpointNS, key); err == nil && ok {
		return c.st.PutLater(checkpointNS, key, b)
	}
	return c.st.Put(ctx, checkpointNS, key, b)
}
