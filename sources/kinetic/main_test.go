package kinetic

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestMain fails the run if a goroutine outlives the tests: Run must stop all it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testClientID = "integration-user"
	testSecret   = "integration-s3cret-Zq9"
	waitLimit    = 15 * time.Second // every wait in these tests ends by then
)

// newSim starts a simulator on 127.0.0.1 and closes it when the test ends.
func newSim(t *testing.T, opts kinetictest.Options) *kinetictest.Server {
	t.Helper()
	opts.ClientID, opts.ClientSecret = testClientID, testSecret
	srv := kinetictest.NewServer(opts)
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("simulator at %s, not on 127.0.0.1", srv.URL())
	}
	t.Cleanup(srv.Close)
	return srv
}

// fastTiming shortens every schedule so that the tests run in seconds.
func fastTiming() timing {
	t := defaultTiming()
	t.reconnectFirst, t.reconnectMax = 10*time.Millisecond, 100*time.Millisecond
	t.tokenFirst, t.tokenMax = 20*time.Millisecond, 100*time.Millisecond
	t.resubscribe = 200 * time.Millisecond
	t.discoverSkew = 0 // the simulator shares our clock
	t.startSkew = 0
	t.serverClock = false // our clock is the simulator's: "now" is exact (see TestFirstStartOnSpaceClock)
	t.emitFirst, t.emitMax = 5*time.Millisecond, 50*time.Millisecond
	t.catchUpFirst, t.catchUpMax = 20*time.Millisecond, 200*time.Millisecond
	t.rest = retryPolicy{initial: 10 * time.Millisecond, max: 100 * time.Millisecond, tries: 5}
	return t
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the log lines that contain every one of parts.
func (l *logBuffer) lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// recorder is an Emitter that keeps what it accepts; reject, if set, can refuse events.
type recorder struct {
	mu      sync.Mutex
	events  []bridge.Event
	reject  func(e bridge.Event) error
	largest int // the most events one Emit call carried
}

// setReject sets reject while the source may be emitting.
func (r *recorder) setReject(f func(e bridge.Event) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reject = f
}

// Emit accepts all events or none, as the store does.
func (r *recorder) Emit(ctx context.Context, evs ...bridge.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reject != nil {
		for _, e := range evs {
			if err := r.reject(e); err != nil {
				return err
			}
		}
	}
	r.events = append(r.events, evs...)
	r.largest = max(r.largest, len(evs))
	return nil
}

// largestEmit is the most events one accepted Emit call carried.
func (r *recorder) largestEmit() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.largest
}

func (r *recorder) all() []bridge.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// userMessages returns the message.created events of user messages in discussion, in
// emission order, first occurrence of each event id only; dups counts the others.
func (r *recorder) userMessages(discussion string) (msgs []bridge.Event, dups int) {
	seen := map[string]bool{}
	for _, e := range r.all() {
		if e.Type != bridge.MessageCreated || e.Discussion.ID != discussion || e.Message.Kind != bridge.KindUser {
			continue
		}
		if seen[e.ID] {
			dups++
			continue
		}
		seen[e.ID] = true
		msgs = append(msgs, e)
	}
	return msgs, dups
}

// eventually polls cond until it holds or the wait limit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// harness runs a Source against a simulator.
type harness struct {
	t    *testing.T
	srv  *kinetictest.Server
	src  *Source
	rec  *recorder
	emit bridge.Emitter // what Run emits into: rec unless a test sets another (around rec)
	logs *logBuffer
	cps  Checkpoints
	tr   *http.Transport
	stop func()
}

type harnessOpt func(c *Config, o *Options, tm *timing)

// start builds and runs a source for discussions; stop (also run at cleanup) ends Run and
// checks that it returned nil.
func start(t *testing.T, srv *kinetictest.Server, discussions []string, opts ...harnessOpt) *harness {
	t.Helper()
	h := build(t, srv, discussions, opts...)
	h.run()
	return h
}

