package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// The monitoring package in deploy/: a Grafana dashboard and Prometheus alert rules. These
// tests keep them honest against what the daemon really exports.

const (
	dashboardPath = "../../deploy/grafana/kdbridge.json"
	rulesDir      = "../../deploy/prometheus"
	rulesPath     = rulesDir + "/kdbridge-rules.yaml"
)

// checkRef reports a metric a query names that the daemon does not export. It returns
// whether the metric is registered.
func checkRef(t *testing.T, registered map[string]string, where, expr, name string) bool {
	t.Helper()
	f := family(name, registered)
	if _, ok := registered[f]; !ok {
		t.Errorf("%s: %q names %s, which the daemon does not export", where, expr, name)
		return false
	}
	return true
}

// registeredMetrics returns every metric family the daemon's registry can export, with
// its type: kdbridge's own, from their descriptions (each metric, with a series or not),
// and the Go runtime and process collectors', from a gather.
func registeredMetrics(t *testing.T) map[string]string {
	t.Helper()
	src, err := kinetic.New("acme", kinetic.Config{
		URL: "http://127.0.0.1:1", ClientID: "u", ClientSecret: config.Secret("s"), Discussions: []string{"9fa2b330-fa5e-11e8-88ef-7bbe80231820"},
	}, kinetic.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(func() []bridge.Source { return []bridge.Source{src} },
		func() []bridge.Sink { return []bridge.Sink{pacedStub{}} },
		func() []bridge.SinkBacklog { return []bridge.SinkBacklog{{Sink: "hook"}} })
	m.registerDisabled(func() map[string]int { return map[string]int{"hook": 0} })
	m.latency.WithLabelValues("hook").Observe(0.1) // a histogram shows its type only with a series
	m.observeCommit(store.Commit{File: store.FileName, Took: time.Millisecond, Pages: 3})

	out := map[string]string{}
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		out[f.GetName()] = strings.ToLower(f.GetType().String())
	}
	descs := make(chan *prometheus.Desc, 100)
	for _, c := range m.own {
		c.Describe(descs)
	}
	close(descs)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		parts := fqName.FindStringSubmatch(d.String())
		if parts == nil {
			t.Fatalf("cannot read the description %s", d)
		}
		if _, ok := out[parts[1]]; !ok {
			out[parts[1]] = "untyped"
		}
	}
	return out
}

// metricRef finds metric names in a PromQL expression: kdbridge's own and the Go runtime
// and process collectors'. (Label names, functions and keywords never start with these
// prefixes and an underscore.)
var metricRef = regexp.MustCompile(`\b(?:kdbridge|go|process)_[a-zA-Z0-9_]+`)

// family maps a series name from a query to the metric family that exports it: a
// histogram's _bucket, _sum and _count series belong to the histogram.
func family(name string, registered map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && registered[base] == "histogram" {
			return base
		}
	}
	return name
}

// dashboard is the part of Grafana's dashboard model the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	GridPos struct {
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// flatten lists every panel, those inside collapsed rows included.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// TestGrafanaDashboard: every query of deploy/grafana/kdbridge.json (panels and template
// variables) names only metrics the daemon registers, and every kdbridge metric — each row
// of the README's metrics table and each registered kdbridge_ metric — appears in a panel.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title (uid %q, title %q)", d.UID, d.Title)
	}
	registered := registeredMetrics(t)

	inPanel := map[string][]string{} // metric family → titles of the panels that query it
	ids := map[int]string{}
	queries := 0
	for _, p := range flatten(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share the id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %d (%q) lacks a title or a size", p.ID, p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			names := metricRef.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no kdbridge, go_ or process_ metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if checkRef(t, registered, fmt.Sprintf("panel %q", p.Title), tg.Expr, n) {
					f := family(n, registered)
					inPanel[f] = append(inPanel[f], p.Title)
				}
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("template variable %s: query: %v", v.Name, err)
			continue
		}
		for _, n := range metricRef.FindAllString(q.Query, -1) {
			checkRef(t, registered, "template variable "+v.Name, q.Query, n)
		}
	}
	if queries < 20 {
		t.Errorf("read only %d queries from %s: has its layout changed?", queries, dashboardPath)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, m := range readmeRow.FindAllStringSubmatch(string(readme), -1) {
		want[m[1]] = "in the README's metrics table"
	}
	for name := range registered {
		if strings.HasPrefix(name, "kdbridge_") {
			if _, ok := want[name]; !ok {
				want[name] = "registered by the daemon"
			}
		}
	}
	if len(want) < 20 {
		t.Errorf("found only %d kdbridge metrics to look for: has the README table changed?", len(want))
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if len(inPanel[name]) == 0 {
			t.Errorf("%s (%s) has no panel in deploy/grafana/kdbridge.json: add a panel whose query names it", name, want[name])
		}
	}
}

// rulesFile is the part of a Prometheus rules file the test reads.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promtool returns the path of Debian's promtool, or skips the test when it is missing and
// KDBRIDGE_REQUIRE_PROMTOOL is not 1 (CI sets it and installs the prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("KDBRIDGE_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool is required (KDBRIDGE_REQUIRE_PROMTOOL=1) but not found: %v", err)
		}
		t.Skip("promtool not found (apt-get install -y prometheus); set KDBRIDGE_REQUIRE_PROMTOOL=1 to fail instead")
	}
	return path
}

// TestPrometheusRules: deploy/prometheus/kdbridge-rules.yaml passes `promtool check rules`
// and its unit tests (`promtool test rules deploy/prometheus/*_test.yaml`); every alert has
// a severity, a summary and a description that says what to do; every metric an
// expression names is one the daemon exports.
func TestPrometheusRules(t *testing.T) {
	raw, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	if err := yaml.Unmarshal(raw, &rf); err != nil { // promtool checks the schema
		t.Fatalf("%s: %v", rulesPath, err)
	}
	registered := registeredMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 100 {
				t.Errorf("alert %s needs a severity label, a summary and a description that says what to do", r.Alert)
			}
			for _, n := range metricRef.FindAllString(r.Expr, -1) {
				checkRef(t, registered, "alert "+r.Alert, r.Expr, n)
			}
		}
	}
	for _, want := range []string{"KdbridgeSourceNotIdentified", "KdbridgeDeliveryBacklogOld", "KdbridgeDeadLetters", "KdbridgeTargetDisabled", "KdbridgeNoLeader"} {
		if !alerts[want] {
			t.Errorf("%s has no alert %s", rulesPath, want)
		}
	}

	bin := promtool(t)
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = rulesDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
			}
			t.Errorf("promtool %s failed (%v):\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", "kdbridge-rules.yaml")
	tests, err := filepath.Glob(filepath.Join(rulesDir, "*_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range tests {
		tests[i] = filepath.Base(tests[i]) // promtool runs in rulesDir
	}
	if len(tests) == 0 {
		t.Fatalf("no promtool unit tests (*_test.yaml) in %s", rulesDir)
	}
	run(append([]string{"test", "rules"}, tests...)...)
}
