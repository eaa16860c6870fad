package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2-very-secret")
	type holder struct {
		Token Secret  `json:"token" yaml:"token"`
		List  Secrets `json:"list" yaml:"list"`
	}
	h := holder{Token: s, List: Secrets{s, "another-secret-1"}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "s", s, "list", h.List, "h", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "s", s, "h", h)
	js, _ := json.Marshal(h)
	ym, _ := yaml.Marshal(h)
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", s, h, h, s, s, s), s.String(),
		string(js), string(ym), logs.String(), fmt.Sprint(h.List), fmt.Errorf("wrapped: %v", h).Error(),
	}
	for _, o := range outs {
		if strings.Contains(o, "hunter2") || strings.Contains(o, "another-secret") {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if s.Reveal() != "hunter2-very-secret" {
		t.Error("Reveal lost the value")
	}
}

func TestExpand(t *testing.T) {
	doc, _ := Parse([]byte("a: ${A}\nb: pre-${B}-post\nc: $${LITERAL}\nd: ${MISSING}\n${KEY}: 1\nn: ${NUM}\n"))
	env := map[string]string{"A": "alpha", "B": "beta", "NUM": "42"}
	ps := Expand(doc, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if len(ps) != 1 || ps[0].Line != 4 || !strings.Contains(ps[0].Msg, "MISSING is not set") {
		t.Fatalf("problems = %v", ps)
	}
	var got struct {
		A, B, C, D string
		N          string
		Key        int `yaml:"${KEY}"`
	}
	if ps := Decode(doc, &got, ""); len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	if got.A != "alpha" || got.B != "pre-beta-post" || got.C != "${LITERAL}" || got.N != "42" || got.Key != 1 {
		t.Errorf("expanded = %+v", got)
	}
}

func TestDecodeStrict(t *testing.T) {
	type inner struct {
		Every Duration `yaml:"every"`
	}
	type outer struct {
		Name  string           `yaml:"name"`
		Inner inner            `yaml:"inner"`
		List  []inner          `yaml:"list"`
		Map   map[string]inner `yaml:"map"`
		Count int              `yaml:"count"`
	}
	src := "name: x\ninner: {every: 5s, evry: 1}\nlist:\n  - every: 1m\n  - nope: 1\nmap: {k: {bad: 1}}\ncount: many\nextra: 1\n"
	doc, _ := Parse([]byte(src))
	var o outer
	ps := Decode(doc, &o, "root")
	text := ps.Err().Error()
	for _, want := range []string{"line 2: root.inner.evry: unknown key (known keys: every)", "line 5: root.list[1].nope", "line 6: root.map.k.bad", "line 8: root.extra", "cannot unmarshal !!str `many`"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestDuration(t *testing.T) {
	var v struct{ D, S, Bad Duration }
	err := yaml.Unmarshal([]byte("d: 1m30s\ns: 45\n"), &v)
	if err != nil || v.D.D() != 90*time.Second || v.S.D() != 45*time.Second {
		t.Fatalf("%+v %v", v, err)
	}
	if err := yaml.Unmarshal([]byte("bad: soon\n"), &v); err == nil || !strings.Contains(err.Error(), `"soon" is not a duration`) {
		t.Errorf("bad duration: %v", err)
	}
}

func TestLocate(t *testing.T) {
	doc, _ := Parse([]byte("name: x\nto:\n  - a\n  - {sink: b, channel: c}\n"))
	err := fmt.Errorf("wrap: %w", Fieldf("to[1].channel", "bad channel"))
	ps := Locate(doc.Content[0], "routes[3]", errors.Join(err, Fieldf("nope", "missing")))
	if len(ps) != 2 || ps[0].Line != 4 || ps[0].Path != "routes[3].to[1].channel" || ps[1].Line != 1 {
		t.Errorf("located = %+v", ps)
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("GET https://x/?token=abcd1234 failed: abcd1234", "abcd1234", ""); strings.Contains(got, "abcd1234") {
		t.Errorf("Redact = %q", got)
	}
}
