package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// delivery is what the test receiver saw of one webhook request.
type delivery struct {
	id       string
	envelope struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      struct {
			Source     string `json:"source"`
			Discussion struct {
				ID      string `json:"id"`
				Title   string `json:"title"`
				URL     string `json:"url"`
				Related []struct {
					Type string `json:"type"`
					Key  string `json:"key"`
				} `json:"related_items"`
			} `json:"discussion"`
			Message struct {
				ID        string          `json:"id"`
				VersionID string          `json:"version_id"`
				Kind      string          `json:"kind"`
				Text      string          `json:"text"`
				Content   json.RawMessage `json:"content"`
				Author    struct {
					Username    string `json:"username"`
					DisplayName string `json:"display_name"`
					Email       string `json:"email"`
				} `json:"author"`
				CreatedAt time.Time `json:"created_at"`
			} `json:"message"`
			Raw json.RawMessage `json:"raw"`
		} `json:"data"`
	}
}

// receiver is an httptest webhook endpoint that verifies every signature with the
// reference Standard Webhooks library (not with kdbridge's signing code).
type testReceiver struct {
	*httptest.Server
	t        *testing.T
	mu       sync.Mutex
	got      []delivery
	badSig   int
	statusFn func(n int) int // optional: the status to answer the n-th request with
	requests int
}

