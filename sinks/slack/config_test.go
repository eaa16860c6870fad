package slack

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/internal/config"
)

func TestValidateAccepts(t *testing.T) {
	for _, c := range []Config{
		{Token: "xoxb-1"},
		{Token: "xoxb-1", Channel: "#ops", Threads: "replies", Identity: "bot", MentionUsers: "email", APIURL: "https://slack-gov.com/api/"},
		{Token: "xoxb-1", Channel: "C0123ABCD", Threads: "none", IconURL: "https://example.com/{{ sha256 .Email }}.png",
			Template: "{{.Author.Name}}: {{.Text}}", Rate: 0.5, Burst: 1},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	c := Config{Token: "xoxb-1", APIURL: "http://127.0.0.1:9/api"}
	got, err := c.compile()
	if err != nil || got.cfg.APIURL != "http://127.0.0.1:9/api/" {
		t.Errorf("api_url without a trailing slash: %+v %v", got, err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := Config{
		Channel:      "#two channels",
		Threads:      "thread",
		Identity:     "user",
		MentionUsers: "yes",
		APIURL:       "slack.com/api",
		Rate:         -1,
		Burst:        -2,
		Template:     "line one\n{{ .Author.Name }\n",
		IconURL:      "{{ .Nope }}",
	}
	err := c.Validate()
	fields := map[string]string{}
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *config.FieldError
		if errors.As(err, &fe) {
			fields[fe.Field] = fe.Msg
		}
	}
	walk(err)
	for field, want := range map[string]string{
		"token":         "is required",
		"channel":       "one channel id",
		"threads":       `"thread" is not one of`,
		"identity":      `"user" is not one of`,
		"mention_users": `"yes"`,
		"api_url":       "absolute http(s) URL",
		"rate":          "more than 0",
		"burst":         "negative",
		"template":      "template line 2",
		"icon_url":      "can't evaluate field Nope",
	} {
		if !strings.Contains(fields[field], want) {
			t.Errorf("%s: %q, want it to contain %q", field, fields[field], want)
		}
	}
}

func TestValidateTemplates(t *testing.T) {
	for src, want := range map[string]string{
		"ok\n{{.Message.Nope}}":               "template line 2, column 10: at <.Message.Nope>: can't evaluate field Nope",
		"{{if .Edited}}\nno end":              "template line 2: unexpected EOF",
		"see <{{.Discussion.URL}}|here>":      "template line 1: a field right after \"<\"",
		"x\ny\n<!{{.Author.Name}}>":           "template line 3",
		"<@ {{- .Author.Name}}>":              "control sequence",
		"{{truncate 10 .Text | printf \"%s\"": "template line 1",
	} {
		err := (&Config{Token: "xoxb-1", Template: src}).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
		// ValidateTemplate, for a route target's template, says the same without a key.
		if err := ValidateTemplate(src); err == nil || !strings.HasPrefix(err.Error(), "template line ") || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateTemplate(%q): %v, want %q", src, err, want)
		}
	}
	for _, src := range []string{"{{.Text}}", "<!here> {{.Author.Name}}: {{truncate 200 .Text}}", "{{link .Discussion.URL .Discussion.Title}}"} {
		if err := ValidateTemplate(src); err != nil {
			t.Errorf("ValidateTemplate(%q): %v", src, err)
		}
	}
	if err := (&Config{Token: "xoxb-1", Identity: "bot", IconURL: "https://x.example/a.png"}).Validate(); err == nil {
		t.Error("icon_url with identity: bot accepted")
	}
	if err := (&Config{Token: "xoxb-1", IconURL: "not a url {{.Name}}"}).Validate(); err == nil {
		t.Error("icon_url that renders no URL accepted")
	}
}

// TestValidateLines runs Validate through config.Locate, as `kdbridge check` does, to show the
// YAML line of a bad template.
func TestValidateLines(t *testing.T) {
	src := "type: slack\ntoken: xoxb-1\nthreads: sideways\ntemplate: |\n  ok\n  {{ .Nope }}\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	c := Config{Token: "xoxb-1", Threads: "sideways", Template: "ok\n{{ .Nope }}\n"}
	ps := config.Locate(doc.Content[0], "sinks[0]", c.Validate())
	text := ps.Err().Error()
	for _, want := range []string{"line 3: sinks[0].threads", "line 4: sinks[0].template: template line 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	doc, err := config.Parse([]byte("token: xoxb-1\nchannel: \"#ops\"\ntimeout: 5s\nrate: 2\nchanel: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	ps := config.Decode(doc, &c, "sinks[0]")
	if len(ps) != 1 || ps[0].Line != 5 || c.Channel != "#ops" || c.Timeout.D().Seconds() != 5 || c.Rate != 2 {
		t.Errorf("decoded %+v, problems %v", c, ps)
	}
}
