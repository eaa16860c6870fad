package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/pgtest"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// haConfig is bridgeConfig on PostgreSQL, for the replica named replica.
func haConfig(sim *kinetictest.Server, hookURL, dsn, replica string, ids []string) string {
	return fmt.Sprintf(`
log: {level: info}
http: {listen: "127.0.0.1:0"}
state: {backend: postgres, dsn: %q, replica: %s}
sources:
  - name: acme
    type: kinetic
    url: %s
    client_id: integration-user
    client_secret: integration-secret
    discussions: [%s]
sinks:
  - name: hook
    type: webhook
    url: %s
    secret: %s
    retry: {initial: 50ms, max_interval: 500ms}
routes:
  - name: all
    to: [hook]
`, dsn, replica, sim.URL(), strings.Join(ids, ", "), hookURL, testSecret)
}

// replica is a kdbridge child process on PostgreSQL.
type replica struct {
	name string
	proc *child
	log  *syncBuffer
	addr string
}

var httpAddrRE = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

func startReplica(t *testing.T, name, cfg string) *replica {
	t.Helper()
	r := &replica{name: name, log: &syncBuffer{}}
	r.proc = startChild(t, r.log, "run", "-config", cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica %s log:\n%s", name, r.log.String())
		}
	})
	return r
}

// listening waits for the replica's HTTP address.
func (r *replica) listening(t *testing.T) {
	t.Helper()
	waitFor(t, r.name+" listening", 30*time.Second, func() bool {
		m := httpAddrRE.FindStringSubmatch(r.log.String())
		if m != nil {
			r.addr = m[1]
		}
		return m != nil
	})
}

// readyz returns the replica's /readyz status and body (0 when it does not answer).
func (r *replica) readyz() (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *replica) leads() bool {
	_, body := r.readyz()
	return strings.Contains(body, "this replica ("+r.name+") leads")
}

// burst posts total messages over the discussions from 5 posters (each owning a fixed set
// of discussions, so that each discussion's order is its poster's).
type burst struct {
	mu   sync.Mutex
	sent map[string][]string // discussion → texts in posting order
	n    int
	done chan struct{}
}

func startBurst(t *testing.T, sim *kinetictest.Server, ids []string, total int) *burst {
	b := &burst{sent: map[string][]string{}, done: make(chan struct{})}
	const posters = 5
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			u := kinetictest.User{Username: "alice", DisplayName: "Alice"}
			for i := p; i < total; i += posters {
				disc := ids[i%len(ids)]
				text := fmt.Sprintf("burst %05d", i)
				if _, err := sim.PostMessage(disc, u, text); err != nil {
					t.Error(err)
					return
				}
				b.mu.Lock()
				b.sent[disc] = append(b.sent[disc], text)
				b.n++
				b.mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(b.done) }()
	return b
}

func (b *burst) count() int { b.mu.Lock(); defer b.mu.Unlock(); return b.n }

// missing describes what recv lacks of the burst, for a failed test: how many messages each
// discussion lacks, and the first of them, which tells a stuck queue (the rest behind it)
// from lost messages (gaps).
func (b *burst) missing(recv *testReceiver) string {
	got := map[string]bool{}
	for _, d := range recv.deliveries() {
		got[d.envelope.Data.Message.Text] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for disc, texts := range b.sent {
		n, first, last := 0, "", ""
		for _, text := range texts {
			if !got[text] {
				if n == 0 {
					first = text
				}
				n++
			} else if n > 0 {
				last = text // delivered after a missing one: a gap, not a stuck tail
			}
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("%s: %d missing from %q (delivered after it: %q)", disc, n, first, last))
		}
	}
	sort.Strings(out)
	return fmt.Sprintf("%d of %d posted messages delivered; %d discussions lack some:\n%s", len(got), b.n, len(out), strings.Join(out, "\n"))
}

// explainMissing logs what recv lacks of b when the test fails (also by a Fatal in waitFor).
func explainMissing(t *testing.T, b *burst, recv *testReceiver) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(b.missing(recv))
		}
	})
}

