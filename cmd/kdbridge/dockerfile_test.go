package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// dockerInstr is one instruction of the Dockerfile, continuation lines joined.
type dockerInstr struct{ op, args string }

func readDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{strings.ToUpper(op), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// TestDockerfile checks, without a container engine, what the image relies on: the binary
// its build stage makes (static, version-stamped, runnable with the image's environment and
// no other file), a non-root user, the state volume, the port, and a HEALTHCHECK that is
// the binary's own healthcheck command against the listener the image configures.
func TestDockerfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	instrs := readDockerfile(t)
	find := func(op string) []string {
		var out []string
		for _, in := range instrs {
			if in.op == op {
				out = append(out, in.args)
			}
		}
		return out
	}
	env := map[string]string{}
	for _, e := range find("ENV") {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}

	// The image: non-root, the state directory is the volume, the listener is the port.
	if u := find("USER"); len(u) == 0 || strings.HasPrefix(u[len(u)-1], "0") || strings.HasPrefix(u[len(u)-1], "root") {
		t.Errorf("USER = %q, want a non-root user", u)
	}
	if v := find("VOLUME"); len(v) != 1 || !strings.Contains(v[0], `"`+env["KDBRIDGE_STATE_DIR"]+`"`) {
		t.Errorf("VOLUME %q does not hold KDBRIDGE_STATE_DIR=%q", v, env["KDBRIDGE_STATE_DIR"])
	}
	if p := find("EXPOSE"); len(p) != 1 || !strings.HasSuffix(env["KDBRIDGE_HTTP_LISTEN"], ":"+p[0]) {
		t.Errorf("EXPOSE %q does not match KDBRIDGE_HTTP_LISTEN=%q", p, env["KDBRIDGE_HTTP_LISTEN"])
	}
	if env["KDBRIDGE_CONFIG"] != "/etc/kdbridge/config.yaml" {
		t.Errorf("KDBRIDGE_CONFIG = %q", env["KDBRIDGE_CONFIG"])
	}
	entry := find("ENTRYPOINT")
	hc := find("HEALTHCHECK")
	if len(entry) != 1 || len(hc) != 1 {
		t.Fatalf("ENTRYPOINT %q, HEALTHCHECK %q: want one of each", entry, hc)
	}
	binPath := regexp.MustCompile(`"([^"]+)"`).FindStringSubmatch(entry[0])
	if binPath == nil || !strings.Contains(hc[0], `CMD ["`+binPath[1]+`", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q does not run %v healthcheck", hc[0], binPath)
	}
	copied := false
	for _, c := range find("COPY") {
		copied = copied || strings.HasSuffix(c, " "+binPath[1])
	}
	if !copied {
		t.Errorf("no COPY puts the binary at the ENTRYPOINT %s", binPath[1])
	}

	// The build stage's command, run here with the build arguments filled in.
	var build string
	for _, r := range find("RUN") {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	if !strings.HasPrefix(build, "CGO_ENABLED=0 go build") {
		t.Fatalf("build stage: %q, want a CGO_ENABLED=0 go build", build)
	}
	build, _, _ = strings.Cut(build, " && ")
	out := filepath.Join(t.TempDir(), "kdbridge")
	build = strings.NewReplacer("${VERSION}", "v9.8.7", "${COMMIT}", "c0ffee1", "/out/kdbridge", out, "./cmd/kdbridge", ".").Replace(build)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", build)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	if runtime.GOOS == "linux" {
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("the binary is dynamically linked (%v): it would not start on a static image", p.Type)
			}
		}
		f.Close()
	}
	v, err := exec.CommandContext(ctx, out, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "kdbridge v9.8.7 (commit c0ffee1,") {
		t.Errorf("version of the image's binary = %q, %v", v, err)
	}

	// The image's binary, with the image's environment (the listener moved to a free
	// loopback port), serves /healthz, and its own healthcheck command says so.
	addr := freeAddr(t)
	cfg := writeConfig(t, `
sources: [{name: s, type: kinetic, url: "http://127.0.0.1:1", client_id: x, client_secret: y, discussions: [9fa2b330-fa5e-11e8-88ef-7bbe80231820]}]
sinks: [{name: out, type: stdout}]
routes: [{name: r, to: [out]}]
`)
	dir := t.TempDir()
	imageEnv := []string{"PATH=/nonexistent"}
	for k, v := range env {
		switch k {
		case "KDBRIDGE_CONFIG":
			v = cfg
		case "KDBRIDGE_STATE_DIR":
			v = dir
		case "KDBRIDGE_HTTP_LISTEN":
			v = addr
		}
		imageEnv = append(imageEnv, k+"="+v)
	}
	daemon := exec.CommandContext(ctx, out, "run")
	daemon.Env = imageEnv
	var logs syncBuffer // written by exec's copying goroutines while the test reads it
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = daemon.Process.Kill()
		_ = daemon.Wait()
	}()
	healthy := false
	for range 100 {
		hcCmd := exec.CommandContext(ctx, out, "healthcheck")
		hcCmd.Env = imageEnv
		if hcCmd.Run() == nil {
			healthy = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !healthy {
		t.Fatalf("the healthcheck never passed; daemon log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"level":"`) {
		t.Errorf("KDBRIDGE_LOG_FORMAT=%s did not give JSON logs:\n%s", env["KDBRIDGE_LOG_FORMAT"], logs.String())
	}
}
