package pgstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// envChild makes the test binary a replica that leads until it is killed (TestLeaderKilled).
const envChild = "KDBRIDGE_PGSTORE_CHILD_DSN"

// runChild campaigns as replica "child" and prints "leading <epoch>" once it leads.
func runChild(dsn string) int {
	ctx := context.Background()
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	_ = s.Elector("child", 0).Run(ctx, func(ctx context.Context, epoch int64) {
		fmt.Println("leading", epoch)
		<-ctx.Done()
		// A write after losing the lease must be refused.
		err := s.Put(context.Background(), "ns", "child", []byte("late"))
		fmt.Println("lost", epoch, errors.Is(err, ErrFenced))
	})
	return 0
}

// leadership records what an elector's lead function saw.
type leadership struct {
	epochs chan int64
	lost   chan int64
}

func newLeadership() *leadership {
	return &leadership{epochs: make(chan int64, 100), lost: make(chan int64, 100)}
}

func (l *leadership) lead(ctx context.Context, epoch int64) {
	l.epochs <- epoch
	<-ctx.Done()
	l.lost <- epoch
}

// runElector runs e until the test ends.
func runElector(t *testing.T, e *Elector, lead func(context.Context, int64)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(ctx, lead); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("no %s within 60s", what)
		panic("unreachable")
	}
}

// A deposed leader's writes fail with ErrFenced — refused by the server while it still
// believes it leads, at once after — and its lead context ends; the new leader's epoch is
// higher and its writes go through.
func TestDeposedLeaderIsFenced(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := openT(t, dsn), openT(t, dsn)
	ctx := context.Background()
	q := bridge.Queue{Target: bridge.Target{Sink: "s"}, Discussion: "d"}
	if _, err := a.Append(ctx, []bridge.Record{{Event: ev("d", 0), Targets: []bridge.Target{q.Target}}}); err != nil {
		t.Fatalf("Append before any elector exists: %v", err)
	}
	la, lb := newLeadership(), newLeadership()
	ea := a.Elector("a", 6*time.Second)
	if _, err := a.Append(ctx, []bridge.Record{{Event: ev("d", 1), Targets: []bridge.Target{q.Target}}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("Append with an elector that does not lead: %v, want ErrFenced", err)
	}
	runElector(t, ea, la.lead)
	e1 := recv(t, la.epochs, "leadership for a")
	p, ok, err := a.Head(ctx, q)
	if err != nil || !ok {
		t.Fatalf("Head = %v, %v", ok, err)
	}
	if err := a.Put(ctx, "ns", "k", []byte("a")); err != nil {
		t.Fatalf("the leader's Put: %v", err)
	}
	// Another replica takes the lease (as after a's lease expired) before a renews.
	pgtest.Exec(t, dsn, `UPDATE kdbridge_lease SET holder = 'intruder', epoch = epoch + 1, expires_at = now() + interval '1 minute'`)
	for _, w := range []struct {
		name string
		err  error
	}{
		{"Attempted", a.Attempted(ctx, p)},
		{"DeadLetter", a.DeadLetter(ctx, p, "x")},
		{"Put", a.Put(ctx, "ns", "k", []byte("deposed"))},
		{"LogAttempts", a.LogAttempts(ctx, []bridge.AttemptRecord{{EventID: "e", At: time.Now()}})},
		{"Append", func() error { _, err := a.Append(ctx, []bridge.Record{{Event: ev("d", 2)}}); return err }()},
	} {
		if !errors.Is(w.err, ErrFenced) {
			t.Errorf("deposed leader's %s: %v, want ErrFenced", w.name, w.err)
		}
	}
	// Done does not wait for its commit: it is refused there (or at once, if a knows).
	if err := a.Done(ctx, p); err != nil && !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed leader's Done: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if tks, _, _ := a.dones.all(); len(tks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Done was not committed nor refused within 60s")
		}
		time.Sleep(5 * time.Millisecond) // polling the committer, bounded by the deadline
	}
	if p2, ok, err := a.Head(ctx, q); err != nil || !ok || p2.Seq != p.Seq {
		t.Fatalf("after the deposed leader's Done, Head = %+v, %v, %v; want the delivery still pending", p2, ok, err)
	}
	if got := recv(t, la.lost, "a's lead context to end"); got != e1 {
		t.Fatalf("a lost epoch %d, want %d", got, e1)
	}
	if err := a.Done(ctx, p); !errors.Is(err, ErrFenced) {
		t.Fatalf("Done of a replica that knows it lost the lease: %v, want ErrFenced", err)
	}
	// The intruder goes away; b takes over.
	runElector(t, b.Elector("b", 3*time.Second), lb.lead)
	pgtest.Exec(t, dsn, `UPDATE kdbridge_lease SET expires_at = now()`)
	e2 := recv(t, lb.epochs, "leadership for b")
	if e2 <= e1+1 {
		t.Fatalf("epoch went from %d (and the intruder's) to %d", e1, e2)
	}
	// Reads and operator calls work on any replica.
	if _, err := a.DeadLetters(ctx, bridge.DeadLetterFilter{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Done(ctx, p); err != nil {
		t.Fatalf("the new leader's Done: %v", err)
	}
	if v, _, _ := b.Get(ctx, "ns", "k"); string(v) != "a" {
		t.Fatalf("value = %q, want a's (the deposed Put must not land)", v)
	}
	holder, epoch, _, err := a.Leader(ctx)
	if err != nil || holder != "b" || epoch != e2 {
		t.Fatalf("Leader = %q, %d, %v; want b, %d", holder, epoch, err, e2)
	}
}

// Electors that hand leadership over again and again never lead at the same time, and the
// epoch grows with every new holder.
func TestElectorsNeverBothLead(t *testing.T) {
	dsn := pgtest.DB(t)
	var active, overlaps atomic.Int32
	epochs := make(chan int64, 100)
	for _, name := range []string{"a", "b", "c"} {
		s := openT(t, dsn)
		runElector(t, s.Elector(name, 1500*time.Millisecond), func(ctx context.Context, epoch int64) {
			if active.Add(1) > 1 {
				overlaps.Add(1)
			}
			// Hold leadership a while, then give it up: the lease is released at once.
			hold := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-hold.C:
			}
			hold.Stop()
			active.Add(-1)
			epochs <- epoch
		})
	}
	var last int64
	for i := range 8 {
		e := recv(t, epochs, fmt.Sprintf("handover %d", i))
		if e <= last {
			t.Fatalf("epoch %d after %d", e, last)
		}
		last = e
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d times two electors led at once", n)
	}
}

