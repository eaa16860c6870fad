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
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sinks/stdout"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
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
	return serve(ctx, cfg, daemonDeps{log: log, stdout: stdout})
}

// daemonDeps are what serve takes from its caller besides the configuration.
type daemonDeps struct {
	log    *slog.Logger
	stdout io.Writer // the stdout sink writes here
	// ready, if set, receives the HTTP listener's address once the daemon is up.
	ready func(httpAddr string)
	// observe, if set, hears every delivery outcome (the demo prints them).
	observe func(bridge.Outcome)
}

// serve wires every part explicitly and runs them: sinks start first, sources stop first,
// in-flight deliveries get a bounded grace period, the store closes last.
func serve(ctx context.Context, cfg *Config, deps daemonDeps) error {
	log := deps.log
	st, err := store.Open(cfg.State.Dir, store.Options{Logger: log, Retention: cfg.State.Retention.D()})
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	defer st.Close()

	specs, closers, err := buildSinks(cfg, deps, st)
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	if err != nil {
		return err
	}
	sources, self, err := buildSources(cfg, log, st)
	if err != nil {
		return err
	}
	router := bridge.NewRouter(cfg.Routes, self)
	met := newMetrics(sources)
	observe := met.observe
	if deps.observe != nil {
		observe = func(o bridge.Outcome) { met.observe(o); deps.observe(o) }
	}
	disp := bridge.NewDispatcher(st, router, specs, bridge.DispatcherOptions{Logger: log, Observer: observe})
	emit := countingEmitter{next: disp, m: met}

	var (
		wg                    sync.WaitGroup
		dispCtx, stopDispatch = context.WithCancel(context.WithoutCancel(ctx))
		srcCtx, stopSources   = context.WithCancel(ctx)
	)
	defer stopDispatch()
	defer stopSources()
	dispDone := make(chan error, 1)
	go func() { dispDone <- disp.Run(dispCtx) }()

	var srv *http.Server
	addr := ""
	if cfg.HTTP.Listen != "off" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			stopDispatch()
			<-dispDone
			return fmt.Errorf("http listener: %w", err)
		}
		addr = ln.Addr().String()
		srv = &http.Server{Handler: httpHandler(sources, st, disp, met), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http listener failed", "err", err)
			}
		})
		log.Info("http listening", "addr", addr)
	}

	for _, src := range sources {
		wg.Go(func() { _ = bridge.Supervise(srcCtx, src, emit, log) })
	}
	log.Info("kdbridge started", "version", version, "sources", len(sources), "sinks", len(specs), "routes", len(cfg.Routes), "state", cfg.State.Dir)
	if deps.ready != nil {
		deps.ready(addr)
	}
	pruneDone := make(chan struct{})
	go func() { defer close(pruneDone); prune(srcCtx, st, cfg.State.Retention.D(), log) }()

	<-ctx.Done()
	log.Info("stopping: sources first, then deliveries in flight")
	stopSources()
	<-pruneDone
	if srv != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(shutCtx)
		cancel()
	}
	wg.Wait()
	stopDispatch()
	err = <-dispDone
	log.Info("stopped")
	return err
}

// prune forgets delivered events past the retention window, hourly.
func prune(ctx context.Context, st bridge.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := st.Prune(ctx, time.Now().Add(-retention)); err != nil {
			log.Error("prune state", "err", err)
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

// buildSinks makes every sink; the closers release their HTTP connections at shutdown.
func buildSinks(cfg *Config, deps daemonDeps, st bridge.Store) (specs []bridge.SinkSpec, closers []io.Closer, err error) {
	for _, e := range cfg.Sinks {
		spec := bridge.SinkSpec{Retry: e.Retry}
		log := deps.log.With("sink", e.Name)
		switch e.Type {
		case "webhook":
			s, err := webhook.New(e.Name, *e.Webhook, webhook.Options{Logger: log, UserAgent: "kdbridge/" + version})
			if err != nil {
				return specs, closers, fmt.Errorf("sink %s: %w", e.Name, err)
			}
			spec.Sink, spec.MaxInFlight = s, s.MaxInFlight()
			closers = append(closers, s)
		case "slack":
			s, err := slack.New(e.Name, *e.Slack, slack.Options{Logger: log, KV: st})
			if err != nil {
				return specs, closers, fmt.Errorf("sink %s: %w", e.Name, err)
			}
			spec.Sink, spec.MaxInFlight = s, s.MaxInFlight()
			closers = append(closers, s)
		case "stdout":
			spec.Sink, spec.MaxInFlight = stdout.New(e.Name, *e.Stdout, deps.stdout), 1
		default:
			return specs, closers, fmt.Errorf("sink %s: unknown type %q", e.Name, e.Type)
		}
		specs = append(specs, spec)
	}
	return specs, closers, nil
}

func buildSources(cfg *Config, log *slog.Logger, st bridge.Store) ([]bridge.Source, map[string]string, error) {
	var out []bridge.Source
	self := map[string]string{}
	for _, e := range cfg.Sources {
		switch e.Type {
		case "kinetic":
			s, err := kinetic.New(e.Name, *e.Kinetic, kinetic.Options{Logger: log, Checkpoints: storeCheckpoints{st}})
			if err != nil {
				return nil, nil, fmt.Errorf("source %s: %w", e.Name, err)
			}
			out = append(out, s)
			// The client id is the username kdbridge acts as (Kinetic ties the OAuth client to
			// a user account), so its own messages are never routed back out.
			self[e.Name] = e.Kinetic.ClientID
		default:
			return nil, nil, fmt.Errorf("source %s: unknown type %q", e.Name, e.Type)
		}
	}
	return out, self, nil
}

// storeCheckpoints keeps the Kinetic source's catch-up checkpoints in the store.
type storeCheckpoints struct{ st bridge.Store }

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
	return c.st.Put(ctx, checkpointNS, source+"/"+discussion, b)
}
