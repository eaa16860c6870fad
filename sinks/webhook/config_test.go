package webhook_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// fieldErrors flattens what Validate returned.
func fieldErrors(t *testing.T, err error) []*config.FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*config.FieldError
	for _, e := range errs {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("Validate returned a %T, want config.FieldError: %v", e, e)
		}
		out = append(out, fe)
	}
	return out
}

func TestValidate(t *testing.T) {
	good := newSecret(t, 32)
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("ten bytes!"))
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte("https://discord.com/api/webhooks/1/TOKENTOKENTOKENTOKEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badURLFile := filepath.Join(dir, "bad-url")
	if err := os.WriteFile(badURLFile, []byte("not a url at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		cfg  webhook.Config
		want map[string]string // field → substring of its message; nil = valid
	}{
		{"minimal", webhook.Config{URL: "https://hooks.example.com/k"}, nil},
		{"everything", webhook.Config{
			URL: "http://127.0.0.1:8080/in?x=1", Secret: secrets(good, newSecret(t, 24)),
			Headers: map[string]string{"Authorization": "Bearer abc", "X-Type": "{{.Type}}"},
			Timeout: config.Duration(1e9), Rate: 2.5, MaxInFlight: 2,
			BodyTemplate: `{"text": {{json .Data.Message.Text}}}`, ContentType: "application/vnd.x+json",
		}, nil},
		{"url from a file", webhook.Config{URLFile: urlFile}, nil},
		{"no url", webhook.Config{}, map[string]string{"url": "required"}},
		{"both urls", webhook.Config{URL: "https://x/", URLFile: urlFile}, map[string]string{"url_file": "not both"}},
		{"relative url", webhook.Config{URL: "/hook"}, map[string]string{"url": "absolute"}},
		{"ftp url", webhook.Config{URL: "ftp://x/hook"}, map[string]string{"url": "http or https"}},
		{"url with fragment", webhook.Config{URL: "https://x/hook#frag"}, map[string]string{"url": "fragment"}},
		{"unparsable url", webhook.Config{URL: "http://x:port/"}, map[string]string{"url": "does not parse"}},
		{"missing url file", webhook.Config{URLFile: filepath.Join(dir, "nope")}, map[string]string{"url_file": "cannot read"}},
		{"bad url in file", webhook.Config{URLFile: badURLFile}, map[string]string{"url_file": "URL"}},
		{"secret without prefix", webhook.Config{URL: "https://x/", Secret: secrets("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")},
			map[string]string{"secret": `start with "whsec_"`}},
		{"secret not base64", webhook.Config{URL: "https://x/", Secret: secrets("whsec_not*base64!")},
			map[string]string{"secret": "base64"}},
		{"secret too short", webhook.Config{URL: "https://x/", Secret: secrets(short)},
			map[string]string{"secret": "10 bytes"}},
		{"second secret bad", webhook.Config{URL: "https://x/", Secret: secrets(good, "whsec_")},
			map[string]string{"secret[1]": "0 bytes"}},
		{"secret from file", webhook.Config{URL: "https://x/", SecretFile: "/s", Secret: secrets(good, "oops")},
			map[string]string{"secret_file": "entry 2"}},
		{"template parse error", webhook.Config{URL: "https://x/", BodyTemplate: "{\n  \"a\": {{json .Type}\n}"},
			map[string]string{"body_template": "template line 2"}},
		{"template unknown function", webhook.Config{URL: "https://x/", BodyTemplate: "{\n\n{{tojson .Type}}}"},
			map[string]string{"body_template": `template line 3: function "tojson" not defined`}},
		{"template misspelled field", webhook.Config{URL: "https://x/", BodyTemplate: "{\"a\":\n{{json .Data.Mesage}}}"},
			map[string]string{"body_template": "template line 2, column 12: at <.Data.Mesage>"}},
		{"template not JSON", webhook.Config{URL: "https://x/", BodyTemplate: `{"text": "{{.Data.Message.Text}}"}`},
			map[string]string{"body_template": "valid JSON"}},
		{"negative rate", webhook.Config{URL: "https://x/", Rate: -1}, map[string]string{"rate": "0 or more"}},
		{"negative max_in_flight", webhook.Config{URL: "https://x/", MaxInFlight: -2}, map[string]string{"max_in_flight": "negative"}},
		{"negative timeout", webhook.Config{URL: "https://x/", Timeout: -1}, map[string]string{"timeout": "negative"}},
		{"bad content type", webhook.Config{URL: "https://x/", ContentType: "json; ="}, map[string]string{"content_type": "media type"}},
		{"bad header name", webhook.Config{URL: "https://x/", Headers: map[string]string{"X Bad": "v"}},
			map[string]string{"headers.X Bad": "not a valid HTTP header name"}},
		{"reserved header", webhook.Config{URL: "https://x/", Headers: map[string]string{"webhook-id": "v"}},
			map[string]string{"headers.webhook-id": "cannot be set"}},
		{"duplicate header", webhook.Config{URL: "https://x/", Headers: map[string]string{"X-A": "1", "x-a": "2"}},
			map[string]string{"headers.x-a": "case-insensitive"}},
		{"header value newline", webhook.Config{URL: "https://x/", Headers: map[string]string{"X-A": "a\r\nInjected: 1"}},
			map[string]string{"headers.X-A": "control characters"}},
		{"header template renders newline", webhook.Config{URL: "https://x/", Headers: map[string]string{"X-A": "{{.Data.Message.Text}}"}},
			map[string]string{"headers.X-A": "control characters"}},
		{"header template error", webhook.Config{URL: "https://x/", Headers: map[string]string{"X-A": "{{.Nope}}"}},
			map[string]string{"headers.X-A": "template line 1"}},
		{"every problem at once", webhook.Config{Rate: -1, MaxInFlight: -1, Secret: secrets("x"), BodyTemplate: "{{"},
			map[string]string{"url": "", "rate": "", "max_in_flight": "", "secret": "", "body_template": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := map[string]string{}
			for _, fe := range fieldErrors(t, err) {
				if _, dup := got[fe.Field]; dup {
					t.Errorf("two problems for %s", fe.Field)
				}
				got[fe.Field] = fe.Msg
			}
			for field, sub := range tt.want {
				msg, ok := got[field]
				if !ok {
					t.Errorf("no problem reported for %s; got %v", field, err)
				} else if !strings.Contains(msg, sub) {
					t.Errorf("%s: %q does not mention %q", field, msg, sub)
				}
			}
			for field, msg := range got {
				if _, ok := tt.want[field]; !ok {
					t.Errorf("unexpected problem %s: %s", field, msg)
				}
			}
			if err != nil {
				for _, s := range tt.cfg.Secret {
					if len(s.Reveal()) > 6 && strings.Contains(err.Error(), s.Reveal()) {
						t.Errorf("a secret appears in the error: %v", err)
					}
				}
				if strings.Contains(err.Error(), "TOKENTOKEN") {
					t.Errorf("the URL from url_file appears in the error: %v", err)
				}
			}
			// New agrees with Validate.
			if _, nerr := webhook.New("hook", tt.cfg, webhook.Options{}); (nerr == nil) != (err == nil) {
				t.Errorf("Validate says %v but New says %v", err, nerr)
			}
		})
	}
}

// The configuration path users hit: YAML, strict decoding, secret_file, Validate, lines.
func TestConfigFromYAML(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secrets")
	a, b := newSecret(t, 32), newSecret(t, 32)
	if err := os.WriteFile(secretFile, []byte(a+"\n\n"+b+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `url: https://hooks.example.com/k
secret_file: ` + secretFile + `
headers: {X-Tenant: acme}
timeout: 10s
rate: 5
body_template: |
  {"text": {{json .Data.Message.Text}},
   "who": {{.Data.Message.Author.Nmae | json}}}
`
	n, ps := config.Parse([]byte(doc))
	if ps != nil {
		t.Fatal(ps.Err())
	}
	var cfg webhook.Config
	if ps := config.Decode(n, &cfg, "sinks[0]"); ps != nil {
		t.Fatal(ps.Err())
	}
	if len(cfg.Secret) != 2 || cfg.Secret[1].Reveal() != b {
		t.Fatalf("secret_file gave %d secrets", len(cfg.Secret))
	}
	ps = config.Locate(n, "sinks[0]", cfg.Validate())
	if len(ps) != 1 || ps[0].Path != "sinks[0].body_template" || ps[0].Line != 6 ||
		!strings.Contains(ps[0].Msg, "template line 2") || !strings.Contains(ps[0].Msg, "Nmae") {
		t.Fatalf("problems = %v", ps.Err())
	}
}