// verify checks that every posted message was delivered, first deliveries in order per
// discussion, and redeliveries only under the same webhook-id; it returns the redeliveries.
func (b *burst) verify(t *testing.T, recv *testReceiver) int {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	discOf := map[string]string{}
	for disc, texts := range b.sent {
		for _, text := range texts {
			discOf[text] = disc
		}
	}
	next := map[string]int{}
	idOf := map[string]string{}
	dups := 0
	for _, d := range recv.deliveries() {
		text := d.envelope.Data.Message.Text
		disc, ok := discOf[text]
		if !ok {
			t.Errorf("delivered a message never posted: %q", text)
			continue
		}
		if id, seen := idOf[text]; seen {
			dups++
			if id != d.id {
				t.Errorf("%q delivered under two webhook-ids: %s and %s", text, id, d.id)
			}
			continue
		}
		idOf[text] = d.id
		if want := b.sent[disc][next[disc]]; text != want {
			t.Errorf("discussion %s: first delivery %q, want %q", disc, text, want)
		}
		next[disc]++
	}
	if len(idOf) != len(discOf) {
		t.Errorf("%d of %d messages delivered", len(idOf), len(discOf))
	}
	return dups
}

func (r *testReceiver) distinct() int {
	seen := map[string]bool{}
	for _, d := range r.deliveries() {
		seen[d.envelope.Data.Message.Text] = true
	}
	return len(seen)
}

func failoverSetup(t *testing.T, discussions int) (*kinetictest.Server, *testReceiver, []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("failover tests run child processes and PostgreSQL")
	}
	sim := kinetictest.NewServer(kinetictest.Options{})
	t.Cleanup(sim.Close)
	recv := newTestReceiver(t)
	var ids []string
	for i := range discussions {
		ids = append(ids, sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprintf("Failover %d", i)}).ID)
	}
	return sim, recv, ids
}

// TestE2EFailoverKillLeader: two replicas on one database; the leader is killed (-9) in the
// middle of a burst of 5,000 messages over 50 discussions; the follower takes over and
// every message is delivered, in order per discussion.
func TestE2EFailoverKillLeader(t *testing.T) {
	sim, recv, ids := failoverSetup(t, 50)
	dsn := pgtest.DB(t)
	a := startReplica(t, "alpha", writeConfig(t, haConfig(sim, recv.URL, dsn, "alpha", ids)))
	a.listening(t)
	waitFor(t, "alpha leads and is ready", 60*time.Second, func() bool { code, _ := a.readyz(); return code == 200 && a.leads() })
	b := startReplica(t, "beta", writeConfig(t, haConfig(sim, recv.URL, dsn, "beta", ids)))
	b.listening(t)
	waitFor(t, "beta ready as a follower", 30*time.Second, func() bool {
		code, body := b.readyz()
		return code == 200 && strings.Contains(body, "leader: alpha")
	})

	const total = 5000
	posted := startBurst(t, sim, ids, total)
	explainMissing(t, posted, recv)
	waitFor(t, "2,000 messages posted", 60*time.Second, func() bool { return posted.count() >= 2000 })
	a.proc.kill(t)
	killed := time.Now()
	waitFor(t, "beta leads", 60*time.Second, b.leads)
	tookOver := time.Since(killed)
	before := recv.distinct()
	waitFor(t, "a delivery by beta", 60*time.Second, func() bool { return recv.distinct() > before })
	resumed := time.Since(killed)
	<-posted.done
	waitFor(t, "every message delivered", 120*time.Second, func() bool { return recv.distinct() >= total })
	if code := b.proc.terminate(t); code != 0 {
		t.Errorf("beta's exit code after SIGTERM = %d, want 0", code)
	}
	dups := posted.verify(t, recv)
	t.Logf("failover: beta led %s after alpha's kill -9, delivered again %s after; %d messages over %d discussions, %d deliveries, %d redeliveries (same webhook-id)",
		tookOver.Round(time.Millisecond), resumed.Round(time.Millisecond), total, len(ids), len(recv.deliveries()), dups)
}