func newTestReceiver(t *testing.T) *testReceiver {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &testReceiver{t: t}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests++
		if r.statusFn != nil {
			if code := r.statusFn(r.requests); code != 0 && code/100 != 2 {
				w.WriteHeader(code)
				return
			}
		}
		if err := wh.Verify(body, req.Header); err != nil {
			r.badSig++
			t.Errorf("signature of %s: %v", req.Header.Get("webhook-id"), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var d delivery
		d.id = req.Header.Get("webhook-id")
		if err := json.Unmarshal(body, &d.envelope); err != nil {
			t.Errorf("body is not the envelope: %v: %s", err, body)
		}
		if ct := req.Header.Get("content-type"); ct != "application/json" {
			t.Errorf("content-type = %q", ct)
		}
		if ua := req.Header.Get("user-agent"); !strings.HasPrefix(ua, "kdbridge/") {
			t.Errorf("user-agent = %q", ua)
		}
		r.got = append(r.got, d)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *testReceiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kdbridge.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// inProcess runs the real `run` command in-process and stops it at cleanup.
type inProcess struct {
	stdout, stderr syncBuffer
	done           chan error
	cancel         context.CancelFunc
}

func startDaemon(t *testing.T, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &inProcess{done: make(chan error, 1), cancel: cancel}
	go func() { d.done <- run(ctx, append([]string{"run"}, args...), &d.stdout, &d.stderr) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *inProcess) stop(t *testing.T) error {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop within 20s; log:\n%s", d.stderr.String())
		return nil
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// listenAt makes a configuration from bridgeConfig listen on addr instead of a port of its
// own: for tests that reach the daemon's HTTP API, or start it again on the same address.
func listenAt(cfg, addr string) string {
	return strings.Replace(cfg, `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", addr), 1)
}

func bridgeConfig(sim *kinetictest.Server, secret, hookURL, stateDir string, ids []string) string {
	return fmt.Sprintf(`
log: {level: debug}
http: {listen: "127.0.0.1:0"}
state: {dir: %q}
sources:
  - name: acme
    type: kinetic
    url: %s
    client_id: integration-user
    client_secret: %s
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
`, stateDir, sim.URL(), secret, strings.Join(ids, ", "), hookURL, testSecret)
}

func TestEndToEndWebhook(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	var ids []string
	titles := map[string]string{}
	for i := range 3 {
		d := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprintf("Incident %d", i)})
		ids = append(ids, d.ID)
		titles[d.ID] = d.Title
	}
	addr := freeAddr(t)
	cfg := writeConfig(t, listenAt(bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), ids), addr))
	d := startDaemon(t, "-config", cfg)
	waitFor(t, "3 subscriptions", 15*time.Second, func() bool { return sim.Stats().Subscriptions >= 3 })
	waitFor(t, "/readyz to say ready", 15*time.Second, func() bool { return httpGet(t, "http://"+addr+"/readyz") == "ready\n" })
	if got := httpGet(t, "http://"+addr+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	var hc bytes.Buffer
	if err := run(context.Background(), []string{"healthcheck", "-http-listen", addr}, &hc, &hc); err != nil {
		t.Errorf("healthcheck: %v %s", err, hc.String())
	}
	if err := run(context.Background(), []string{"healthcheck", "-http-listen", freeAddr(t)}, &hc, &hc); err == nil {
		t.Error("healthcheck of a port nobody listens on succeeded")
	}

	alice := kinetictest.User{Username: "alice", DisplayName: "Alice Moreau", Email: "alice@example.com"}
	const perDiscussion = 100
	for i := range perDiscussion {
		for _, id := range ids {
			if _, err := sim.PostMessage(id, alice, fmt.Sprintf("msg %03d with <!channel> & \"quotes\"", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := perDiscussion * len(ids)
	waitFor(t, fmt.Sprintf("%d deliveries", want), 30*time.Second, func() bool { return len(recv.deliveries()) >= want })

	seenIDs := map[string]bool{}
	next := map[string]int{}
	for _, got := range recv.deliveries() {
		e := got.envelope
		if seenIDs[got.id] {
			t.Errorf("webhook-id %s delivered twice", got.id)
		}
		seenIDs[got.id] = true
		if e.Type != "message.created" || e.Data.Source != "acme" || e.Timestamp.IsZero() {
			t.Errorf("envelope header fields: %+v", e)
		}
		disc := e.Data.Discussion.ID
		if e.Data.Discussion.Title != titles[disc] {
			t.Errorf("discussion title = %q, want %q", e.Data.Discussion.Title, titles[disc])
		}
		m := e.Data.Message
		wantText := fmt.Sprintf("msg %03d with <!channel> & \"quotes\"", next[disc])
		if m.Text != wantText {
			t.Errorf("discussion %s: got %q, want %q (out of order or lost)", disc, m.Text, wantText)
		}
		next[disc]++
		if m.ID == "" || m.VersionID == "" || m.Kind != "user" || m.Author.DisplayName != "Alice Moreau" || m.Author.Username != "alice" || m.CreatedAt.IsZero() || len(m.Content) == 0 {
			t.Errorf("message fields: %+v", m)
		}
	}
	for _, id := range ids {
		if next[id] != perDiscussion {
			t.Errorf("discussion %s: %d messages delivered, want %d", id, next[id], perDiscussion)
		}
	}
	// A delivery is counted once the receiver's answer is back, which may be just after the
	// receiver has recorded it: wait for the last ones to be counted.
	var metrics string
	waitFor(t, "the deliveries counted", 10*time.Second, func() bool {
		metrics = httpGet(t, "http://"+addr+"/metrics")
		return strings.Contains(metrics, `kdbridge_delivery_latency_seconds_count{sink="hook"} 300`)
	})
	// 300 user messages plus the System "Participant Joined" messages of kdbridge's own joins.
	if !regexp.MustCompile(`(?m)^kdbridge_events_received_total\{source="acme",type="message.created"\} 30[0-9]$`).MatchString(metrics) {
		t.Errorf("/metrics: events received not counted:\n%s", metrics)
	}
	for _, want := range []string{
		`kdbridge_deliveries_total{outcome="delivered",sink="hook"} 300`,
		`kdbridge_delivery_latency_seconds_count{sink="hook"} 300`,
		`kdbridge_source_identified{source="acme"} 1`,
		`kdbridge_source_subscriptions{source="acme",state="subscribed"} 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := d.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.stderr.String())
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestWrongCredentialsKeepTrying(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	d0 := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	const wrong = "wrong-secret-do-not-print"
	addr := freeAddr(t)
	cfg := writeConfig(t, listenAt(bridgeConfig(sim, wrong, recv.URL, t.TempDir(), []string{d0.ID}), addr))

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "-config", cfg}, &out, &errOut); err != nil {
		t.Fatalf("check: %v\n%s", err, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), wrong) || strings.Contains(out.String(), testSecret) {
		t.Errorf("check printed a secret:\n%s", out.String())
	}

	d := startDaemon(t, "-config", cfg)
	waitFor(t, "two refused token requests", 15*time.Second, func() bool { return sim.Stats().TokenRequests >= 2 })
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not identified") || strings.Contains(string(body), wrong) {
		t.Errorf("/readyz before identify = %d %q", resp.StatusCode, body)
	}
	select {
	case err := <-d.done:
		t.Fatalf("daemon exited on wrong credentials: %v", err)
	default:
	}
	if err := d.stop(t); err != nil {
		t.Errorf("run returned %v", err)
	}
	logs := d.stderr.String()
	if strings.Contains(logs, wrong) {
		t.Errorf("logs contain the client secret:\n%s", logs)
	}
	if !strings.Contains(logs, "401") {
		t.Errorf("logs do not say the token request was refused:\n%s", logs)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
