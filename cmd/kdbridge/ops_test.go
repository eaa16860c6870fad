package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge/store"
)

// runCLI runs kdbridge with args and returns its combined output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, &out, &out)
	return out.String(), err
}

// TestDLQHelpAndVersion: -h on the dlq parent and on version print usage and exit 0; each dlq
// action lists its own flags only; -v and --version print the version.
func TestDLQHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"dlq", "-h"}, {"dlq", "--help"}, {"version", "-h"}} {
		out, err := runCLI(t, args...)
		if err != nil || exitCode(err) != 0 && err != nil {
			t.Errorf("%v: %v, want exit 0", args, err)
		}
		if !strings.Contains(out, "Usage of kdbridge") || strings.Contains(out, "kdbridge dev (") {
			t.Errorf("%v printed no usage, or the version instead:\n%s", args, out)
		}
	}
	out, _ := runCLI(t, "dlq", "list", "-h")
	if !strings.Contains(out, "-json") || strings.Contains(out, "-all") {
		t.Errorf("dlq list -h lists the flags of other actions:\n%s", out)
	}
	out, _ = runCLI(t, "dlq", "drop", "-h")
	if strings.Contains(out, "-json") || !strings.Contains(out, "-all") {
		t.Errorf("dlq drop -h:\n%s", out)
	}
	for _, v := range []string{"-v", "--version"} {
		if out, err := runCLI(t, v); err != nil || !strings.HasPrefix(out, "kdbridge ") {
			t.Errorf("%s: %v %q", v, err, out)
		}
	}
	out, _ = runCLI(t, "bench", "-h")
	if strings.Contains(out, "also (default), only, or off (default also)") || strings.Contains(out, "-sut string\n  -") {
		t.Errorf("bench -h: a flag without description or a repeated default:\n%s", out)
	}
}

// TestCheckPositionalAndShortFlag: `check FILE` and `check -c FILE` work like -config FILE.
func TestCheckPositionalAndShortFlag(t *testing.T) {
	path := writeConfig(t, goodBase)
	for _, args := range [][]string{{"check", path}, {"check", "-c", path}, {"check", "-config", path}} {
		if out, err := runCLI(t, args...); err != nil || !strings.Contains(out, "configuration OK") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if _, err := runCLI(t, "check", path, path); exitCode(err) != 2 {
		t.Errorf("check with two files: %v, want a usage error", err)
	}
}

// TestProcessSettingsPrecedence: flag > environment > file > default, check says where each
// value came from, and a bad flag value is command-line misuse naming the flag.
func TestProcessSettingsPrecedence(t *testing.T) {
	path := writeConfig(t, "log: {level: debug, format: json}\nhttp: {listen: \"127.0.0.1:7001\"}\n"+goodBase)
	t.Setenv("KDBRIDGE_HTTP_LISTEN", "127.0.0.1:7002")
	t.Setenv("KDBRIDGE_LOG_LEVEL", "warn")
	out, err := runCLI(t, "check", "-config", path, "-log-level", "error")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"log.level        error                    from flag -log-level",
		"http.listen      127.0.0.1:7002           from environment KDBRIDGE_HTTP_LISTEN",
		"log.format       json                     from file",
		"state.retention  168h0m0s                 from default",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "check", "-config", path, "-log-level", "verbose")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "-log-level") || strings.Contains(out, "line ") {
		t.Errorf("bad -log-level: exit %d, %v\n%s", exitCode(err), err, out)
	}
	t.Setenv("KDBRIDGE_LOG_LEVEL", "loud")
	out, err = runCLI(t, "check", "-config", path)
	if exitCode(err) != 1 || !strings.Contains(out, "KDBRIDGE_LOG_LEVEL") {
		t.Errorf("bad KDBRIDGE_LOG_LEVEL: exit %d, %v\n%s", exitCode(err), err, out)
	}
}