// TestE2EFailoverBeforeFirstCatchUp: the first leader dies before any of its first
// catch-ups ends (the Discussions REST API fails until then), after messages were posted
// while it ran. No discussion has a checkpoint, but the first-start mark it stored before
// subscribing makes the new leader catch them up from then, not from its own start: every
// message is delivered, in order.
func TestE2EFailoverBeforeFirstCatchUp(t *testing.T) {
	sim, recv, ids := failoverSetup(t, 5)
	dsn := pgtest.DB(t)
	sim.FailREST(1<<30, 503)
	a := startReplica(t, "alpha", writeConfig(t, haConfig(sim, recv.URL, dsn, "alpha", ids)))
	a.listening(t)
	waitFor(t, "alpha leads", 60*time.Second, a.leads)
	waitFor(t, "alpha's subscribes", 30*time.Second, func() bool { return sim.Stats().Subscribes >= int64(len(ids)) })
	b := startReplica(t, "beta", writeConfig(t, haConfig(sim, recv.URL, dsn, "beta", ids)))
	b.listening(t)
	waitFor(t, "beta a follower", 30*time.Second, func() bool { _, body := b.readyz(); return strings.Contains(body, "leader: alpha") })

	const total = 50
	posted := startBurst(t, sim, ids, total)
	explainMissing(t, posted, recv)
	<-posted.done
	// Older than the new leader's own "now" (its first subscribe, less 2 s) will be.
	time.Sleep(3 * time.Second)
	if n := recv.distinct(); n != 0 {
		t.Fatalf("alpha delivered %d messages, want none before a catch-up", n)
	}
	a.proc.kill(t)
	sim.FailREST(0, 0)
	waitFor(t, "beta leads", 60*time.Second, b.leads)
	waitFor(t, "every message delivered", 60*time.Second, func() bool { return recv.distinct() >= total })
	if code := b.proc.terminate(t); code != 0 {
		t.Errorf("beta's exit code after SIGTERM = %d, want 0", code)
	}
	posted.verify(t, recv)
	if !strings.Contains(b.log.String(), "an earlier start ended before every discussion had a checkpoint") {
		t.Errorf("beta did not report alpha's pending first-start mark")
	}
}

// TestE2EFailoverPostgresOutage: a replica started while PostgreSQL is down waits for it
// (the reason on /readyz), then PostgreSQL stops for 15 s in the middle of a burst: the
// replica keeps running, says so on /readyz, and once PostgreSQL is back every message is
// delivered, in order per discussion.
func TestE2EFailoverPostgresOutage(t *testing.T) {
	sim, recv, ids := failoverSetup(t, 20)
	c := pgtest.StartCluster(t)
	dsn := c.NewDB(t)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	a := startReplica(t, "alpha", writeConfig(t, haConfig(sim, recv.URL, dsn, "alpha", ids)))
	a.listening(t)
	unreachable := func() bool {
		code, body := a.readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "state: postgres unreachable (")
	}
	waitFor(t, "/readyz: postgres unreachable at start", 30*time.Second, unreachable)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alpha leads and is ready", 60*time.Second, func() bool { code, _ := a.readyz(); return code == 200 && a.leads() })

	const total = 2000
	posted := startBurst(t, sim, ids, total)
	explainMissing(t, posted, recv)
	waitFor(t, "800 messages posted", 60*time.Second, func() bool { return posted.count() >= 800 })
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitFor(t, "/readyz: postgres unreachable", 15*time.Second, unreachable)
	<-time.After(15*time.Second - time.Since(stopped)) // the outage lasts 15 s
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	<-posted.done
	waitFor(t, "every message delivered", 120*time.Second, func() bool { return recv.distinct() >= total })
	if code := a.proc.terminate(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	dups := posted.verify(t, recv)
	t.Logf("PostgreSQL down 15 s mid-burst: %d messages over %d discussions, %d deliveries, %d redeliveries (same webhook-id)", total, len(ids), len(recv.deliveries()), dups)
}

// TestE2EFailoverSimultaneousStart: two replicas start at the same instant on an empty
// database: the schema is created once, exactly one leads, and it delivers everything.
func TestE2EFailoverSimultaneousStart(t *testing.T) {
	sim, recv, ids := failoverSetup(t, 10)
	dsn := pgtest.DB(t)
	cfgA := writeConfig(t, haConfig(sim, recv.URL, dsn, "alpha", ids))
	cfgB := writeConfig(t, haConfig(sim, recv.URL, dsn, "beta", ids))
	a, b := startReplica(t, "alpha", cfgA), startReplica(t, "beta", cfgB)
	a.listening(t)
	b.listening(t)
	waitFor(t, "both ready, one leading", 60*time.Second, func() bool {
		ca, _ := a.readyz()
		cb, _ := b.readyz()
		return ca == 200 && cb == 200 && (a.leads() || b.leads())
	})
	if a.leads() && b.leads() {
		t.Fatal("both replicas lead")
	}
	const total = 500
	posted := startBurst(t, sim, ids, total)
	explainMissing(t, posted, recv)
	<-posted.done
	waitFor(t, "every message delivered", 60*time.Second, func() bool { return recv.distinct() >= total })
	if dups := posted.verify(t, recv); dups != 0 {
		t.Errorf("%d redeliveries without any failure", dups)
	}
	for _, r := range []*replica{a, b} {
		if code := r.proc.terminate(t); code != 0 {
			t.Errorf("%s: exit code after SIGTERM = %d, want 0", r.name, code)
		}
	}
}
