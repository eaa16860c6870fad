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
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command  []string `yaml:"command"`
			Profiles []string `yaml:"profiles"`
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
}
