package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kdbridge/kdbridge/internal/console"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestHTTPAuthConfig loads http.auth and state.attempts: a token from a _file twin, a bcrypt
// user, the role defaults; bad keys are reported with their lines, never with a secret.
func TestHTTPAuthConfig(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("f00dfeedf00dfeedf00dfeed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	good := `http:
  listen: 0.0.0.0:9090
  auth:
    tokens:
      - token_file: ` + tokenFile + `
    users:
      - {name: auditor, password_hash: "` + string(hash) + `"}
state: {attempts: {retention: 24h}}
` + goodBase
	cfg, ps := parseConfig([]byte(good), lookupFrom(nil), settings{})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	a := cfg.HTTP.Auth
	if len(a.Tokens) != 1 || a.Tokens[0].Token.Reveal() != "f00dfeedf00dfeedf00dfeed" || a.Tokens[0].Role != console.RoleAdmin ||
		len(a.Users) != 1 || a.Users[0].Role != console.RoleViewer || cfg.State.Attempts.Retention.D() != 24*time.Hour {
		t.Errorf("loaded %+v, attempts %v", a, cfg.State.Attempts.Retention)
	}
	if adminToken(a) != "f00dfeedf00dfeedf00dfeed" {
		t.Error("the dlq command would not present the admin token")
	}
	if def, ps := parseConfig([]byte(goodBase), lookupFrom(nil), settings{}); ps.Err() != nil || def.HTTP.Auth.Enabled() ||
		def.State.Attempts.Retention.D() != 72*time.Hour || def.State.Attempts.Record != "all" {
		t.Errorf("defaults: auth %+v, attempts %+v, %v", def.HTTP.Auth, def.State.Attempts, ps.Err())
	}
	if c, ps := parseConfig([]byte("state: {attempts: {record: failures}}\n"+goodBase), lookupFrom(nil), settings{}); ps.Err() != nil || c.State.Attempts.Record != "failures" {
		t.Errorf("record: failures: %+v, %v", c.State.Attempts, ps.Err())
	}
	if _, ps := parseConfig([]byte("state:\n  attempts:\n    record: errors\n"+goodBase), lookupFrom(nil), settings{}); ps.Err() == nil ||
		!strings.Contains(ps.Err().Error(), `line 3: state.attempts.record: "errors" is not all or failures`) {
		t.Errorf("record: errors: %v", ps.Err())
	}

	bad := `http:
  auth:
    tokens:
      - token: tooshort
        role: boss
    users:
      - name: ops
        password_hash: hunter2-plain
    usres: []
` + goodBase
	_, ps = parseConfig([]byte(bad), lookupFrom(nil), settings{})
	err := ps.Err()
	if err == nil {
		t.Fatal("no problems")
	}
	for _, want := range []string{
		"line 4: http.auth.tokens[0].token: is 8 characters",
		`line 5: http.auth.tokens[0].role: "boss" is not a role`,
		"line 8: http.auth.users[0].password_hash: is not a bcrypt hash",
		"line 9: http.auth.usres: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	for _, secret := range []string{"tooshort", "hunter2-plain"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("problems show %q:\n%v", secret, err)
		}
	}
}

// TestDLQCommandWithAuth: with http.auth, the dlq command talks to the running daemon with
// the configuration's admin token, and says clearly why it is refused when there is none.
func TestDLQCommandWithAuth(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	disc := sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: "Refunds"})
	base := strings.Replace(bridgeConfig(sim, "integration-secret", recv.URL, t.TempDir(), []string{disc.ID}),
		`http: {listen: "127.0.0.1:0"}`, fmt.Sprintf("http:\n  listen: %q\n  auth: {tokens: [{token: f00dfeedf00dfeedf00dfeed}]}", freeAddr(t)), 1)
	cfg := writeConfig(t, base)
	startDaemon(t, "-config", cfg)
	// Once the daemon holds the store, dlq goes through its listener.
	waitFor(t, "the subscription", 20*time.Second, func() bool { return sim.Stats().Subscriptions >= 1 })
	var out string
	var err error
	waitFor(t, "the daemon's answer", 20*time.Second, func() bool {
		out, err = dlqCmd(t, "list", "-config", cfg)
		return err == nil
	})
	if !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list with the admin token: %s", out)
	}
	// The same daemon, asked with a configuration whose token is a viewer's.
	viewerCfg := writeConfig(t, strings.Replace(base, "token: f00dfeedf00dfeedf00dfeed}", "token: f00dfeedf00dfeedf00dfeed, role: viewer}", 1))
	out, err = dlqCmd(t, "list", "-config", viewerCfg)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "admin token") || strings.Contains(err.Error(), "f00dfeed") {
		t.Errorf("dlq without an admin token: %v\n%s", err, out)
	}
}
