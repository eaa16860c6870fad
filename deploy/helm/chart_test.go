// Package helm_test renders the kdbridge chart with the Helm Go module — no cluster, no
// helm binary — and checks the objects it produces. It lives in the nested module
// github.com/kdbridge/kdbridge/deploy, so the daemon's go.mod never carries Helm's and
// Kubernetes' dependencies: run it with `(cd deploy && go test ./...)`.
package helm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "kdbridge"

// rendered is a chart's output: each object's kind/name → its YAML.
type rendered map[string]string

// render renders the chart for a values file (merged over the chart's values.yaml; "" for
// the defaults) and extra values, as `helm install kdb … -n ops` would.
func render(t *testing.T, valuesFile string, extra map[string]any) (rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if valuesFile != "" {
		v, err := chartutil.ReadValuesFile(valuesFile)
		if err != nil {
			t.Fatal(err)
		}
		vals = v
	}
	vals = chartutil.CoalesceTables(extra, vals)
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "kdb", Namespace: "ops", Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	out := rendered{}
	for name, body := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			out["NOTES"] = body
			continue
		}
		for doc := range strings.SplitSeq(body, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s is not YAML: %v\n%s", name, err, doc)
			}
			if meta.Kind == "" {
				continue // a template that rendered only comments
			}
			key := meta.Kind + "/" + meta.Metadata.Name
			if _, dup := out[key]; dup {
				t.Errorf("%s rendered twice", key)
			}
			out[key] = doc
		}
	}
	return out, nil
}

// decode reads one rendered object strictly into a typed Kubernetes object: a misspelt or
// misplaced field fails the test.
func decode[T any](t *testing.T, r rendered, key string) *T {
	t.Helper()
	doc, ok := r[key]
	if !ok {
		t.Fatalf("%s not rendered; got %v", key, keys(r))
	}
	var v T
	if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
		t.Fatalf("%s: %v\n%s", key, err, doc)
	}
	return &v
}

func keys(r rendered) []string {
	var ks []string
	for k := range r {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func replicas(d *appsv1.Deployment) string {
	if d.Spec.Replicas == nil {
		return "unset"
	}
	return fmt.Sprint(*d.Spec.Replicas)
}

func kdbridgeContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "kdbridge" {
		t.Fatalf("containers: %+v, want one named kdbridge", cs)
	}
	return cs[0]
}

func envValue(c corev1.Container, name string) (corev1.EnvVar, bool) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return corev1.EnvVar{}, false
	}
	return c.Env[i], true
}

func volume(d *appsv1.Deployment, name string) (corev1.Volume, bool) {
	vs := d.Spec.Template.Spec.Volumes
	i := slices.IndexFunc(vs, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		return corev1.Volume{}, false
	}
	return vs[i], true
}

func mount(c corev1.Container, name string) (corev1.VolumeMount, bool) {
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == name })
	if i < 0 {
		return corev1.VolumeMount{}, false
	}
	return c.VolumeMounts[i], true
}

