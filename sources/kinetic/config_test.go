package kinetic

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

func validConfig() Config {
	return Config{
		URL:          "https://acme.kinops.io/",
		ClientID:     "integration-user",
		ClientSecret: "s3cret-Value",
		Discussions:  []string{"9fa2b330-fa5e-11e8-88ef-7bbe80231820"},
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://acme.kinops.io" || c.Heartbeat.D() != 30*time.Second || c.ReadLimit != 1<<20 ||
		c.AckTimeout.D() != 10*time.Second || c.PageSize != 100 || c.Backfill != 0 || c.SubscribesInFlight != 512 || c.ReadAhead != 4<<20 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		fields []string
	}{
		{"path form URL", func(c *Config) { c.URL = "http://host:8080/kinetic/acme" }, nil},
		{"no URL", func(c *Config) { c.URL = "" }, []string{"url"}},
		{"relative URL", func(c *Config) { c.URL = "acme.kinops.io" }, []string{"url"}},
		{"ws URL", func(c *Config) { c.URL = "wss://acme.kinops.io" }, []string{"url"}},
		{"URL with query", func(c *Config) { c.URL = "https://acme.kinops.io?x=1" }, []string{"url"}},
		{"URL with user", func(c *Config) { c.URL = "https://u:p@acme.kinops.io" }, []string{"url"}},
		{"no client", func(c *Config) { c.ClientID = " " }, []string{"client_id"}},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, []string{"client_secret"}},
		{"secret file", func(c *Config) { c.ClientSecret, c.ClientSecretFile = "", "/run/secrets/x" }, nil},
		{"no discussions", func(c *Config) { c.Discussions = nil }, []string{"discussions"}},
		{"bad ids", func(c *Config) {
			c.Discussions = []string{"9fa2b330-fa5e-11e8-88ef-7bbe80231820", "has space", "a/b", "9fa2b330-fa5e-11e8-88ef-7bbe80231820", ""}
		},
			[]string{"discussions[1]", "discussions[2]", "discussions[3]", "discussions[4]"}},
		{"durations", func(c *Config) {
			c.Heartbeat = config.Duration(time.Millisecond)
			c.AckTimeout = config.Duration(time.Hour)
			c.Backfill = config.Duration(-time.Second)
		}, []string{"heartbeat", "ack_timeout", "backfill"}},
		{"sizes", func(c *Config) { c.ReadLimit, c.PageSize, c.ReadAhead = 10, 5000, 512 }, []string{"read_limit", "read_ahead", "page_size"}},
		{"read ahead", func(c *Config) { c.ReadAhead = -1 }, []string{"read_ahead"}},
		{"subscribes in flight", func(c *Config) { c.SubscribesInFlight = -1 }, []string{"subscribes_in_flight"}},
		{"too many subscribes in flight", func(c *Config) { c.SubscribesInFlight = 5000 }, []string{"subscribes_in_flight"}},
		{"everything", func(c *Config) { *c = Config{} }, []string{"url", "client_id", "client_secret", "discussions"}},
		{"discover only", func(c *Config) {
			c.Discussions = nil
			c.Discover = &DiscoverConfig{Match: []bridge.MatchRule{{Related: &bridge.RelatedItem{Type: "Submission"}}}}
		}, nil},
		{"discover without rules", func(c *Config) { c.Discover = &DiscoverConfig{} }, []string{"discover.match"}},
		{"discover rules", func(c *Config) {
			c.Discover = &DiscoverConfig{Every: config.Duration(10 * time.Millisecond), Match: []bridge.MatchRule{
				{Title: "Incident *"},
				{},
				{Title: "Incident [0-9"},
				{Related: &bridge.RelatedItem{Key: "x"}},
				{Related: &bridge.RelatedItem{Type: "Form", Key: "services/it"}, Title: `bad\`},
			}}
		}, []string{"discover.every", "discover.match[1]", "discover.match[2].title", "discover.match[3].related.type", "discover.match[4].title"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			c.Defaults()
			err := c.Validate()
			var got []string
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					var fe *config.FieldError
					if !errors.As(e, &fe) {
						t.Errorf("not a FieldError: %v", e)
						continue
					}
					got = append(got, fe.Field)
				}
			} else if err != nil {
				t.Fatalf("not joined: %v", err)
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %v, want %v (%v)", got, tt.fields, err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret-Value") {
				t.Errorf("the secret is in the error: %v", err)
			}
		})
	}
}

// The config is decoded through the same path users hit: strict YAML, _file twins.
func TestConfigYAML(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `
url: https://acme.kinops.io
client_id: integration-user
client_secret_file: ` + secretFile + `
discussions: [9fa2b330-fa5e-11e8-88ef-7bbe80231820]
heartbeat: 15s
ack_timeout: 5
backfill: 24h
page_size: 50
read_limit: 65536
subscribes_in_flight: 4
read_ahead: 4194304
`
	n, ps := config.Parse([]byte(doc))
	if ps != nil {
		t.Fatal(ps.Err())
	}
	var c Config
	if ps := config.Decode(n, &c, "sources[0]"); ps != nil {
		t.Fatal(ps.Err())
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret.Reveal() != "from-file" || c.Heartbeat.D() != 15*time.Second || c.AckTimeout.D() != 5*time.Second ||
		c.Backfill.D() != 24*time.Hour || c.PageSize != 50 || c.ReadLimit != 65536 || c.SubscribesInFlight != 4 || c.ReadAhead != 4<<20 {
		t.Errorf("decoded %+v", c)
	}

	n, ps = config.Parse([]byte(`
url: https://acme.kinops.io
client_id: integration-user
client_secret: x
discover:
  match:
    - related: {type: Submission}
    - title: "Incident *"
    - related: {type: Form, key: services/it}
      title: "*"
  include_archived: true
`))
	if ps != nil {
		t.Fatal(ps.Err())
	}
	var cd Config
	if ps := config.Decode(n, &cd, "sources[0]"); ps != nil {
		t.Fatal(ps.Err())
	}
	cd.Defaults()
	if err := cd.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := cd.Discover; d.Every.D() != time.Minute || !d.IncludeArchived || len(d.Match) != 3 ||
		d.Match[0].Related.Type != "Submission" || d.Match[1].Title != "Incident *" || d.Match[2].Related.Key != "services/it" {
		t.Errorf("decoded discover %+v", d)
	}
	n, _ = config.Parse([]byte("discover:\n  match:\n    - titel: x\n"))
	var cu Config
	if ps := config.Decode(n, &cu, "sources[0]"); len(ps) != 1 || !strings.Contains(ps[0].Error(), "sources[0].discover.match[0].titel") {
		t.Errorf("unknown key in discover: %v", ps)
	}

	n, _ = config.Parse([]byte("url: https://x\nclient_secrett: y\n"))
	var c2 Config
	if ps := config.Decode(n, &c2, "sources[0]"); len(ps) != 1 || !strings.Contains(ps[0].Error(), "unknown key") {
		t.Errorf("unknown key: %v", ps)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New("", validConfig(), Options{}); err == nil {
		t.Error("no name accepted")
	}
	c := validConfig()
	c.URL = "ftp://x"
	if _, err := New("acme", c, Options{}); err == nil {
		t.Error("bad URL accepted")
	}
	c = validConfig()
	c.ClientSecret, c.ClientSecretFile = "", filepath.Join(t.TempDir(), "missing")
	if _, err := New("acme", c, Options{}); err == nil {
		t.Error("missing secret file accepted")
	}
	for in, want := range map[string]string{
		"https://acme.kinops.io":          "wss://acme.kinops.io/app/topics/socket",
		"http://host:8080/kinetic/acme/":  "ws://host:8080/kinetic/acme/app/topics/socket",
		"https://host/kinetic/acme%20two": "wss://host/kinetic/acme%20two/app/topics/socket",
	} {
		c := validConfig()
		c.URL = in
		s, err := New("acme", c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.dial.url != want {
			t.Errorf("socket URL for %s = %s, want %s", in, s.dial.url, want)
		}
	}
}
