package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo: the demo prints its HTTP listener, which serves the daemon's /metrics and
// /readyz, and an edited line says "(edited)" once.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "-every", "20ms", "-http-listen", "127.0.0.1:0", "-state-dir", t.TempDir()}, &out, io.Discard)
	}()
	listener := regexp.MustCompile(`HTTP listener: http://(127\.0\.0\.1:\d+)/metrics`)
	var addr string
	waitFor(t, "the demo's HTTP listener and an edited message", 30*time.Second, func() bool {
		m := listener.FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil && strings.Contains(out.String(), "(edited)")
	})
	for _, path := range []string{"/metrics", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/metrics" && !strings.Contains(string(body), "kdbridge_deliveries_total") {
			t.Errorf("%s: %s", path, body)
		}
		if path == "/readyz" && resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz = %d %s", resp.StatusCode, body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not stop")
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Count(line, "(edited)") > 1 {
			t.Errorf("an edited line says (edited) twice: %q", line)
		}
	}
}