// proxy forwards loopback connections to PostgreSQL until cut, as a network that can fail.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.Cut()
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
	}
}

// Cut closes every connection and refuses new ones.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// via returns dsn with its host and port replaced by the proxy's, and an application name.
func (p *proxy) via(t *testing.T, dsn, app string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

func hostOf(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// A leader that loses PostgreSQL (its network cut, its backends terminated) stops leading
// before its lease can expire, and another replica takes over.
func TestTakeoverWhenLeaderLosesPostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	px := newProxy(t, hostOf(t, dsn))
	a, b := openT(t, px.via(t, dsn, "replica-a")), openT(t, dsn)
	la, lb := newLeadership(), newLeadership()
	const ttl = 3 * time.Second
	runElector(t, a.Elector("a", ttl), la.lead)
	e1 := recv(t, la.epochs, "leadership for a")
	runElector(t, b.Elector("b", ttl), lb.lead)
	start := time.Now()
	px.Cut()
	pgtest.Exec(t, dsn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'replica-a'`)
	lostAt := recv(t, la.lost, "a to notice it lost PostgreSQL")
	aGaveUp := time.Since(start)
	e2 := recv(t, lb.epochs, "b to take over")
	took := time.Since(start)
	if lostAt != e1 || e2 <= e1 {
		t.Fatalf("epochs: a led %d and lost %d, b leads %d", e1, lostAt, e2)
	}
	if aGaveUp >= took {
		t.Fatalf("a gave up %v after the cut, b took over after %v: they overlapped", aGaveUp, took)
	}
	t.Logf("ttl %v: the cut leader gave up after %v, the other took over after %v", ttl, aGaveUp.Round(time.Millisecond), took.Round(time.Millisecond))
}

// startChild starts a replica in a child process and returns it with its output lines once
// it leads, and the epoch it leads with.
func startChild(t *testing.T, dsn string) (*exec.Cmd, <-chan string, int64) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-readDone
		cmd.Wait()
	})
	line := recv(t, lines, "the child to lead")
	epoch, err := strconv.ParseInt(strings.TrimPrefix(line, "leading "), 10, 64)
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	return cmd, lines, epoch
}

// A leader whose process hangs (SIGSTOP) is replaced once its lease expires; when it runs
// again it learns it lost the lease and its writes are refused.
func TestHungLeader(t *testing.T) {
	dsn := pgtest.DB(t)
	openT(t, dsn) // the schema exists before the child starts
	cmd, lines, e1 := startChild(t, dsn)
	b := openT(t, dsn)
	lb := newLeadership()
	runElector(t, b.Elector("b", 0), lb.lead)
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e2 := recv(t, lb.epochs, "b to take over")
	took := time.Since(start)
	if e2 <= e1 {
		t.Fatalf("epoch %d after %d", e2, e1)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, lines, "the resumed child to give up"), fmt.Sprintf("lost %d true", e1); got != want {
		t.Fatalf("the resumed child said %q, want %q", got, want)
	}
	t.Logf("default ttl %v: taken over %v after the leader hung", DefaultTTL, took.Round(time.Millisecond))
}

// A leader whose process is killed (kill -9) is replaced once its lease expires.
func TestLeaderKilled(t *testing.T) {
	dsn := pgtest.DB(t)
	openT(t, dsn) // the schema exists before the child starts
	cmd, _, e1 := startChild(t, dsn)
	b := openT(t, dsn)
	lb := newLeadership()
	runElector(t, b.Elector("b", 0), lb.lead)
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	e2 := recv(t, lb.epochs, "b to take over")
	if e2 <= e1 {
		t.Fatalf("epoch %d after %d", e2, e1)
	}
	t.Logf("default ttl %v: taken over %v after kill -9 of the leader", DefaultTTL, time.Since(start).Round(time.Millisecond))
}
