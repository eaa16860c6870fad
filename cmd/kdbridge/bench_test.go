package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/bench"
	"github.com/kdbridge/kdbridge/internal/pgtest"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// TestBenchSmoke runs every scenario of `kdbridge bench` in miniature, kdbridge and the raw
// client both, and checks that what the bench reports is sane: everything sent arrived, once,
// in order. It measures nothing; it keeps the bench's code path working.
func TestBenchSmoke(t *testing.T) {
	t.Run("in-process", func(t *testing.T) {
		benchSmoke(t, "-inprocess")
	})
	t.Run("child-process", func(t *testing.T) {
		// The child is this test binary re-executed as `kdbridge bench -sut FILE`.
		benchSmoke(t, "-scenario", "burst,catchup")
	})
	t.Run("postgres", func(t *testing.T) {
		// kdbridge on PostgreSQL beside bbolt, a schema per run in this database.
		t.Setenv(bench.PGEnv, pgtest.DB(t))
		seen, _, _ := benchSmoke(t, "-state", "postgres", "-scenario", "burst,steady,catchup")
		for _, sc := range []string{"burst", "steady", "catchup"} {
			if !seen[sc+"/"+bench.ModeKdbridgePG] || !seen[sc+"/"+bench.ModeKdbridge] {
				t.Errorf("%s: not run on both backends: %v", sc, seen)
			}
		}
	})
	t.Run("list-delay", func(t *testing.T) {
		// Each listing of messages answered after 400ms, several times what a smoke
		// catch-up takes without it: a catch-up lists every discussion's missed messages,
		// so neither kdbridge nor the raw client can end sooner.
		_, results, report := benchSmoke(t, "-scenario", "catchup", "-list-delay", "400ms")
		if !strings.Contains(report, "each listing of messages answered after 400ms") {
			t.Errorf("the report does not say so:\n%s", report)
		}
		for _, r := range results {
			if r.Elapsed < 400*time.Millisecond {
				t.Errorf("%s/%s: caught up in %s, less than one listing takes", r.Scenario, r.Mode, r.Elapsed)
			}
		}
		// The saved runs remember it: their report says so too.
		if report := benchFrom(t, results); !strings.Contains(report, "each listing of messages answered after 400ms") {
			t.Errorf("the report of the saved runs does not say so:\n%s", report)
		}
	})
	t.Run("read-ahead", func(t *testing.T) {
		// The smallest read_ahead there is: the daemon's reading waits for its store
		// whenever the store is busy, and still delivers every message once, in order
		// (benchSmoke checks each run).
		_, results, report := benchSmoke(t, "-scenario", "burst,fanout", "-read-ahead", "1024")
		if !strings.Contains(report, "read_ahead set to 1024 bytes") {
			t.Errorf("the report does not say so:\n%s", report)
		}
		if report := benchFrom(t, results); !strings.Contains(report, "read_ahead set to 1024 bytes") {
			t.Errorf("the report of the saved runs does not say so:\n%s", report)
		}
		for _, r := range results {
			if want := map[bool]int64{true: 1024, false: 0}[r.Mode == bench.ModeKdbridge]; r.ReadAhead != want {
				t.Errorf("%s/%s: read_ahead %d saved, want %d", r.Scenario, r.Mode, r.ReadAhead, want)
			}
		}
		for _, tc := range []struct {
			ra   int64
			dsn  string
			want int64
		}{{0, "", kinetic.DefaultReadAhead}, {1024, "", 1024}, {0, "postgres://u@127.0.0.1:1/db", postgresReadAhead}, {1024, "postgres://u@127.0.0.1:1/db", 1024}} {
			cfg, err := benchConfig(bench.Spec{SimURL: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s", Discussions: []string{"9fa2b330-fa5e-11e8-88ef-7bbe80231820"}, ReadAhead: tc.ra, DSN: tc.dsn})
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sources[0].Kinetic.ReadAhead; got != tc.want {
				t.Errorf("-read-ahead %d (dsn %q): the daemon's read_ahead is %d, want %d", tc.ra, tc.dsn, got, tc.want)
			}
			if wantBackend := map[bool]string{true: backendPostgres, false: backendBolt}[tc.dsn != ""]; cfg.State.Backend != wantBackend {
				t.Errorf("dsn %q: backend %q, want %q", tc.dsn, cfg.State.Backend, wantBackend)
			}
		}
	})
	t.Run("attempts", func(t *testing.T) {
		// The daemon under test keeps only failed attempts: every message still arrives once,
		// in order, and the report and the saved runs say how it ran.
		_, results, report := benchSmoke(t, "-scenario", "burst", "-attempts", "failures")
		if !strings.Contains(report, "state.attempts.record set to failures") {
			t.Errorf("the report does not say so:\n%s", report)
		}
		for _, r := range results {
			if want := map[bool]string{true: "failures", false: ""}[r.Mode == bench.ModeKdbridge]; r.Attempts != want {
				t.Errorf("%s/%s: attempts %q saved, want %q", r.Scenario, r.Mode, r.Attempts, want)
			}
		}
		cfg, err := benchConfig(bench.Spec{SimURL: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s", Discussions: []string{"9fa2b330-fa5e-11e8-88ef-7bbe80231820"}, Attempts: "failures"})
		if err != nil || cfg.State.Attempts.Record != "failures" {
			t.Errorf("benchConfig: record %q, %v", cfg.State.Attempts.Record, err)
		}
		var stdout, stderr bytes.Buffer
		if err := runBench(context.Background(), []string{"-attempts", "some"}, &stdout, &stderr); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), `"some" is not all or failures`) {
			t.Errorf("-attempts some: %v", err)
		}
	})
}

// benchFrom saves results as -json does and returns what -from prints of them.
func benchFrom(t *testing.T, results []bench.Result) string {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "runs.json")
	b, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(saved, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runBench(context.Background(), []string{"-from", saved}, &stdout, &stderr); err != nil {
		t.Fatalf("bench -from: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

// benchSmoke runs the smoke scenarios with args and checks every result; it returns which
// scenario/mode pairs ran, the results and the printed report.
func benchSmoke(t *testing.T, args ...string) (map[string]bool, []bench.Result, string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results.json")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"-smoke", "-runs", "1", "-json", out, "-state-dir", filepath.Join(dir, "state")}, args...)
	if err := runBench(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("kdbridge bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"machine:", "Results", "burst", "kdbridge", "raw", "Targets (issue 8)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var results []bench.Result
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range results {
		name := r.Scenario + "/" + r.Mode
		seen[name] = true
		if r.Err != "" {
			t.Errorf("%s: %s", name, r.Err)
		}
		if r.Mode == bench.ModeKdbridgePG && r.Unexpected != 0 {
			// Deliveries of the first run that a stop left uncommitted are made again on the
			// restart (at least once); they are not this run's messages.
			t.Logf("%s: %d redeliveries of the first run's messages", name, r.Unexpected)
			r.Unexpected = 0
		}
		if r.Duplicates != 0 || r.OrderViolations != 0 || r.Unexpected != 0 {
			t.Errorf("%s: %d duplicates, %d order violations, %d unexpected deliveries", name, r.Duplicates, r.OrderViolations, r.Unexpected)
		}
		if r.Subscribe <= 0 {
			t.Errorf("%s: no subscribe time", name)
		}
		if r.Mode == bench.ModeKdbridge && r.StoreBytes <= 0 {
			t.Errorf("%s: no store size", name)
		}
		// A daemon in a child process is asked for its metrics at the end of the run: its
		// store's commits, and the pages they wrote, are there.
		if r.Mode == bench.ModeKdbridge && !slices.Contains(args, "-inprocess") && r.Scenario != "scale" &&
			(r.StoreCommits <= 0 || r.PagesWritten < r.StoreCommits) {
			t.Errorf("%s: %d store commits, %d pages written", name, r.StoreCommits, r.PagesWritten)
		}
		// The sampled anonymous peak is there, and within the kernel's peak, which counts it.
		if benchFileExists("/proc/self/status") && (r.PeakAnon <= 0 || r.PeakAnon > r.PeakRSS) {
			t.Errorf("%s: peak anon %d bytes, peak RSS %d", name, r.PeakAnon, r.PeakRSS)
		}
		if r.Scenario == "scale" {
			if r.EndRSS <= 0 && r.PeakRSS <= 0 && benchFileExists("/proc/self/status") {
				t.Errorf("%s: no RSS", name)
			}
			continue
		}
		if r.Sent == 0 || r.Delivered != r.Expected || r.Expected != r.Sent*benchTargets(r.Scenario) {
			t.Errorf("%s: sent %d, expected %d deliveries, delivered %d", name, r.Sent, r.Expected, r.Delivered)
		}
		if r.Elapsed <= 0 || r.EventsPerSec <= 0 {
			t.Errorf("%s: elapsed %s, %.0f events/s", name, r.Elapsed, r.EventsPerSec)
		}
		if r.Scenario != "catchup" && (r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max) {
			t.Errorf("%s: latencies p50 %s p99 %s max %s", name, r.P50, r.P99, r.Max)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no results")
	}
	return seen, results, stdout.String()
}

func benchTargets(scenario string) int {
	if scenario == "fanout" {
		return bench.SmokeSizes.FanoutTargets
	}
	return 1
}

func benchFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
