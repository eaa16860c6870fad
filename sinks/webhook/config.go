package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"os"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// Defaults of the settings a configuration may leave out.
//
// DefaultMaxInFlight bounds a sink to DefaultMaxInFlight/RTT deliveries a second: 8 allowed
// only 160/s against a receiver 50ms away, and capped a loopback burst. Order does not
// depend on it (it is kept per discussion), and each delivery in flight costs a goroutine
// and at most one keep-alive connection.
const (
	DefaultTimeout     = 15 * time.Second
	DefaultMaxInFlight = 32
	DefaultContentType = "application/json"
)

// Config is a `type: webhook` entry of `sinks:`.
//
// Secrets follow Standard Webhooks: "whsec_" followed by the standard base64 encoding of 24
// to 64 random bytes (generate one with `echo whsec_$(openssl rand -base64 32)`). The prefix
// is required: a receiver's verifier (the standardwebhooks libraries) base64-decodes whatever
// it is given, so a key that kdbridge took as raw bytes could never verify there. With
// several secrets every one signs each request, so a receiver can rotate keys without a gap.
//
// If the URL carries a token in its path (Discord, Teams, Slack incoming webhooks), put it
// in url_file: logs and errors then show only its scheme and host. The query string and
// user info of a URL are never shown either way, and neither are secrets or static header
// values (often credentials), even when a receiver echoes them in an error response.
//
// Header values and body_template are Go text/template sources over bridge.Envelope (.ID,
// .Type, .Timestamp, .Data.Source, .Data.Discussion.Title, .Data.Message.Text,
// .Data.Message.Author.DisplayName, ...), with the functions json, jsonstr, truncate and
// default (see templates.go). .Data.Message is nil for events that are not about a message,
// so guard it with {{with .Data.Message}}.
type Config struct {
	URL          string            `yaml:"url"`
	URLFile      string            `yaml:"url_file"`      // URL read from a file (it may carry a token)
	Secret       config.Secrets    `yaml:"secret"`        // whsec_… ; one or a list (rotation: every secret signs)
	SecretFile   string            `yaml:"secret_file"`   // one secret per line (config.Decode fills Secret from it)
	Headers      map[string]string `yaml:"headers"`       // values may be Go text/template over the event
	Timeout      config.Duration   `yaml:"timeout"`       // default 15s
	Rate         float64           `yaml:"rate"`          // requests/s, 0 = unlimited
	MaxInFlight  int               `yaml:"max_in_flight"` // default 32
	BodyTemplate string            `yaml:"body_template"` // optional Go text/template producing the body
	ContentType  string            `yaml:"content_type"`  // default application/json
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Timeout == 0 {
		c.Timeout = config.Duration(DefaultTimeout)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ContentType == "" {
		c.ContentType = DefaultContentType
	}
}

// Validate reports every problem of the configuration, joined, each as a config.FieldError
// naming its key. It reads url_file but makes no network calls. A template is parsed and also
// run against a sample message, so that a misspelled field or a body that is not JSON shows
// up now rather than at the first delivery.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// compiled is a configuration turned into what delivery needs. Validate and New share it, so
// whatever Validate accepts, New builds.
type compiled struct {
	endpoint endpoint
	keys     [][]byte
	body     *template.Template // nil: send the envelope
	headers  []header
	jsonBody bool // the content type is JSON, so a rendered body must be JSON
	cfg      Config
}

// header is one configured header; tmpl is nil when the value has no template action.
type header struct {
	name  string
	value string
	tmpl  *template.Template
}

// reserved headers are set by the sink; letting a configuration override them would break
// the signature or the transport.
var reserved = map[string]string{
	"webhook-id":        "it is the event id",
	"webhook-timestamp": "it is set on every attempt",
	"webhook-signature": "it is computed from secret",
	"content-type":      "use content_type",
	"content-length":    "it is computed",
	"host":              "it comes from url",
	"transfer-encoding": "it is managed by the HTTP client",
	"connection":        "it is managed by the HTTP client",
}

func (c *Config) compile() (*compiled, error) {
	cfg := *c
	cfg.Defaults()
	out := &compiled{cfg: cfg}
	var errs []error

	switch {
	case cfg.URL != "" && cfg.URLFile != "":
		errs = append(errs, config.Fieldf("url_file", "set either url or url_file, not both"))
	case cfg.URL == "" && cfg.URLFile == "":
		errs = append(errs, config.Fieldf("url", "is required (or url_file)"))
	case cfg.URLFile != "":
		data, err := os.ReadFile(cfg.URLFile)
		if err != nil {
			errs = append(errs, config.Fieldf("url_file", "cannot read: %v", errors.Unwrap(err)))
			break
		}
		ep, err := parseEndpoint(strings.TrimSpace(string(data)), true)
		if err != nil {
			errs = append(errs, config.Fieldf("url_file", "the file's %v", err))
		}
		out.endpoint = ep
	default:
		ep, err := parseEndpoint(cfg.URL, false)
		if err != nil {
			errs = append(errs, config.Fieldf("url", "%v", err))
		}
		out.endpoint = ep
	}

	for i, s := range cfg.Secret {
		key, err := decodeSecret(s.Reveal())
		if err != nil {
			field, where := config.Path("secret", i), ""
			if len(cfg.Secret) == 1 {
				field = "secret"
			}
			if cfg.SecretFile != "" {
				field, where = "secret_file", fmt.Sprintf(" (entry %d of the file)", i+1)
			}
			errs = append(errs, config.Fieldf(field, "%v%s", err, where))
			continue
		}
		out.keys = append(out.keys, key)
	}

	if d := cfg.Timeout.D(); d < 0 {
		errs = append(errs, config.Fieldf("timeout", "must not be negative"))
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		errs = append(errs, config.Fieldf("rate", "must be a number of requests per second, 0 or more (0 = unlimited)"))
	}
	if cfg.MaxInFlight < 0 {
		errs = append(errs, config.Fieldf("max_in_flight", "must not be negative (0 = default %d)", DefaultMaxInFlight))
	}

	mt, _, err := mime.ParseMediaType(cfg.ContentType)
	if err != nil {
		errs = append(errs, config.Fieldf("content_type", "is not a media type: %v", err))
	}
	out.jsonBody = mt == "application/json" || strings.HasSuffix(mt, "+json")

	sample := sampleEnvelope()
	if cfg.BodyTemplate != "" {
		t, err := compileBody(cfg.BodyTemplate, out.jsonBody, sample)
		if err != nil {
			errs = append(errs, config.Fieldf("body_template", "%v", err))
		}
		out.body = t
	}
	hs, herrs := compileHeaders(cfg.Headers, sample)
	out.headers, errs = hs, append(errs, herrs...)

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// compileBody parses a body template and tries it on a sample message.
func compileBody(src string, jsonBody bool, sample bridge.Envelope) (*template.Template, error) {
	t, err := parseTemplate("body_template", src)
	if err != nil {
		return nil, err
	}
	body, err := execute(t, sample)
	if err != nil {
		return nil, err
	}
	if jsonBody && !json.Valid(body) {
		return nil, errors.New("does not produce valid JSON for a sample message with quotes, newlines and " +
			"unicode in its text; insert values with {{json .Data.Message.Text}} (or jsonstr inside a string), " +
			"or set content_type if the body is not JSON")
	}
	return t, nil
}

// compileHeaders checks header names and values, in a stable order, and parses the values
// that are templates.
func compileHeaders(headers map[string]string, sample bridge.Envelope) ([]header, []error) {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []header
	var errs []error
	seen := map[string]string{}
	for _, name := range names {
		field := "headers." + name
		lower := strings.ToLower(name)
		if !validHeaderName(name) {
			errs = append(errs, config.Fieldf(field, "%q is not a valid HTTP header name", name))
			continue
		}
		if why, ok := reserved[lower]; ok {
			errs = append(errs, config.Fieldf(field, "cannot be set here: %s", why))
			continue
		}
		if other, dup := seen[lower]; dup {
			errs = append(errs, config.Fieldf(field, "repeats header %q (names are case-insensitive)", other))
			continue
		}
		seen[lower] = name
		h := header{name: name, value: headers[name]}
		if !strings.Contains(h.value, "{{") {
			if !validHeaderValue(h.value) {
				errs = append(errs, config.Fieldf(field, "the value contains control characters"))
				continue
			}
			out = append(out, h)
			continue
		}
		t, err := parseTemplate(field, h.value)
		if err == nil {
			var v []byte
			if v, err = execute(t, sample); err == nil && !validHeaderValue(string(v)) {
				err = errors.New("renders a value with control characters (a newline?) for a sample message")
			}
		}
		if err != nil {
			errs = append(errs, config.Fieldf(field, "%v", err))
			continue
		}
		h.tmpl = t
		out = append(out, h)
	}
	return out, errs
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue rejects control characters other than tab: a rendered newline would
// otherwise be refused by the HTTP client at delivery time, or worse, split the header.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
