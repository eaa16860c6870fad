package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/internal/config"
)

// recordingSink is a sink whose behaviour each test sets; it records successful deliveries.
type recordingSink struct {
	name string
	mu   sync.Mutex
	fail func(d bridge.Delivery) error // nil: succeed
	got  []bridge.Delivery
	hits map[string]int // attempts per event id
}

func newSink(name string, fail func(bridge.Delivery) error) *recordingSink {
	return &recordingSink{name: name, fail: fail, hits: map[string]int{}}
}

func (s *recordingSink) Name() string { return s.name }

func (s *recordingSink) Deliver(ctx context.Context, d bridge.Delivery) error {
	s.mu.Lock()
	s.hits[d.Event.ID]++
	f := s.fail
	s.mu.Unlock()
	if f != nil {
		if err := f(d); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	return nil
}

func (s *recordingSink) delivered() []bridge.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openStore(t *testing.T, dir string) *store.Bolt {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var fastRetry = bridge.RetryConfig{Initial: config.Duration(5 * time.Millisecond), MaxInterval: config.Duration(20 * time.Millisecond), MaxAge: config.Duration(time.Hour)}

func routeAll(sinks ...string) *bridge.Router {
	var to []bridge.TargetConfig
	for _, s := range sinks {
		to = append(to, bridge.TargetConfig{Sink: s})
	}
	return bridge.NewRouter([]bridge.RouteConfig{{Name: "all", To: to}}, nil)
}

func event(disc string, n int) bridge.Event {
	id := fmt.Sprintf("m-%s-%04d", disc, n)
	return bridge.Event{
		ID: bridge.EventID("src", disc, id, "v1", bridge.MessageCreated), Type: bridge.MessageCreated, Source: "src",
		Discussion: bridge.Discussion{ID: disc},
		Message:    &bridge.Message{ID: id, Kind: bridge.KindUser, Text: fmt.Sprint(n), Author: bridge.User{Username: "alice"}},
	}
}

// running starts a dispatcher and stops it at cleanup.
func running(t *testing.T, st bridge.Store, r *bridge.Router, specs ...bridge.SinkSpec) (*bridge.Dispatcher, func()) {
	t.Helper()
	return runningWith(t, st, r, bridge.DispatcherOptions{}, specs...)
}

// runningWith is running with options (Grace is 2s unless set).
func runningWith(t *testing.T, st bridge.Store, r *bridge.Router, opts bridge.DispatcherOptions, specs ...bridge.SinkSpec) (*bridge.Dispatcher, func()) {
	t.Helper()
	if opts.Grace == 0 {
		opts.Grace = 2 * time.Second
	}
	d := bridge.NewDispatcher(st, r, specs, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("dispatcher did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

func emitAll(t *testing.T, d *bridge.Dispatcher, discs []string, n int) {
	t.Helper()
	for i := range n {
		for _, disc := range discs {
			if err := d.Emit(context.Background(), event(disc, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkOrder asserts that every discussion's deliveries are 0..n-1, once each, in order.
func checkOrder(t *testing.T, got []bridge.Delivery, discs []string, n int) {
	t.Helper()
	next := map[string]int{}
	for _, d := range got {
		disc := d.Event.Discussion.ID
		if want := fmt.Sprint(next[disc]); d.Event.Message.Text != want {
			t.Fatalf("discussion %s: delivered %s, want %s", disc, d.Event.Message.Text, want)
		}
		next[disc]++
	}
	for _, disc := range discs {
		if next[disc] != n {
			t.Errorf("discussion %s: %d delivered, want %d", disc, next[disc], n)
		}
	}
}

func TestOrderedDeliveryWithFlakySink(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	sink := newSink("hook", func(bridge.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() < 0.3 {
			return errors.New("503 from receiver")
		}
		return nil
	})
	d, _ := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, MaxInFlight: 4, Retry: fastRetry})
	discs := []string{"a", "b", "c", "d", "e"}
	emitAll(t, d, discs, 40)
	waitUntil(t, "200 deliveries", 20*time.Second, func() bool { return len(sink.delivered()) >= 200 })
	checkOrder(t, sink.delivered(), discs, 40)
}

func TestRetryAfterPausesOnlyItsQueue(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	sink := newSink("slack", func(d bridge.Delivery) error {
		if d.Event.Discussion.ID == "slow" {
			return bridge.RetryAfter(errors.New("429"), time.Hour)
		}
		return nil
	})
	d, _ := running(t, st, routeAll("slack"), bridge.SinkSpec{Sink: sink, MaxInFlight: 1, Retry: fastRetry})
	emitAll(t, d, []string{"slow", "fast"}, 20)
	waitUntil(t, "the other discussion's 20 deliveries", 10*time.Second, func() bool { return len(sink.delivered()) >= 20 })
	sink.mu.Lock()
	slowAttempts := sink.hits[event("slow", 0).ID]
	laterTried := sink.hits[event("slow", 1).ID]
	sink.mu.Unlock()
	if slowAttempts != 1 || laterTried != 0 {
		t.Errorf("slow queue: head tried %d times (want 1: waiting an hour), next tried %d times (want 0: order)", slowAttempts, laterTried)
	}
}

func TestPermanentFailureDeadLettersAndReplay(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	broken := true
	var mu sync.Mutex
	sink := newSink("hook", func(d bridge.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if broken && d.Event.Message.Text == "1" {
			return bridge.Permanent(errors.New("400 bad request: field x"))
		}
		return nil
	})
	d, _ := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, Retry: fastRetry})
	emitAll(t, d, []string{"a"}, 3)
	waitUntil(t, "2 deliveries", 10*time.Second, func() bool { return len(sink.delivered()) == 2 })
	var dls []bridge.DeadLetter
	waitUntil(t, "a dead letter", 5*time.Second, func() bool {
		dls, _ = st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
		return len(dls) == 1
	})
	if dl := dls[0]; dl.Pending.Event.Message.Text != "1" || dl.Pending.Attempts != 1 || dl.Reason == "" {
		t.Errorf("dead letter = %+v", dl)
	}
	if n := sink.hits[event("a", 1).ID]; n != 1 {
		t.Errorf("permanent failure retried: %d attempts", n)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	replayed, err := d.Replay(context.Background(), bridge.DeadLetterFilter{Sink: "hook"})
	if err != nil || len(replayed) != 1 {
		t.Fatalf("replay: %v, %d", err, len(replayed))
	}
	waitUntil(t, "the replayed delivery", 5*time.Second, func() bool { return len(sink.delivered()) == 3 })
	if left, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{}); len(left) != 0 {
		t.Errorf("dead letters after replay: %d", len(left))
	}
}

func TestFailingSinkDoesNotDelayOthers(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	down := newSink("down", func(bridge.Delivery) error { return errors.New("connection refused") })
	up := newSink("up", nil)
	d, _ := running(t, st, routeAll("down", "up"),
		bridge.SinkSpec{Sink: down, Retry: fastRetry}, bridge.SinkSpec{Sink: up, Retry: fastRetry})
	emitAll(t, d, []string{"a", "b"}, 50)
	waitUntil(t, "100 deliveries to the healthy sink", 10*time.Second, func() bool { return len(up.delivered()) == 100 })
	checkOrder(t, up.delivered(), []string{"a", "b"}, 50)
}

func TestGiveUpAfterMaxAge(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	sink := newSink("hook", func(bridge.Delivery) error { return errors.New("timeout") })
	policy := fastRetry
	policy.MaxAge = config.Duration(30 * time.Millisecond)
	d, _ := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, Retry: policy})
	emitAll(t, d, []string{"a"}, 1)
	waitUntil(t, "the delivery to be dead-lettered", 10*time.Second, func() bool {
		dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
		return len(dls) == 1
	})
	dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
	if dls[0].Pending.Attempts < 2 {
		t.Errorf("gave up after %d attempts", dls[0].Pending.Attempts)
	}
}

func TestDedupeAndResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	// First life: the sink is down; events are stored, not delivered.
	down := newSink("hook", func(bridge.Delivery) error { return errors.New("down") })
	d, stop := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: down, Retry: fastRetry})
	emitAll(t, d, []string{"a", "b"}, 10)
	emitAll(t, d, []string{"a", "b"}, 10) // the same events again: a reconnect replay
	stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Second life: everything pending is resumed, in order, once.
	st = openStore(t, dir)
	defer st.Close()
	up := newSink("hook", nil)
	d, _ = running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: up, Retry: fastRetry})
	waitUntil(t, "20 resumed deliveries", 10*time.Second, func() bool { return len(up.delivered()) >= 20 })
	emitAll(t, d, []string{"a"}, 10) // already known: not delivered again
	emitAll(t, d, []string{"a"}, 11) // only the 11th is new
	waitUntil(t, "the new event", 10*time.Second, func() bool { return len(up.delivered()) >= 21 })
	got := up.delivered()
	if len(got) != 21 {
		t.Fatalf("%d deliveries, want 21", len(got))
	}
	checkOrder(t, got[:20], []string{"a", "b"}, 10)
}

