package main

import (
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// The compose files cannot be run here (no container engine), so this test checks what can
// be checked: the demo configuration loads and names the simulator's sample discussions, and
// every service runs a command kdbridge has.
func TestComposeFiles(t *testing.T) {
	cfg, err := loadConfig("../../compose/demo.yaml", lookupFrom(map[string]string{"WEBHOOK_SECRET": testSecret}), settings{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{kinetictest.SampleIncidentID, kinetictest.SampleFormID, kinetictest.SampleTeamID}
	if got := cfg.Sources[0].Kinetic.Discussions; !slices.Equal(got, want) {
		t.Errorf("demo discussions = %v, want the simulator's samples %v", got, want)
	}
	ha, err := loadConfig("../../compose/ha.yaml", lookupFrom(map[string]string{"WEBHOOK_SECRET": testSecret, "PG_DSN": "postgres://kdbridge:pw@postgres:5432/kdbridge"}), settings{Replica: "kdbridge-ha-1"})
	if err != nil {
		t.Fatal(err)
	}
	if ha.State.Backend != backendPostgres || !slices.Equal(ha.Sources[0].Kinetic.Discussions, want) {
		t.Errorf("ha configuration: state %s, discussions %v", ha.State.Backend, ha.Sources[0].Kinetic.Discussions)
	}
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Profiles    []string          `yaml:"profiles"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	known := []string{"run", "simulate", "receive"}
	for name, svc := range compose.Services {
		if len(svc.Command) > 0 && !slices.Contains(known, svc.Command[0]) {
			t.Errorf("service %s runs unknown command %q", name, svc.Command[0])
		}
		if len(svc.Profiles) == 0 {
			t.Errorf("service %s has no profile: it would start with every profile", name)
		}
	}
	// The ha profile: PostgreSQL, the simulator, the receiver and two replicas with names of
	// their own.
	replicas := map[string]bool{}
	for name, svc := range compose.Services {
		if slices.Contains(svc.Profiles, "ha") && svc.Environment["KDBRIDGE_REPLICA"] != "" {
			replicas[svc.Environment["KDBRIDGE_REPLICA"]] = true
		}
		if name == "postgres" || name == "simulator" || name == "receiver" {
			if !slices.Contains(svc.Profiles, "ha") {
				t.Errorf("service %s is not in the ha profile", name)
			}
		}
	}
	if len(replicas) != 2 {
		t.Errorf("the ha profile has %d distinct replicas, want 2: %v", len(replicas), replicas)
	}
}
