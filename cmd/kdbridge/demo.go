package main

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	stdoutsink "github.com/kdbridge/kdbridge/sinks/stdout"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// runDemo needs nothing at all: it starts the Kinetic simulator with sample discussions and
// live chatter, and bridges them to the console and to a local webhook receiver that checks
// every signature.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	every := fs.Duration("every", 2*time.Second, "how often the simulated users post")
	stateDir := fs.String("state-dir", "", "state directory (default: a temporary one, removed on exit)")
	logLevel := fs.String("log-level", "warn", "log level of the daemon's own lines")
	listen := fs.String("http-listen", "127.0.0.1:9090", `the daemon's HTTP listener (/metrics, /readyz, ...); "off" disables it`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *every <= 0 {
		return fmt.Errorf("%w: -every must be positive", errUsage)
	}
	if err := processCheck["http.listen"](*listen); err != nil {
		return fmt.Errorf("%w: -http-listen: %v", errUsage, err)
	}
	log, err := newLogger(logConfig{Level: *logLevel, Format: "text"}, stderr)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	dir := *stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kdbridge-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}

	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	discussions := sim.SeedSamples()

	secret, err := newWebhookSecret()
	if err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}
	recv, err := startReceiver("127.0.0.1:0", secret, out)
	if err != nil {
		return err
	}
	defer recv.Close()

	var ids []string
	for _, d := range discussions {
		ids = append(ids, d.ID)
	}
	kc := &kinetic.Config{URL: sim.URL(), ClientID: "integration-user", ClientSecret: "integration-secret", Discussions: ids}
	kc.Defaults()
	cfg := &Config{
		Log:     logConfig{Level: *logLevel, Format: "text"},
		HTTP:    httpConfig{Listen: *listen},
		State:   stateConfig{Dir: dir, Retention: config.Duration(time.Hour)},
		Sources: []sourceEntry{{Name: "demo-space", Type: "kinetic", Kinetic: kc}},
		Sinks: []sinkEntry{
			{Name: "console", Type: "stdout", Stdout: &stdoutsink.Config{Format: "text"}},
			{Name: "receiver", Type: "webhook", Webhook: &webhook.Config{URL: recv.URL, Secret: config.Secrets{config.Secret(secret)}}},
		},
		Routes: []bridge.RouteConfig{{Name: "everything", To: []bridge.TargetConfig{{Sink: "console"}, {Sink: "receiver"}}}},
	}
	for i := range cfg.Sinks {
		cfg.Sinks[i].Retry.Defaults()
	}
	cfg.Sinks[1].Webhook.Defaults()
	if err := cfg.Sinks[1].Webhook.Validate(); err != nil {
		return err
	}

	fmt.Fprintf(out, "kdbridge demo: a simulated Kinetic space at %s with %d discussions;\n", sim.URL(), len(discussions))
	fmt.Fprintf(out, "every message goes to the console and to a webhook receiver at %s that verifies signatures.\nCtrl-C stops.\n\n", recv.URL)

	chatCtx, stopChat := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sim.Chatter(chatCtx, *every, ids) })
	ready := func(addr string) {
		if addr != "" {
			fmt.Fprintf(out, "the daemon's HTTP listener: http://%s/metrics, http://%s/readyz\n\n", addr, addr)
		}
	}
	err = serve(ctx, cfg, daemonDeps{log: log, stdout: out, ready: ready})
	stopChat()
	wg.Wait()
	fmt.Fprintf(out, "\ndemo stopped: %d webhook deliveries received, %d with a bad signature\n", recv.ok.Load(), recv.bad.Load())
	return err
}

func newWebhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := crand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// lockedWriter lets the console sink and the receiver share stdout line by line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