func TestShutdownWaitsForInFlightWithinGrace(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	started := make(chan struct{})
	release := make(chan struct{})
	sink := newSink("hook", func(d bridge.Delivery) error {
		close(started)
		<-release
		return nil
	})
	d, stop := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, Retry: fastRetry})
	emitAll(t, d, []string{"a"}, 1)
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a delivery was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	if len(sink.delivered()) != 1 {
		t.Error("in-flight delivery did not finish")
	}
	if qs, _ := st.Queues(context.Background()); len(qs) != 0 {
		t.Errorf("finished delivery still pending: %v", qs)
	}
}

func TestGoneTargetIsDisabledUntilReplay(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	gone := true
	sink := newSink("hook", func(bridge.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return bridge.Gone(errors.New("410 Gone"))
		}
		return nil
	})
	other := newSink("other", nil)
	d, _ := running(t, st, routeAll("hook", "other"), bridge.SinkSpec{Sink: sink, Retry: fastRetry}, bridge.SinkSpec{Sink: other, Retry: fastRetry})
	emitAll(t, d, []string{"a", "b"}, 5)
	waitUntil(t, "all 10 dead-lettered", 10*time.Second, func() bool {
		dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{Sink: "hook"})
		return len(dls) == 10
	})
	sink.mu.Lock()
	attempts := 0
	for _, n := range sink.hits {
		attempts += n
	}
	sink.mu.Unlock()
	if attempts > 2 { // at most the first of each discussion before the flag was set
		t.Errorf("%d attempts against a gone target, want it disabled after the first 410", attempts)
	}
	dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{Sink: "hook"})
	disabledSeen := false
	for _, dl := range dls {
		disabledSeen = disabledSeen || strings.Contains(dl.Reason, "target disabled")
	}
	if !disabledSeen {
		t.Errorf("no dead letter says the target is disabled: %+v", dls[len(dls)-1].Reason)
	}
	waitUntil(t, "the other sink's 10", 10*time.Second, func() bool { return len(other.delivered()) == 10 })

	mu.Lock()
	gone = false
	mu.Unlock()
	if _, err := d.Replay(context.Background(), bridge.DeadLetterFilter{Sink: "hook"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replay of all 10", 10*time.Second, func() bool { return len(sink.delivered()) == 10 })
	emitAll(t, d, []string{"c"}, 1)
	waitUntil(t, "a new event to the re-enabled target", 10*time.Second, func() bool { return len(sink.delivered()) == 11 })
}

func TestContinuousFailureDisablesTarget(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	sink := newSink("hook", func(bridge.Delivery) error { return errors.New("503") })
	policy := fastRetry
	policy.DisableAfter = config.Duration(50 * time.Millisecond)
	d, _ := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, Retry: policy})
	emitAll(t, d, []string{"a", "b", "c"}, 3)
	waitUntil(t, "every delivery dead-lettered", 10*time.Second, func() bool {
		dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
		return len(dls) == 9
	})
	dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
	for _, dl := range dls {
		if !strings.Contains(dl.Reason, "failing continuously since") {
			t.Errorf("reason = %q", dl.Reason)
		}
	}
}