// build builds a source for discussions without running it; run starts it.
func build(t *testing.T, srv *kinetictest.Server, discussions []string, opts ...harnessOpt) *harness {
	t.Helper()
	cfg := Config{URL: srv.URL(), ClientID: testClientID, ClientSecret: testSecret, Discussions: discussions,
		Heartbeat: config.Duration(time.Second), AckTimeout: config.Duration(2 * time.Second)}
	logs := &logBuffer{}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	o := Options{
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HTTPClient:  &http.Client{Timeout: 5 * time.Second, Transport: tr},
		Checkpoints: &MemoryCheckpoints{},
	}
	tm := fastTiming()
	for _, opt := range opts {
		opt(&cfg, &o, &tm)
	}
	src, err := New("acme", cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	src.setTiming(tm)
	h := &harness{t: t, srv: srv, src: src, rec: &recorder{}, logs: logs, cps: o.Checkpoints, tr: tr}
	h.stop = func() {}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("source %s log:\n%s", t.Name(), logs.String())
		}
	})
	return h
}

// run starts Run in a goroutine.
func (h *harness) run() {
	t := h.t
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var emit bridge.Emitter = h.rec
	if h.emit != nil {
		emit = h.emit
	}
	go func() { done <- h.src.Run(ctx, emit) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("Run did not return after cancel")
			}
			h.tr.CloseIdleConnections()
		})
	}
}

func (h *harness) waitReady() {
	h.t.Helper()
	eventually(h.t, "the source to be ready", func() bool { return h.src.Status().Ready() })
}

// waitMessages waits until the user messages posted in discussion have all been emitted and
// returns them, first occurrences only, in emission order.
func (h *harness) waitMessages(discussion string, n int) []bridge.Event {
	h.t.Helper()
	var got []bridge.Event
	eventually(h.t, "messages", func() bool {
		got, _ = h.rec.userMessages(discussion)
		return len(got) >= n
	})
	return got
}

// post posts n messages with texts prefix-0 … and returns their ids in order.
func post(t *testing.T, srv *kinetictest.Server, discussion, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		m, err := srv.PostMessage(discussion, kinetictest.Alice, prefix+"-"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// messageIDs lists the message ids of events.
func messageIDs(evs []bridge.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Message.ID
	}
	return out
}

var errRejected = errors.New("not now")

// exactlyOnce checks the user messages of discussion among evs: want, in order, each under
// one event id, and no event id emitted twice.
func exactlyOnce(t *testing.T, evs []bridge.Event, discussion string, want []string) {
	t.Helper()
	var got []string
	eventOf := map[string]string{} // message id → event id
	emitted := map[string]int{}    // event id → times
	for _, e := range evs {
		if e.Type != bridge.MessageCreated || e.Discussion.ID != discussion || e.Message.Kind != bridge.KindUser {
			continue
		}
		emitted[e.ID]++
		if emitted[e.ID] > 1 {
			t.Errorf("discussion %s: event %s (message %s) emitted %d times", discussion, e.ID, e.Message.ID, emitted[e.ID])
			continue
		}
		if prev, ok := eventOf[e.Message.ID]; ok {
			t.Errorf("discussion %s: message %s emitted under two event ids, %s and %s", discussion, e.Message.ID, prev, e.ID)
			continue
		}
		eventOf[e.Message.ID] = e.ID
		got = append(got, e.Message.ID)
	}
	if slices.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("discussion %s: %d messages, want %d; first difference at %d:\n got %v\nwant %v",
		discussion, len(got), len(want), i, got[i:min(len(got), i+5)], want[i:min(len(want), i+5)])
}

// waitStatus polls Status until cond holds.
func (h *harness) waitStatus(what string, cond func(st Status) bool) Status {
	h.t.Helper()
	var st Status
	eventually(h.t, what, func() bool {
		st = h.src.Status()
		return cond(st)
	})
	return st
}

// statusIDs lists the discussions of a Status, in order.
func statusIDs(st Status) []string {
	out := make([]string, len(st.Discussions))
	for i, d := range st.Discussions {
		out[i] = d.ID
	}
	return out
}
