package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

func reloadConfig(sim *kinetictest.Server, state, addr string, discussions []string, sinks, routes string) string {
	return fmt.Sprintf(`
http: {listen: %q}
state: {dir: %q}
sources:
  - name: acme
    type: kinetic
    url: %s
    client_id: integration-user
    client_secret: integration-secret
    discussions: [%s]
sinks:
%s
routes:
%s
`, addr, state, sim.URL(), strings.Join(discussions, ", "), sinks, routes)
}

func hookSink(name, url string) string {
	return fmt.Sprintf("  - {name: %s, type: webhook, url: %q, secret: %s, retry: {initial: 50ms, max_interval: 500ms}}\n", name, url, testSecret)
}

func postReload(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// textsIn returns the message texts a receiver got for one discussion.
func textsIn(r *testReceiver, disc string) []string {
	var out []string
	for _, d := range r.deliveries() {
		if d.envelope.Data.Discussion.ID == disc {
			out = append(out, d.envelope.Data.Message.Text)
		}
	}
	return out
}

func TestReloadAddsAndRemovesWithoutReconnecting(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	hook1, hook2 := newTestReceiver(t), newTestReceiver(t)
	a := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "A"}).ID
	b := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "B"}).ID
	c := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "C"}).ID
	addr, state := freeAddr(t), t.TempDir()
	path := writeConfig(t, reloadConfig(sim, state, addr, []string{a, b}, hookSink("one", hook1.URL), "  - {name: r1, to: [one]}\n"))
	d := startDaemon(t, "-config", path)
	waitFor(t, "2 subscriptions", 15*time.Second, func() bool { return sim.Stats().Subscriptions == 2 })
	connections := sim.Stats().ConnectionsTotal
	u := kinetictest.User{Username: "alice", DisplayName: "Alice"}

	// Add discussion C and a route to a new sink; remove discussion A.
	write := func(body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadConfig(sim, state, addr, []string{b, c}, hookSink("one", hook1.URL)+hookSink("two", hook2.URL),
		"  - {name: r1, to: [one]}\n  - {name: r2, to: [two]}\n"))
	if code, body := postReload(t, addr); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	waitFor(t, "C subscribed and A unsubscribed", 10*time.Second, func() bool {
		return sim.Stats().Subscriptions == 2 && sim.Stats().Unsubscribes >= 1
	})
	for _, disc := range []string{a, b, c} {
		if _, err := sim.PostMessage(disc, u, "after reload in "+disc); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "B and C on both sinks", 10*time.Second, func() bool {
		return len(textsIn(hook1, b)) == 1 && len(textsIn(hook1, c)) == 1 && len(textsIn(hook2, b)) == 1 && len(textsIn(hook2, c)) == 1
	})
	if got := textsIn(hook1, a); len(got) != 0 {
		t.Errorf("removed discussion A still delivered: %q", got)
	}
	if n := sim.Stats().ConnectionsTotal; n != connections {
		t.Errorf("the Topic Hub connection was re-established: %d connections, want %d", n, connections)
	}

	// An invalid configuration is refused and the running one kept.
	write("sources: [{name: broken\n")
	if code, body := postReload(t, addr); code != http.StatusBadRequest || !strings.Contains(body, "invalid YAML") {
		t.Errorf("invalid reload answered %d %q", code, body)
	}
	if _, err := sim.PostMessage(b, u, "still flowing"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after a refused reload", 10*time.Second, func() bool { return len(textsIn(hook2, b)) == 2 })

	// SIGHUP does the same as POST /-/reload: drop route r2.
	write(reloadConfig(sim, state, addr, []string{b, c}, hookSink("one", hook1.URL), "  - {name: r1, to: [one]}\n"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload log line", 10*time.Second, func() bool { return strings.Count(d.stderr.String(), "configuration reloaded") >= 2 })
	if _, err := sim.PostMessage(c, u, "after SIGHUP"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery to the remaining sink", 10*time.Second, func() bool { return len(textsIn(hook1, c)) == 2 })
	if got := len(textsIn(hook2, c)); got != 1 {
		t.Errorf("removed route still delivered: %d messages in C at sink two", got)
	}
	if n := sim.Stats().ConnectionsTotal; n != connections {
		t.Errorf("reconnected during reloads: %d connections, want %d", n, connections)
	}
}