func TestReconfigureRoutesAndSinks(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	a, b := newSink("a", nil), newSink("b", nil)
	d, _ := running(t, st, routeAll("a"), bridge.SinkSpec{Sink: a, Retry: fastRetry})
	emitAll(t, d, []string{"x"}, 3)
	waitUntil(t, "a's first 3", 5*time.Second, func() bool { return len(a.delivered()) == 3 })

	// Add sink b and route everything to both; a is untouched.
	if err := d.SetSinks(context.Background(), []bridge.SinkSpec{{Sink: a, Retry: fastRetry}, {Sink: b, Retry: fastRetry}}); err != nil {
		t.Fatal(err)
	}
	d.SetRouter(routeAll("a", "b"))
	for i := 3; i < 6; i++ {
		if err := d.Emit(context.Background(), event("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "3 more to a and 3 to b", 5*time.Second, func() bool { return len(a.delivered()) == 6 && len(b.delivered()) == 3 })

	// Remove a: its new deliveries stay in the store; b keeps going.
	if err := d.SetSinks(context.Background(), []bridge.SinkSpec{{Sink: b, Retry: fastRetry}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Emit(context.Background(), event("x", 6)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b's 4th", 5*time.Second, func() bool { return len(b.delivered()) == 4 })
	if n := len(a.delivered()); n != 6 {
		t.Errorf("removed sink got %d deliveries, want 6", n)
	}
	qs, _ := st.Queues(context.Background())
	if len(qs) != 1 || qs[0].Target.Sink != "a" {
		t.Errorf("pending queues = %+v, want a's one queue kept in the store", qs)
	}
	// Adding a back resumes its stored queue.
	a2 := newSink("a", nil)
	if err := d.SetSinks(context.Background(), []bridge.SinkSpec{{Sink: a2, Retry: fastRetry}, {Sink: b, Retry: fastRetry}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the kept delivery", 5*time.Second, func() bool { return len(a2.delivered()) == 1 })
}

func TestFailingSinkLogsStateChangesOnly(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	var mu sync.Mutex
	down := true
	sink := newSink("hook", func(bridge.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("503")
		}
		return nil
	})
	var logs syncLog
	d := bridge.NewDispatcher(st, routeAll("hook"), []bridge.SinkSpec{{Sink: sink, Retry: fastRetry}},
		bridge.DispatcherOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	emitAll(t, d, []string{"a", "b", "c", "d", "e"}, 2)
	waitUntil(t, "several failed attempts", 10*time.Second, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		n := 0
		for _, h := range sink.hits {
			n += h
		}
		return n >= 15
	})
	mu.Lock()
	down = false
	mu.Unlock()
	waitUntil(t, "the backlog", 10*time.Second, func() bool { return len(sink.delivered()) == 10 })
	text := logs.String()
	if n := strings.Count(text, "sink failing"); n != 1 {
		t.Errorf("%d 'sink failing' lines for one outage, want 1:\n%s", n, text)
	}
	if n := strings.Count(text, "sink recovered"); n != 1 {
		t.Errorf("%d 'sink recovered' lines, want 1:\n%s", n, text)
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
