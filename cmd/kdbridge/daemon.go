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

	"github.com/kdbridge/kdbridge/bridge"
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
	// leader, if set, tells the console this replica's part (several replicas on one
	// shared store); nil shows "single node".
	leader console.Leadership
}

// daemon is a running kdbridge: the one place that knows every adapter and wires them.
type daemon struct {
	deps daemonDeps
	log  *slog.Logger
	st   *store.Bolt
	disp *bridge.Dispatcher
	met  *metrics
	emit bridge.Emitter
	// console is the operator console (internal/console); nil in tests that build a bare daemon.
	console *console.Console

	srcCtx context.Context // parent of every source's context
	srcWG  sync.WaitGroup  // the sources' supervisors
	// started is set once every configured source has started: the HTTP listener is up
	// before, and /readyz must not call a daemon without sources ready.
	started atomic.Bool

	mu      sync.Mutex // guards cfg, sinks and sources; held for a whole reload
	cfg     *Config
	sinks   map[string]*liveSink
	sources map[string]*liveSource

	// selves holds the running sources that know the username they act as, by name, for
	// the router (see selfUsers); read on every routed event, so not under mu.
	selves sync.Map
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
func serve(ctx context.Context, cfg *Config, deps daemonDeps) error {
	log := deps.log
	st, err := store.Open(cfg.State.Dir, store.Options{Logger: log, Retention: cfg.State.Retention.D()})
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	defer st.Close()

	d := &daemon{deps: deps, log: log, st: st, cfg: cfg, sinks: map[string]*liveSink{}, sources: map[string]*liveSource{}}
	defer d.closeSinks()
	sinks, err := d.buildSinks(cfg.Sinks)
	if err != nil {
		return err
	}
	d.sinks = sinks
	d.met = newMetrics(d.currentSources, d.currentSinks, func() []bridge.SinkBacklog { return d.disp.Backlog() })
	if d.console, err = newConsole(d, deps.leader); err != nil {
		return err
	}
	observe := func(o bridge.Outcome) { d.met.observe(o); d.console.Observe(o) }
	if deps.observe != nil {
		observe = func(o bridge.Outcome) { d.met.observe(o); d.console.Observe(o); deps.observe(o) }
	}
	d.disp = bridge.NewDispatcher(st, bridge.NewRouterSelf(cfg.Routes, d.selfUsers(cfg)), specsOf(sinks), bridge.DispatcherOptions{Logger: log, Observer: observe})
	d.emit = countingEmitter{next: d.disp, m: d.met}

	dispCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDispatch()
	dispDone := make(chan error, 1)
	go func() { dispDone <- d.disp.Run(dispCtx) }()

	var srv *http.Server
	var httpWG sync.WaitGroup
	addr := ""
	d.met.registerDisabled(d.disabledTargets) // before /metrics is served
	if cfg.HTTP.Listen != "off" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			stopDispatch()
			<-dispDone
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

	hup := make(chan os.Signal, 1)
	if deps.reload != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	d.srcCtx = srcCtx
	d.mu.Lock()
	for _, e := range cfg.Sources {
		if err := d.startSource(e); err != nil {
			d.mu.Unlock()
			stopSources()
			d.srcWG.Wait()
			stopDispatch()
			<-dispDone
			return err
		}
	}
	d.mu.Unlock()
	d.started.Store(true)
	log.Info("kdbridge started", "version", version, "sources", len(cfg.Sources), "sinks", len(cfg.Sinks), "routes", len(cfg.Routes), "state", cfg.State.Dir)
	if deps.ready != nil {
		deps.ready(addr)
	}
	pruneDone := make(chan struct{})
	go func() { defer close(pruneDone); prune(srcCtx, st, cfg.State.Retention.D(), log) }()
	attemptsPruned := make(chan struct{})
	go func() { defer close(attemptsPruned); pruneAttempts(srcCtx, st, cfg.State.Attempts.Retention.D(), log) }()

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
	stopSources()
	d.srcWG.Wait()
	<-pruneDone
	<-attemptsPruned
	if srv != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(shutCtx)
		cancel()
		httpWG.Wait()
	}
	stopDispatch()
	err = <-dispDone
	log.Info("stopped")
	return err
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
	d.srcWG.Go(func() {
		defer close(ls.done)
		_ = bridge.Supervise(ctx, src, d.emit, d.log)
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
			log.Error("prune attempt history", "err", err)
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
type storeCheckpoints struct{ st *store.Bolt }

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
	// "now" (and the discovery watermark over), skipping what was missed.
	if _, ok, err := c.st.Get(ctx, checkpointNS, key); err == nil && ok {
		return c.st.PutLater(checkpointNS, key, b)
	}
	return c.st.Put(ctx, checkpointNS, key, b)
}