// TestRelativePathsFollowTheConfigFile: state.dir and *_file written in the file are relative
// to the file's folder, not to the current directory; a missing file's error names its path.
func TestRelativePathsFollowTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "kinetic"), []byte("from-relative-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := "state: {dir: data}\n" + strings.Replace(goodBase, "client_secret: x-secret-value", "client_secret_file: secrets/kinetic", 1)
	path := filepath.Join(dir, "kdbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, lookupFrom(nil), settings{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].Kinetic.ClientSecret.Reveal(); got != "from-relative-file" {
		t.Errorf("client_secret_file relative to the config's folder: got %q", got)
	}
	if want := filepath.Join(dir, "data"); cfg.State.Dir != want {
		t.Errorf("state.dir = %q, want %q", cfg.State.Dir, want)
	}
	if err := os.Remove(filepath.Join(dir, "secrets", "kinetic")); err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig(path, lookupFrom(nil), settings{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "secrets", "kinetic")) || strings.Contains(err.Error(), "from-relative-file") {
		t.Errorf("a missing secret file's error must name its path: %v", err)
	}
	// A state directory given by flag stays relative to the current directory.
	if err := os.WriteFile(filepath.Join(dir, "secrets", "kinetic"), []byte("again\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = loadConfig(path, lookupFrom(nil), settings{StateDir: "here", from: map[string]string{"state.dir": "flag -state-dir"}})
	if err != nil || cfg.State.Dir != "here" {
		t.Errorf("-state-dir here: %q, %v", cfg.State.Dir, err)
	}
}

// TestMissingVariableReportedOnce: a missing ${VAR} is one problem, not also "is required";
// ${VAR:-default} and ${VAR:?message} work as in docker-compose.
func TestMissingVariableReportedOnce(t *testing.T) {
	y := strings.Replace(goodBase, "url: https://hooks.example.com/in", "url: ${HOOK_URL}", 1)
	_, ps := parseConfig([]byte(y), lookupFrom(nil), settings{})
	if ps.Err() == nil || strings.Count(ps.Err().Error(), "line 12") != 1 || !strings.Contains(ps.Err().Error(), "HOOK_URL is not set") {
		t.Errorf("want the missing variable reported once:\n%v", ps.Err())
	}
	y = strings.Replace(goodBase, "url: https://hooks.example.com/in", "url: ${HOOK_URL:-https://fallback.example.com/in}", 1)
	cfg, ps := parseConfig([]byte(y), lookupFrom(nil), settings{})
	if ps.Err() != nil || cfg.Sinks[0].Webhook.DisplayURL() != "https://fallback.example.com/in" {
		t.Errorf("${VAR:-default}: %v", ps.Err())
	}
	y = strings.Replace(goodBase, "url: https://hooks.example.com/in", "url: ${HOOK_URL:?set HOOK_URL to the receiver's URL}", 1)
	_, ps = parseConfig([]byte(y), lookupFrom(nil), settings{})
	if ps.Err() == nil || !strings.Contains(ps.Err().Error(), "line 12: environment variable HOOK_URL: set HOOK_URL to the receiver's URL") || strings.Contains(ps.Err().Error(), "required") {
		t.Errorf("${VAR:?message}: %v", ps.Err())
	}
}

// TestDLQLenientAndPrecise: the dlq commands need only the state and the listener (not every
// ${VAR} of the file); an unknown id or sink is an error naming it; flags may follow ids; with
// the listener off and the store held, the error says why and what to do.
func TestDLQLenientAndPrecise(t *testing.T) {
	state := t.TempDir()
	y := "state: {dir: " + state + "}\nhttp: {listen: \"off\"}\n" +
		strings.Replace(goodBase, "client_secret: x-secret-value", "client_secret: ${KINETIC_SECRET_NOT_SET}", 1)
	path := writeConfig(t, y)
	if _, err := runCLI(t, "check", path); err == nil {
		t.Fatal("check accepted an unset variable")
	}
	out, err := runCLI(t, "dlq", "list", "-config", path)
	if err != nil || !strings.Contains(out, "no dead letters") {
		t.Fatalf("dlq list with an unset variable elsewhere in the file: %v\n%s", err, out)
	}
	out, err = runCLI(t, "dlq", "drop", "dl-nope-1", "-config", path)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "id dl-nope-1") {
		t.Errorf("dlq drop ID -config F with an unknown id: %v\n%s", err, out)
	}
	_, err = runCLI(t, "dlq", "replay", "-config", path, "-sink", "nosuch")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "sink nosuch") {
		t.Errorf("dlq replay -sink nosuch: %v", err)
	}
	if out, err := runCLI(t, "dlq", "list", "-config", path, "-sink", "audit"); err != nil {
		t.Errorf("a configured sink without dead letters is not an error: %v\n%s", err, out)
	}

	st, err := store.Open(state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = runCLI(t, "dlq", "list", "-config", path)
	if err == nil || !strings.Contains(err.Error(), "held by the running daemon") || !strings.Contains(err.Error(), "http.listen") {
		t.Errorf("store held, listener off: %v", err)
	}
}

// TestBadIDsAndSecretsAreRefused: a discussion id that is not a UUID fails check (in a source
// and in a route), and `receive -secret bogus` is a usage error naming what is wrong.
func TestBadIDsAndSecretsAreRefused(t *testing.T) {
	y := strings.Replace(goodBase, "discussions: [9fa2b330-fa5e-11e8-88ef-7bbe80231820]", "discussions: [refunds]", 1) +
		"  - {name: r2, discussions: [d1], to: [audit]}\n"
	_, ps := parseConfig([]byte(y), lookupFrom(nil), settings{})
	for _, want := range []string{`line 8: sources[0].discussions[0]: "refunds" is not a discussion id`, `routes[1].discussions[0]: "d1" is not a discussion id`} {
		if ps.Err() == nil || !strings.Contains(ps.Err().Error(), want) {
			t.Errorf("want %q in: %v", want, ps.Err())
		}
	}
	for _, secret := range []string{"bogus", "whsec_!!!", "whsec_c2hvcnQ="} {
		_, err := runCLI(t, "receive", "-listen", "127.0.0.1:0", "-secret", secret)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), "Standard Webhooks secret") || strings.Contains(err.Error(), secret) {
			t.Errorf("receive -secret %s: %v", secret, err)
		}
	}
}

