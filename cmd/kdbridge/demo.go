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
	slacksink "github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
	stdoutsink "github.com/kdbridge/kdbridge/sinks/stdout"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// runDemo needs nothing at all: it starts the Kinetic simulator with sample discussions and
// live chatter, and bridges them to the console, to a local webhook receiver that checks
// every signature, and two-way to a simulated Slack workspace (slacktest), where a simulated
// person replies in the mirrored threads and the replies come back into the discussions.
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
	titles := map[string]string{}
	for _, d := range discussions {
		ids = append(ids, d.ID)
		titles[d.ID] = d.Title
	}
	kc := &kinetic.Config{URL: sim.URL(), ClientID: "integration-user", ClientSecret: "integration-secret", Discussions: ids}
	kc.Defaults()
	const demoChannel = "C0DEMO001"
	fake := slacktest.NewServer(slacktest.Options{Channels: []slacktest.Channel{{ID: demoChannel, Name: "demo"}},
		Users: []slacktest.User{{ID: demoSlackUser, Email: "dana@slack.example", Name: "Dana"}}})
	defer fake.Close()
	sc := &slacksink.Config{Token: config.Secret(fake.Token()), AppToken: config.Secret(fake.AppToken()), APIURL: fake.URL(),
		Channel: demoChannel, Identity: slacksink.IdentityAuthor}
	if err := sc.Validate(); err != nil {
		return err
	}
	cfg := &Config{
		Log:     logConfig{Level: *logLevel, Format: "text"},
		HTTP:    httpConfig{Listen: *listen},
		State:   stateConfig{Dir: dir, Retention: config.Duration(time.Hour)},
		Sources: []sourceEntry{{Name: "demo-space", Type: "kinetic", Kinetic: kc}},
		Sinks: []sinkEntry{
			{Name: "console", Type: "stdout", Stdout: &stdoutsink.Config{Format: "text"}},
			{Name: "receiver", Type: "webhook", Webhook: &webhook.Config{URL: recv.URL, Secret: config.Secrets{config.Secret(secret)}}},
			{Name: "slack", Type: "slack", Slack: sc},
		},
		Routes: []bridge.RouteConfig{{Name: "everything", To: []bridge.TargetConfig{{Sink: "console"}, {Sink: "receiver"}, {Sink: "slack", Reply: true}}}},
	}
	for i := range cfg.Sinks {
		cfg.Sinks[i].Retry.Defaults()
	}
	cfg.Sinks[1].Webhook.Defaults()
	if err := cfg.Sinks[1].Webhook.Validate(); err != nil {
		return err
	}
	for i := range cfg.Routes {
		cfg.Routes[i].Defaults()
	}
	if err := cfg.twoWay(nil).Err(); err != nil {
		return err
	}
	for i := range cfg.Sinks {
		cfg.Sinks[i].Retry.Defaults()
	}

	fmt.Fprintf(out, "kdbridge demo: a simulated Kinetic space at %s with %d discussions;\n", sim.URL(), len(discussions))
	fmt.Fprintf(out, "every message goes to the console, to a webhook receiver at %s that verifies signatures,\n", recv.URL)
	fmt.Fprintf(out, "and to a simulated Slack channel #demo, where Dana replies in the threads: her replies come back\ninto the discussions (lines starting \"slack →\"). Ctrl-C stops.\n\n")

	chatCtx, stopChat := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sim.Chatter(chatCtx, *every, ids) })
	wg.Go(func() { slackReplies(chatCtx, fake, demoChannel, 3**every) })
	observe := func(o bridge.Outcome) {
		if e := o.Delivery.Event; o.Err == nil && e.Inbound != nil && e.Message != nil && e.Type == bridge.MessageCreated {
			fmt.Fprintf(out, "slack → kinetic  [%s] %s (Slack): %s\n", titles[e.Discussion.ID], e.Message.Author.Name(), e.Message.Text)
		}
	}
	ready := func(addr string) {
		if addr != "" {
			fmt.Fprintf(out, "the daemon's HTTP listener: http://%s/metrics, http://%s/readyz\n\n", addr, addr)
		}
	}
	err = serve(ctx, cfg, daemonDeps{log: log, stdout: out, observe: observe, ready: ready})
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

const demoSlackUser = "U0DANA001"

var slackLines = []string{
	"On it, checking the dashboards now.",
	"Thanks <@U0DANA001> here, <!channel> no action needed from anyone else.",
	"See <https://status.example.com|the status page> &amp; the runbook.",
	"Fixed on our side :white_check_mark:",
}

// slackReplies plays Dana, a person in the demo's Slack workspace, replying now and then in
// a thread kdbridge mirrors, until ctx ends.
func slackReplies(ctx context.Context, fake *slacktest.Server, channel string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var parents []string
		for _, m := range fake.Messages(channel) {
			if m.ThreadTS == "" && m.BotID != "" {
				parents = append(parents, m.TS)
			}
		}
		if len(parents) > 0 {
			fake.UserPosts(channel, parents[n%len(parents)], demoSlackUser, slackLines[n%len(slackLines)])
		}
	}
}