// checkCommon checks what every rendering must have: probes, the security context, the
// configuration from the ConfigMap, http.listen on 0.0.0.0, resource requests.
func checkCommon(t *testing.T, r rendered) (*appsv1.Deployment, corev1.Container, map[string]any) {
	t.Helper()
	d := decode[appsv1.Deployment](t, r, "Deployment/kdb-kdbridge")
	c := kdbridgeContainer(t, d)
	pod := d.Spec.Template.Spec

	for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != "http" {
			t.Errorf("probe for %s: %+v", name, p)
		}
	}
	if i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" && p.ContainerPort == 9090 }); i < 0 {
		t.Errorf("no container port http/9090: %+v", c.Ports)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.FSGroup == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: %+v, want non-root with an fsGroup and the RuntimeDefault seccomp profile", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
		*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext: %+v, want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the pod mounts a service account token it never uses")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v, want cpu and memory requests and a memory limit", c.Resources)
	}
	if !slices.Equal(c.Args, []string{"run", "-config", "/etc/kdbridge/config.yaml"}) {
		t.Errorf("args %q", c.Args)
	}
	if e, _ := envValue(c, "KDBRIDGE_HTTP_LISTEN"); e.Value != "0.0.0.0:9090" {
		t.Errorf("KDBRIDGE_HTTP_LISTEN = %q", e.Value)
	}

	// The configuration comes from the ConfigMap, mounted where -config points.
	v, ok := volume(d, "config")
	if !ok || v.ConfigMap == nil || v.ConfigMap.Name != "kdb-kdbridge" {
		t.Errorf("config volume: %+v", v)
	}
	if m, ok := mount(c, "config"); !ok || m.MountPath != "/etc/kdbridge" || !m.ReadOnly {
		t.Errorf("config mount: %+v", m)
	}
	// No mount inside another: the kubelet cannot make a mount point in a read-only
	// ConfigMap or Secret volume.
	for _, a := range c.VolumeMounts {
		for _, b := range c.VolumeMounts {
			if a.Name != b.Name && strings.HasPrefix(b.MountPath, strings.TrimSuffix(a.MountPath, "/")+"/") {
				t.Errorf("mount %s (%s) is inside mount %s (%s)", b.Name, b.MountPath, a.Name, a.MountPath)
			}
		}
	}
	cm := decode[corev1.ConfigMap](t, r, "ConfigMap/kdb-kdbridge")
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("config.yaml: %v\n%s", err, cm.Data["config.yaml"])
	}
	if got := fmt.Sprint(cfg["http"]); got != "map[listen:0.0.0.0:9090]" {
		t.Errorf("config http = %s, want listen on 0.0.0.0:9090", got)
	}
	if _, ok := d.Spec.Template.Annotations["checksum/config"]; !ok {
		t.Errorf("no checksum/config annotation: a changed configuration would not roll the pods")
	}

	svc := decode[corev1.Service](t, r, "Service/kdb-kdbridge")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" || svc.Spec.Selector["app.kubernetes.io/name"] != "kdbridge" {
		t.Errorf("service: %+v", svc.Spec)
	}
	if !strings.Contains(r["NOTES"], "/readyz") || !strings.Contains(r["NOTES"], "send-test") {
		t.Errorf("NOTES.txt says nothing about /readyz or send-test:\n%s", r["NOTES"])
	}
	return d, c, cfg
}

// TestChartDefaults: the default values render one replica on bbolt: Recreate, a PVC
// mounted at /data, no secrets volume, no ServiceMonitor or PodDisruptionBudget.
func TestChartDefaults(t *testing.T) {
	r, err := render(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, c, cfg := checkCommon(t, r)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %s, strategy %s: want 1 and Recreate (one process holds the bbolt file)", replicas(d), d.Spec.Strategy.Type)
	}
	if got := fmt.Sprint(cfg["state"]); got != "map[dir:/data]" {
		t.Errorf("config state = %s, want dir /data", got)
	}
	pvc := decode[corev1.PersistentVolumeClaim](t, r, "PersistentVolumeClaim/kdb-kdbridge-data")
	if pvc.Spec.Resources.Requests.Storage().String() != "1Gi" || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("pvc: %+v", pvc.Spec)
	}
	if v, ok := volume(d, "data"); !ok || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "kdb-kdbridge-data" {
		t.Errorf("data volume: %+v", v)
	}
	if m, ok := mount(c, "data"); !ok || m.MountPath != "/data" || m.ReadOnly {
		t.Errorf("data mount: %+v", m)
	}
	if e, ok := envValue(c, "KDBRIDGE_STATE_DIR"); !ok || e.Value != "/data" {
		t.Errorf("KDBRIDGE_STATE_DIR = %+v", e)
	}
	if _, ok := envValue(c, "KDBRIDGE_REPLICA"); ok {
		t.Errorf("KDBRIDGE_REPLICA set for a single bbolt node")
	}
	if _, ok := volume(d, "secrets"); ok {
		t.Errorf("a secrets volume without any secret configured")
	}
	for _, k := range []string{"ServiceMonitor/kdb-kdbridge", "PodDisruptionBudget/kdb-kdbridge", "Secret/kdb-kdbridge", "PrometheusRule/kdb-kdbridge"} {
		if _, ok := r[k]; ok {
			t.Errorf("%s rendered by default", k)
		}
	}
	if _, ok := r["ServiceAccount/kdb-kdbridge"]; !ok {
		t.Errorf("no ServiceAccount: %v", keys(r))
	}
}

// TestChartSingleNodeExample: the documented single-node values mount the existing Secret
// as files at the paths the configuration's _file keys name, and add a ServiceMonitor
// whose job label is the one the alert rules expect.
func TestChartSingleNodeExample(t *testing.T) {
	r, err := render(t, "examples/single-node.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, c, cfg := checkCommon(t, r)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %s, want Recreate", d.Spec.Strategy.Type)
	}
	if c.Image != "registry.example.com/kdbridge:v1.0.0" {
		t.Errorf("image %q", c.Image)
	}
	checkSecretFiles(t, d, c, cfg, "kdbridge-secrets")
	sm := r["ServiceMonitor/kdb-kdbridge"]
	for _, want := range []string{"jobLabel: app.kubernetes.io/name", "port: http", "path: /metrics"} {
		if !strings.Contains(sm, want) {
			t.Errorf("ServiceMonitor lacks %q:\n%s", want, sm)
		}
	}
}

