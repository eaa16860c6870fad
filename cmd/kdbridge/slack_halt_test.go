package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sinks/slack/slacktest"
)

// TestSlackBadTokenHaltsTheSink: a Slack sink whose token Slack refuses is found out at start
// (auth.test), shown on /readyz and in kdbridge_sink_halted, and halted: its messages wait
// in the store instead of being dead-lettered one by one. A reload with the right token
// resumes it and delivers them.
func TestSlackBadTokenHaltsTheSink(t *testing.T) {
	t.Parallel()
	const ok = "C0OK00001"
	const badToken = "xoxb-9999-9999-aRevokedTokenNeverLogged"
	r := newSlackRig(t, slacktest.Options{Channels: []slacktest.Channel{{ID: ok, Name: "ok"}}})
	ids := r.discussions("Refunds")
	addr := freeAddr(t)
	sinkWith := func(token string) string {
		return "  - {name: ops-slack, type: slack, token: " + token + ", api_url: {api}, channel: " + ok + "}"
	}
	cfg := r.config(t, addr, ids, sinkWith(badToken), "  - {name: r, to: [ops-slack]}")
	d := r.start(t, cfg, 1)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "/readyz to report the halted sink", 15*time.Second, func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "sink ops-slack: halted") && strings.Contains(body, "invalid_auth")
	})
	if _, body := get("/metrics"); !strings.Contains(body, `kdbridge_sink_halted{sink="ops-slack"} 1`) {
		t.Errorf("kdbridge_sink_halted is not 1:\n%s", body)
	}
	for _, text := range []string{"one", "two", "three"} {
		r.post(t, ids[0], text)
	}
	waitFor(t, "three deliveries stored", 15*time.Second, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `kdbridge_queue_depth{sink="ops-slack"} 3`)
	})
	if out, err := dlqCmd(t, "list", "-config", cfg); err != nil || !strings.Contains(out, "no dead letters") {
		t.Errorf("a refused token dead-lettered messages: %v\n%s", err, out)
	}
	if n := len(r.slack.CallsOf("chat.postMessage")); n != 0 {
		t.Errorf("%d chat.postMessage calls with a token auth.test refused, want none", n)
	}

	// The right token and a reload: the sink resumes and the waiting messages arrive, in order.
	good := strings.Replace(readFile(t, cfg), badToken, r.slack.Token(), 1)
	if err := os.WriteFile(cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %s", resp.Status)
	}
	var texts []string
	waitFor(t, "the three messages in Slack", 20*time.Second, func() bool {
		texts = nil
		for _, c := range posted(r.slack, ok) {
			if c.Param("thread_ts") != "" { // the messages, not the discussion's thread parent
				texts = append(texts, c.Param("text"))
			}
		}
		return len(texts) >= 3
	})
	if len(texts) != 3 || !strings.Contains(texts[0], "one") || !strings.Contains(texts[1], "two") || !strings.Contains(texts[2], "three") {
		t.Errorf("posted after the reload: %q", texts)
	}
	waitFor(t, "/readyz ready", 15*time.Second, func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	if _, body := get("/metrics"); !strings.Contains(body, `kdbridge_sink_halted{sink="ops-slack"} 0`) {
		t.Errorf("kdbridge_sink_halted is not 0 after the reload")
	}
	stopAndCheckLogs(t, d, badToken, r.slack.Token())
}
