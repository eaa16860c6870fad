package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestExpandForms(t *testing.T) {
	env := map[string]string{"SET": "value", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, problem string }{
		{"${SET}", "value", ""},
		{"${EMPTY}", "", ""},
		{"${UNSET}", "", "environment variable UNSET is not set"},
		{"${UNSET:-fallback}", "fallback", ""},
		{"${EMPTY:-fallback}", "fallback", ""},
		{"${SET:-fallback}", "value", ""},
		{"${UNSET:?set UNSET to the URL}", "", "environment variable UNSET: set UNSET to the URL"},
		{"${EMPTY:?}", "", "environment variable EMPTY: is not set"},
		{"${SET:?never}", "value", ""},
		{"a-${SET}-$${LITERAL}", "a-value-${LITERAL}", ""},
		{"${SET:+x}", "", "is not a valid variable reference"},
	}
	for _, tt := range tests {
		doc, _ := Parse([]byte("k: " + tt.in + "\n"))
		ps := Expand(doc, lookup)
		got := Lookup(doc, "k").Value
		switch {
		case tt.problem == "" && (len(ps) > 0 || got != tt.want):
			t.Errorf("%s: %q, %v; want %q", tt.in, got, ps.Err(), tt.want)
		case tt.problem != "" && (len(ps) != 1 || !strings.Contains(ps[0].Msg, tt.problem)):
			t.Errorf("%s: problems %v, want %q", tt.in, ps.Err(), tt.problem)
		}
	}
}

func TestResolveFilesAndClosest(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a_file: rel/x\nb_file: /abs/y\nlist: [{c_file: z}]\nplain: rel\n"), &doc); err != nil {
		t.Fatal(err)
	}
	ResolveFiles(&doc, "/etc/kdbridge")
	for k, want := range map[string]string{"a_file": "/etc/kdbridge/rel/x", "b_file": "/abs/y", "list[0].c_file": "/etc/kdbridge/z", "plain": "rel"} {
		if got := Lookup(&doc, k).Value; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	known := []string{"slack", "webhook", "stdout"}
	for in, want := range map[string]string{"webhok": "webhook", "slak": "slack", "Slack": "slack", "kafka": "", "": "", "x": ""} {
		if got := Closest(in, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}