// checkSecretFiles: the secret is mounted read-only at /run/secrets/kdbridge, and every
// _file key of the configuration points there.
func checkSecretFiles(t *testing.T, d *appsv1.Deployment, c corev1.Container, cfg map[string]any, secret string) {
	t.Helper()
	v, ok := volume(d, "secrets")
	if !ok || v.Secret == nil || v.Secret.SecretName != secret || v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o440 {
		t.Errorf("secrets volume: %+v", v)
	}
	if m, ok := mount(c, "secrets"); !ok || m.MountPath != "/run/secrets/kdbridge" || !m.ReadOnly {
		t.Errorf("secrets mount: %+v", m)
	}
	files := 0
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && strings.HasSuffix(k, "_file") {
					files++
					if !strings.HasPrefix(s, "/run/secrets/kdbridge/") {
						t.Errorf("%s: %s is not under the secrets mount", k, s)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(cfg)
	if files == 0 {
		t.Errorf("the configuration reads no secret from a file")
	}
}

// TestChartHA: the HA example renders 2 replicas on PostgreSQL: a rolling update, no PVC
// and no /data, the DSN read from the secrets, KDBRIDGE_REPLICA from the pod name, and a
// PodDisruptionBudget.
func TestChartHA(t *testing.T) {
	r, err := render(t, "examples/ha.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, c, cfg := checkCommon(t, r)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("replicas %s, strategy %s: want 2 and RollingUpdate", replicas(d), d.Spec.Strategy.Type)
	}
	state, _ := cfg["state"].(map[string]any)
	if state["backend"] != "postgres" || state["dsn_file"] != "/run/secrets/kdbridge/postgres-dsn" || len(state) != 2 {
		t.Errorf("config state = %v, want backend postgres and dsn_file from the secrets", state)
	}
	for k := range r {
		if strings.HasPrefix(k, "PersistentVolumeClaim/") {
			t.Errorf("%s rendered for PostgreSQL state", k)
		}
	}
	if _, ok := volume(d, "data"); ok {
		t.Errorf("a data volume for PostgreSQL state")
	}
	if _, ok := envValue(c, "KDBRIDGE_STATE_DIR"); ok {
		t.Errorf("KDBRIDGE_STATE_DIR set for PostgreSQL state")
	}
	if e, ok := envValue(c, "KDBRIDGE_REPLICA"); !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("KDBRIDGE_REPLICA = %+v, want the pod name through the downward API", e)
	}
	checkSecretFiles(t, d, c, cfg, "kdbridge-secrets")
	pdb := decode[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget/kdb-kdbridge")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "kdbridge" {
		t.Errorf("pdb: %+v", pdb.Spec)
	}
}

// TestChartOwnSecret: secrets.values makes a Secret of the chart's own, mounted the same way.
func TestChartOwnSecret(t *testing.T) {
	r, err := render(t, "", map[string]any{"secrets": map[string]any{"values": map[string]any{"webhook-secret": "whsec_abc"}}})
	if err != nil {
		t.Fatal(err)
	}
	d, c, _ := checkCommon(t, r)
	s := decode[corev1.Secret](t, r, "Secret/kdb-kdbridge")
	if s.StringData["webhook-secret"] != "whsec_abc" {
		t.Errorf("secret data: %v", s.StringData)
	}
	if v, ok := volume(d, "secrets"); !ok || v.Secret == nil || v.Secret.SecretName != "kdb-kdbridge" {
		t.Errorf("secrets volume: %+v", v)
	}
	if _, ok := mount(c, "secrets"); !ok {
		t.Errorf("no secrets mount")
	}
}

// TestChartRefusesWhatCannotWork: values that cannot work fail to render (values.schema.json
// or the chart's own checks), saying why.
func TestChartRefusesWhatCannotWork(t *testing.T) {
	for _, tt := range []struct {
		name  string
		file  string
		extra map[string]any
		want  string
	}{
		{"two replicas on bbolt", "", map[string]any{"replicaCount": 2}, "bbolt store is one file"},
		{"an unknown backend", "", map[string]any{"state": map[string]any{"backend": "etcd"}}, "bbolt"}, // the schema's message
		{"a replica count that is no number", "", map[string]any{"replicaCount": "two"}, "replicaCount"},
		{"postgres without a DSN", "", map[string]any{"replicaCount": 2, "state": map[string]any{"backend": "postgres"}}, "reads its DSN from the secrets"},
		{"http in config", "", map[string]any{"config": map[string]any{"http": map[string]any{"listen": "127.0.0.1:1"}}}, "config.http is set by the chart"},
		{"a PDB that blocks drains", "", map[string]any{"podDisruptionBudget": map[string]any{"enabled": true}}, "would block every node drain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.file, tt.extra)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// TestChartLint: `helm lint` finds no warning or error, with the defaults and with each example.
func TestChartLint(t *testing.T) {
	examples, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	for _, f := range append([]string{""}, examples...) {
		vals := map[string]any{}
		if f != "" {
			v, err := chartutil.ReadValuesFile(f)
			if err != nil {
				t.Fatal(err)
			}
			vals = v
		}
		res := lint.All(chartDir, vals, "ops", true)
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev { // INFO (a missing icon) is fine
				t.Errorf("helm lint (values %q): %s", f, m)
			}
		}
	}
}

// secretFile is a plausible value for a secret the examples name, so that `kdbridge check`
// (which reads every _file key) accepts it.
func secretFile(key string) string {
	switch {
	case strings.Contains(key, "webhook"):
		return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	case strings.Contains(key, "slack"):
		return "xoxb-0000000000-0000000000000-chartchartchartchartchart"
	case strings.Contains(key, "postgres"):
		return "postgres://kdbridge:chart-test@127.0.0.1:1/kdbridge"
	}
	return "chart-test-secret"
}

// TestChartConfigPassesCheck: the configuration each example renders — the user's keys plus
// the chart's http and state — is one the daemon accepts: `kdbridge check`, built from this
// repository, passes it with the secret files in place. The HA example needs state.backend,
// which the daemon documents in config.example.yaml once it has PostgreSQL state; until then
// only the single-node example is checked.
func TestChartConfigPassesCheck(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kdbridge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/kdbridge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kdbridge: %v\n%s", err, out)
	}
	example, err := os.ReadFile(filepath.Join(root, "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	examples := []string{"examples/single-node.yaml"}
	if regexp.MustCompile(`\bbackend:\s*"?(bbolt|postgres)`).Match(example) {
		examples = append(examples, "examples/ha.yaml")
	} else {
		t.Log("config.example.yaml has no state.backend yet: the HA example's configuration is not checked")
	}
	secretPath := regexp.MustCompile(`/run/secrets/kdbridge/([A-Za-z0-9._-]+)`)
	for _, ex := range examples {
		t.Run(filepath.Base(ex), func(t *testing.T) {
			r, err := render(t, ex, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg := decode[corev1.ConfigMap](t, r, "ConfigMap/kdb-kdbridge").Data["config.yaml"]
			dir := t.TempDir()
			cfg = secretPath.ReplaceAllStringFunc(cfg, func(p string) string {
				key := secretPath.FindStringSubmatch(p)[1]
				local := filepath.Join(dir, key)
				if err := os.WriteFile(local, []byte(secretFile(key)), 0o600); err != nil {
					t.Fatal(err)
				}
				return local
			})
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, bin, "check", "-config", path, "-state-dir", filepath.Join(dir, "data"))
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir} // no KDBRIDGE_* from the environment
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("kdbridge check refuses the configuration the chart renders for %s: %v\n%s\n%s", ex, err, out, cfg)
			}
		})
	}
}

// TestChartPrometheusRule: prometheusRule.enabled renders a PrometheusRule whose spec is
// exactly the rules file that promtool tests (deploy/prometheus/kdbridge-rules.yaml).
func TestChartPrometheusRule(t *testing.T) {
	r, err := render(t, "examples/ha.yaml", map[string]any{"prometheusRule": map[string]any{"enabled": true}})
	if err != nil {
		t.Fatal(err)
	}
	doc, ok := r["PrometheusRule/kdb-kdbridge"]
	if !ok {
		t.Fatalf("no PrometheusRule; got %v", keys(r))
	}
	var obj struct {
		APIVersion string         `json:"apiVersion"`
		Spec       map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../prometheus/kdbridge-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(obj.Spec)
	exp, _ := yaml.Marshal(want)
	if obj.APIVersion != "monitoring.coreos.com/v1" || string(got) != string(exp) {
		t.Errorf("PrometheusRule %s spec:\n%s\nwant the rules file:\n%s", obj.APIVersion, got, exp)
	}
	if !strings.Contains(string(got), "KdbridgeTargetDisabled") || !strings.Contains(string(got), "{{ $labels.sink }}") {
		t.Errorf("the rules lost their alerts or their annotation templates on the way:\n%s", got)
	}
}