// TestUnknownTypeHidesNothing: a misspelt type is reported, and the rest of the entry is
// checked as the type meant, so its other problems show in the same run.
func TestUnknownTypeHidesNothing(t *testing.T) {
	y := strings.NewReplacer("type: kinetic", "type: kinetik", "client_id: integration-user", "clientid: integration-user",
		"type: webhook", "type: webhok", "url: https://hooks.example.com/in", "url: not a url").Replace(goodBase)
	_, ps := parseConfig([]byte(y), lookupFrom(nil), settings{})
	for _, want := range []string{
		`sources[0].type: unknown type "kinetik" (known: kinetic); did you mean kinetic?`,
		`sources[0].clientid: unknown key`,
		`sinks[0].type: unknown type "webhok"`,
		`sinks[0].url:`,
	} {
		if ps.Err() == nil || !strings.Contains(ps.Err().Error(), want) {
			t.Errorf("want %q in:\n%v", want, ps.Err())
		}
	}
	_, ps = parseConfig([]byte(strings.Replace(goodBase, "type: webhook", "type: carrier-pigeon", 1)), lookupFrom(nil), settings{})
	if ps.Err() == nil || !strings.Contains(ps.Err().Error(), `unknown type "carrier-pigeon" (known: slack, webhook, stdout)`) || strings.Contains(ps.Err().Error(), "did you mean") {
		t.Errorf("an unrelated type: %v", ps.Err())
	}
}
