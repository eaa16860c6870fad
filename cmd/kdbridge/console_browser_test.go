package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// chromiumPath finds Debian's chromium; the test skips without it unless
// KDBRIDGE_REQUIRE_CHROMIUM=1 (CI), where a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("KDBRIDGE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed and KDBRIDGE_REQUIRE_CHROMIUM=1 (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); set KDBRIDGE_REQUIRE_CHROMIUM=1 to make this a failure")
	return ""
}

// browser starts a headless chromium for the test and returns its first tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// The first tab starts the browser; it lives as long as this context. Tabs made from
	// it (tab) open in the same browser.
	root, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return root
}

// tab opens a tab that sends the given Authorization header ("" for none) with every
// request, as a browser that has logged in does.
func tab(t *testing.T, browser context.Context, authorization string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first call opens the tab, whose lifetime is that call's context's: ctx itself.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	start, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if _, err := chromedp.Call(start, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if authorization != "" {
		if _, err := chromedp.Call(start, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": authorization}}); err != nil {
			t.Fatalf("set the Authorization header: %v", err)
		}
	}
	return ctx
}

// browse runs browser actions with a deadline generous enough for a loaded machine.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one browser action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// textOf reads the text of the element with the given id.
func textOf(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return value(t, ctx, "read #"+id, chromedp.Text(chromedp.ID(id)))
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// screenshot saves the page as docs/console/NAME.png when KDBRIDGE_UPDATE_SCREENSHOTS=1
// (the README's pictures), and in the test's temporary directory otherwise.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	dir := t.TempDir()
	if os.Getenv("KDBRIDGE_UPDATE_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "console")
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// consoleDaemon runs the real daemon against the simulator and a webhook receiver that
// refuses (400) messages containing "reject" until accept is set, with two users: an admin
// and a viewer.
type consoleDaemon struct {
	sim    *kinetictest.Server
	recv   *httptest.Server
	base   string
	discs  []string
	mu     sync.Mutex
	accept bool
	got    []string // bodies delivered
}

// deadLetters asks the daemon's dlq API, with the admin's credentials.
func (cd *consoleDaemon) deadLetters() ([]bridge.DeadLetter, error) {
	req, _ := http.NewRequest(http.MethodPost, cd.base+"/dlq/list", strings.NewReader("{}"))
	req.SetBasicAuth("ops", adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out dlqResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	return out.DeadLetters, nil
}

func (cd *consoleDaemon) delivered() []string {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return append([]string(nil), cd.got...)
}

const (
	adminPass  = "correct horse battery staple"
	viewerPass = "tr0ub4dor&3"
)

func startConsoleDaemon(t *testing.T, discussions int) *consoleDaemon {
	t.Helper()
	cd := &consoleDaemon{sim: kinetictest.NewServer(kinetictest.Options{})}
	t.Cleanup(cd.sim.Close)
	for i := range discussions {
		d := cd.sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprintf("Incident %03d", i+1)})
		cd.discs = append(cd.discs, d.ID)
	}
	cd.recv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		cd.mu.Lock()
		defer cd.mu.Unlock()
		if !cd.accept && strings.Contains(string(body), "reject") {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"field 'text' rejected by policy","request_id":"req-8841"}`)
			return
		}
		cd.got = append(cd.got, string(body))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(cd.recv.Close)
	adminHash, _ := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
	viewerHash, _ := bcrypt.GenerateFromPassword([]byte(viewerPass), bcrypt.MinCost)
	cfg := bridgeConfig(cd.sim, "integration-secret", cd.recv.URL+"/hooks/kdbridge", t.TempDir(), cd.discs)
	cfg = strings.Replace(cfg, `http: {listen: "127.0.0.1:0"}`, fmt.Sprintf(`http:
  listen: "127.0.0.1:0"
  auth:
    users:
      - {name: ops, password_hash: %q, role: admin}
      - {name: auditor, password_hash: %q}
`, adminHash, viewerHash), 1)
	cfg = strings.Replace(cfg, "log: {level: debug}", "log: {level: warn}", 1)
	loaded, err := loadConfig(writeConfig(t, cfg), func(string) (string, bool) { return "", false }, settings{})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		done <- serve(ctx, loaded, daemonDeps{log: log, stdout: &logs, ready: func(addr string) { ready <- addr }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("daemon did not stop")
		}
	})
	select {
	case addr := <-ready:
		cd.base = "http://" + addr
	case err := <-done:
		t.Fatalf("daemon: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("daemon not ready")
	}
	waitFor(t, "the subscriptions", 20*time.Second, func() bool { return cd.sim.Stats().Subscriptions >= int64(len(cd.discs)) })
	return cd
}

// TestConsoleInBrowser drives the console in a real chromium: the overview during a burst
// from the simulator, a dead-lettered delivery found, inspected and replayed until it is
// delivered, the attempt log and the discussions page; then the access rules: no
// credentials, a cross-origin form post, and a viewer trying to replay.
func TestConsoleInBrowser(t *testing.T) {
	chromium := browser(t)
	cd := startConsoleDaemon(t, 12)
	admin := tab(t, chromium, basic("ops", adminPass))
	alice := kinetictest.User{Username: "alice", DisplayName: "Alice"}

	// A message the receiver refuses: it is dead-lettered at its first attempt (a 400).
	if _, err := cd.sim.PostMessage(cd.discs[0], alice, "please reject this one"); err != nil {
		t.Fatal(err)
	}

	// A burst across every discussion while the overview is open.
	burstDone := make(chan struct{})
	go func() {
		defer close(burstDone)
		for i := range 10 {
			for _, d := range cd.discs {
				if _, err := cd.sim.PostMessage(d, alice, fmt.Sprintf("burst message %d", i)); err != nil {
					t.Errorf("post: %v", err)
					return
				}
			}
		}
	}()
	browse(t, admin, "overview during the burst", chromedp.Navigate(cd.base+"/"), chromedp.WaitVisible(chromedp.ID("sinks")))
	if sinks, sources := textOf(t, admin, "sinks"), textOf(t, admin, "sources"); !strings.Contains(sinks, "hook") || !strings.Contains(sources, "acme") {
		t.Errorf("overview lacks the sink or source:\nsinks: %s\nsources: %s", sinks, sources)
	}
	<-burstDone
	want := 10 * len(cd.discs)
	waitFor(t, "the burst delivered", 30*time.Second, func() bool { return len(cd.delivered()) >= want })
	// The per-minute rate and the subscriptions show once the burst is through.
	deadline := time.Now().Add(20 * time.Second)
	for {
		browse(t, admin, "overview after the burst", chromedp.Navigate(cd.base+"/"), chromedp.WaitVisible(chromedp.ID("sinks")))
		sinks, sources := textOf(t, admin, "sinks"), textOf(t, admin, "sources")
		if strings.Contains(sinks, fmt.Sprint(want)) && strings.Contains(sources, fmt.Sprintf("%d subscribed", len(cd.discs))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("overview never showed %d delivered and %d subscribed:\nsinks: %s\nsources: %s", want, len(cd.discs), sinks, sources)
		}
	}

	// Find the dead letter by its discussion, inspect it.
	deadline = time.Now().Add(20 * time.Second)
	for {
		browse(t, admin, "dead letters", chromedp.Navigate(cd.base+"/dead-letters?discussion="+cd.discs[0]), chromedp.WaitVisible(chromedp.ID("total")))
		if n := textOf(t, admin, "total"); n == "1" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the dead letter never showed: %s dead letters", n)
		}
	}
	screenshot(t, admin, "dead-letters")
	browse(t, admin, "inspect the dead letter", chromedp.Click(chromedp.CSS("a.inspect")), chromedp.WaitVisible(chromedp.ID("payload")))
	dlURL := value(t, admin, "the dead letter's address", chromedp.Location())
	// The attempt history is written behind the deliveries, about once a second.
	var attempts string
	deadline = time.Now().Add(20 * time.Second)
	for attempts = textOf(t, admin, "attempts"); !strings.Contains(attempts, "dead_letter"); attempts = textOf(t, admin, "attempts") {
		if time.Now().After(deadline) {
			t.Fatalf("the dead letter's attempt never showed:\n%s", attempts)
		}
		browse(t, admin, "reload the dead letter", chromedp.Navigate(dlURL), chromedp.WaitVisible(chromedp.ID("payload")))
	}
	reason, payload := textOf(t, admin, "reason"), textOf(t, admin, "payload")
	if !strings.Contains(reason, "400") || !strings.Contains(payload, "please reject this one") || strings.Contains(payload, testSecret) {
		t.Errorf("dead letter page: reason %q, payload:\n%s", reason, payload)
	}
	if !strings.Contains(attempts, "dead_letter") || !strings.Contains(attempts, "400") {
		t.Errorf("attempt log of the dead letter lacks the 400:\n%s", attempts)
	}
	// The far side's answer is in the attempt's details.
	if html := value(t, admin, "attempts HTML", chromedp.OuterHTML(chromedp.ID("attempts"))); !strings.Contains(html, "rejected by policy") {
		t.Errorf("attempt log lacks the response body:\n%s", html)
	}
	screenshot(t, admin, "dead-letter")

	// The viewer sees the list but cannot replay: the button is disabled, and a same-origin
	// POST made by hand is refused.
	viewer := tab(t, chromium, basic("auditor", viewerPass))
	browse(t, viewer, "viewer on the dead letters", chromedp.Navigate(cd.base+"/dead-letters?discussion="+cd.discs[0]), chromedp.WaitVisible(chromedp.ID("replay-selected")))
	disabled := value(t, viewer, "button state", chromedp.Evaluate[bool](`document.getElementById("replay-selected").disabled`))
	status := value(t, viewer, "viewer POST", chromedp.Evaluate[int](
		`fetch("/dead-letters/replay", {method: "POST", body: new URLSearchParams({scope: "filter", all: "yes"})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if !disabled || status != http.StatusForbidden {
		t.Errorf("viewer: replay button disabled = %v, POST status = %d (want disabled and 403)", disabled, status)
	}

	// A page of another origin posting to the console (CSRF), in the admin's browser.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/dead-letters/replay">
<input name="scope" value="filter"><input name="all" value="yes"></form><script>document.getElementById("f").submit()</script>`, cd.base)
	}))
	defer evil.Close()
	browse(t, admin, "cross-origin post", chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)))
	refused := value(t, admin, "cross-origin answer", chromedp.Poll[string](
		`location.pathname === "/dead-letters/replay" && document.body && document.body.innerText`, chromedp.WithPollingTimeout(20*time.Second)))
	if !strings.Contains(refused, "cross-origin request refused") {
		t.Errorf("cross-origin post was not refused: %q", refused)
	}
	if dls, err := cd.deadLetters(); err != nil || len(dls) != 1 {
		t.Fatalf("dead letters after the refused posts: %d, %v", len(dls), err)
	}

	// The admin replays it from its page once the receiver accepts it.
	cd.mu.Lock()
	cd.accept = true
	cd.mu.Unlock()
	browse(t, admin, "replay",
		chromedp.Navigate(cd.base+"/dead-letters?discussion="+cd.discs[0]),
		chromedp.Click(chromedp.CSS("a.inspect")),
		chromedp.WaitVisible(chromedp.ID("replay-one")),
		chromedp.Click(chromedp.ID("replay-one")),
		chromedp.WaitVisible(chromedp.ID("notice")))
	if notice := textOf(t, admin, "notice"); !strings.Contains(notice, "replayed 1") {
		t.Fatalf("replay notice = %q", notice)
	}
	waitFor(t, "the replayed message delivered", 20*time.Second, func() bool {
		for _, d := range cd.delivered() {
			if strings.Contains(d, "please reject this one") {
				return true
			}
		}
		return false
	})
	// Its attempt log now ends with the delivery (the history is written about once a second).
	deadline = time.Now().Add(20 * time.Second)
	for {
		browse(t, admin, "the event's deliveries", chromedp.Navigate(cd.base+"/deliveries?discussion="+cd.discs[0]+"&outcome="), chromedp.WaitVisible(chromedp.ID("attempts")))
		log := textOf(t, admin, "attempts")
		if strings.Count(log, "delivered") >= 11 && strings.Contains(log, "dead_letter") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempt log never showed the replayed delivery:\n%s", log)
		}
	}
	screenshot(t, admin, "deliveries")

	browse(t, admin, "discussions", chromedp.Navigate(cd.base+"/discussions"), chromedp.WaitVisible(chromedp.ID("discussions")))
	if discs := textOf(t, admin, "discussions"); !strings.Contains(discs, "Incident 001") || !strings.Contains(discs, "all → hook") || !strings.Contains(discs, "subscribed") {
		t.Errorf("discussions page:\n%s", discs)
	}
	screenshot(t, admin, "discussions")
	browse(t, admin, "overview at the end", chromedp.Navigate(cd.base+"/"), chromedp.WaitVisible(chromedp.ID("sinks")))
	screenshot(t, admin, "overview")

	// Without credentials: refused, in the browser and for the dlq API.
	// Headless chromium answers the Basic challenge of a 401 by failing the navigation.
	anon := tab(t, chromium, "")
	nav, cancel := context.WithTimeout(anon, 30*time.Second)
	err := chromedp.Do(nav, chromedp.Navigate(cd.base+"/dead-letters"))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS") {
		t.Errorf("browser without credentials: %v, want the 401 refused (ERR_INVALID_AUTH_CREDENTIALS)", err)
	}
	for _, req := range []struct{ method, path string }{{http.MethodGet, "/"}, {http.MethodGet, "/dead-letters"}, {http.MethodPost, "/dlq/list"}, {http.MethodPost, "/-/reload"}} {
		r, _ := http.NewRequest(req.method, cd.base+req.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s %s without credentials: %d, want 401 with a Basic challenge", req.method, req.path, resp.StatusCode)
		}
	}
}
