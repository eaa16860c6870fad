package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kelseyhightower/envconfig"
	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/internal/console"
	kineticsink "github.com/kdbridge/kdbridge/sinks/kinetic"
	"github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sinks/stdout"
	"github.com/kdbridge/kdbridge/sinks/webhook"
	"github.com/kdbridge/kdbridge/sources/kinetic"
	slackin "github.com/kdbridge/kdbridge/sources/slack"
)

// fileConfig is the whole configuration file. It is composed here, the one place that knows
// every adapter; each adapter's block lives next to the adapter.
type fileConfig struct {
	Log     logConfig            `yaml:"log"`
	HTTP    httpConfig           `yaml:"http"`
	State   stateConfig          `yaml:"state"`
	Sources []yaml.Node          `yaml:"sources"`
	Sinks   []yaml.Node          `yaml:"sinks"`
	Routes  []bridge.RouteConfig `yaml:"routes"`
}

type logConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

type httpConfig struct {
	Listen string             `yaml:"listen"` // "" disables the listener
	Auth   console.AuthConfig `yaml:"auth"`   // none: the console and operator API answer loopback only
}

type stateConfig struct {
	// Backend is where the state lives: "bbolt" (the embedded store in Dir, the default) or
	// "postgres" (a shared database, for several replicas; DSN or DSNFile).
	Backend   string          `yaml:"backend"`
	Dir       string          `yaml:"dir"`
	DSN       config.Secret   `yaml:"dsn"`
	DSNFile   string          `yaml:"dsn_file"`
	Replica   string          `yaml:"replica"` // this replica's name among those on one database
	Retention config.Duration `yaml:"retention"`
	Attempts  attemptsConfig  `yaml:"attempts"`
}

// attemptsConfig bounds the attempt history the console shows.
type attemptsConfig struct {
	Retention config.Duration `yaml:"retention"` // default 72h
	// Record is which attempts are kept: all (the default) or failures (only those that
	// did not deliver: a healthy bridge then writes no history at all).
	Record string `yaml:"record"`
}

// Values of state.attempts.record.
const (
	recordAll      = "all"
	recordFailures = "failures"
)

// failedOnly reports whether only the attempts that did not deliver are kept.
func (c attemptsConfig) failedOnly() bool { return c.Record == recordFailures }

// postgresReadAhead is a Kinetic source's read_ahead when its configuration sets none and
// the state is on PostgreSQL. A commit there costs more than bbolt's (a round trip and the
// server's own transaction), so appends need the longer batches that a deeper read-ahead
// lets queues build: a 20,000-message burst on PostgreSQL ran at 0.49× bbolt's rate with
// kinetic.DefaultReadAhead (4 MiB) and at 0.54× with 64 MiB (docs/performance.md, "Twelfth
// round"), where issue 12 asks for 0.5×.
const postgresReadAhead = 64 << 20

// readAheadFor is the read_ahead of a Kinetic source that sets none, on the state backend.
func readAheadFor(backend string) int64 {
	if backend == backendPostgres {
		return postgresReadAhead
	}
	return kinetic.DefaultReadAhead
}

// State backends.
const (
	backendBolt     = "bbolt"
	backendPostgres = "postgres"
)

// settings are the process settings that the environment (KDBRIDGE_*) and flags override.
type settings struct {
	Config     string `envconfig:"CONFIG"`
	StateDir   string `envconfig:"STATE_DIR"`
	Backend    string `envconfig:"STATE_BACKEND"`
	DSN        string `envconfig:"STATE_DSN"`
	Replica    string `envconfig:"REPLICA"`
	HTTPListen string `envconfig:"HTTP_LISTEN"`
	LogLevel   string `envconfig:"LOG_LEVEL"`
	LogFormat  string `envconfig:"LOG_FORMAT"`

	// from says where each set value came from ("flag -state-dir", "environment
	// KDBRIDGE_STATE_DIR"), by configuration key (state.dir); check shows it.
	from map[string]string
}

// processKeys pairs each process setting's configuration key with its settings field.
func (s *settings) processKeys() []struct {
	key string
	v   *string
} {
	return []struct {
		key string
		v   *string
	}{{"state.dir", &s.StateDir}, {"state.backend", &s.Backend}, {"state.replica", &s.Replica},
		{"http.listen", &s.HTTPListen}, {"log.level", &s.LogLevel}, {"log.format", &s.LogFormat}}
}

// envSettings reads KDBRIDGE_* from the process environment.
func envSettings() (settings, error) {
	var s settings
	err := envconfig.Process("KDBRIDGE", &s)
	return s, err
}

// Config is the loaded, validated configuration.
type Config struct {
	Log     logConfig
	HTTP    httpConfig
	State   stateConfig
	Sources []sourceEntry
	Sinks   []sinkEntry
	Routes  []bridge.RouteConfig
	// Origins says where each process setting's effective value came from, by key
	// (state.dir, state.retention, http.listen, log.level, log.format): "flag -state-dir",
	// "environment KDBRIDGE_STATE_DIR", "file" or "default".
	Origins map[string]string
}

type sourceEntry struct {
	Name    string
	Type    string
	Kinetic *kinetic.Config
	// Replies is the inbound half of a two-way Slack sink: made from the sink and the
	// routes, never written by hand (type "slack").
	Replies *slackin.Config
}

type sinkEntry struct {
	Name    string
	Type    string
	Retry   bridge.RetryConfig
	Webhook *webhook.Config
	Slack   *slack.Config
	Stdout  *stdout.Config
	// Kinetic is the sink that writes Slack replies into Kinetic: made from the Kinetic
	// sources when a route is two-way, never written by hand (type "kinetic").
	ToKinetic *kineticsink.Config
	// RouteTemplates are the Slack templates that routes set on their targets of this sink,
	// by route name; part of the entry so that a reload rebuilds the sink when they change.
	RouteTemplates map[string]string
}

// sourceCommon and sinkCommon are the keys every source or sink has, whatever its type.
type sourceCommon struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

type sinkCommon struct {
	Name  string             `yaml:"name"`
	Type  string             `yaml:"type"`
	Retry bridge.RetryConfig `yaml:"retry"`
}

var (
	sourceTypes = []string{"kinetic"}
	sinkTypes   = []string{"slack", "webhook", "stdout"}
)

// loadConfig reads and validates a configuration file: strict YAML, ${VAR} expansion, the
// environment overlay, defaults, then every problem at once with its line.
// Relative paths in the file (state.dir, every *_file) are relative to the file's folder.
func loadConfig(path string, lookup func(string) (string, bool), over settings) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, ps := parseConfigIn(filepath.Dir(path), data, lookup, over)
	if err := ps.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// loadProcessConfig reads only what the dlq commands need: the process settings (state,
// http, log) and the sink names. Variables and problems elsewhere in the file are ignored,
// so that a dlq command does not demand, say, SLACK_BOT_TOKEN.
func loadProcessConfig(path string, lookup func(string) (string, bool), over settings) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	doc, ps := config.Parse(data)
	if len(ps) > 0 {
		return nil, fmt.Errorf("%s: %w", path, ps.Err())
	}
	root := doc.Content[0]
	proc := only(root, "log", "http", "state")
	ps = append(ps, config.Expand(proc, lookup)...)
	config.ResolveFiles(proc, filepath.Dir(path))
	var f fileConfig
	ps = append(ps, config.Decode(proc, &f, "")...)
	cfg := &Config{Log: f.Log, HTTP: f.HTTP, State: f.State}
	cfg.settle(filepath.Dir(path), over)
	ps = append(ps, cfg.validateProcess(root)...)
	if sinks := config.Lookup(root, "sinks"); sinks != nil {
		for _, n := range sinks.Content {
			if name := config.Lookup(n, "name"); name != nil && name.Kind == yaml.ScalarNode {
				cfg.Sinks = append(cfg.Sinks, sinkEntry{Name: name.Value})
			}
		}
	}
	if err := ps.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig parses a configuration whose relative paths are relative to the current directory.
func parseConfig(data []byte, lookup func(string) (string, bool), over settings) (*Config, config.Problems) {
	return parseConfigIn("", data, lookup, over)
}

// parseConfigIn parses a configuration read from a file in dir.
func parseConfigIn(dir string, data []byte, lookup func(string) (string, bool), over settings) (*Config, config.Problems) {
	doc, ps := config.Parse(data)
	if len(ps) > 0 {
		return nil, ps
	}
	ps = append(ps, config.Expand(doc, lookup)...)
	config.ResolveFiles(doc, dir)
	var f fileConfig
	ps = append(ps, config.Decode(doc, &f, "")...)
	root := doc.Content[0]
	cfg := &Config{Log: f.Log, HTTP: f.HTTP, State: f.State, Routes: f.Routes}
	cfg.settle(dir, over)
	ps = append(ps, cfg.validateProcess(root)...)

	sources := map[string]bool{}
	for i := range f.Sources {
		n := &f.Sources[i]
		path := config.Path("sources", i)
		var c sourceCommon
		ps = append(ps, config.Decode(only(n, "name", "type"), &c, path)...)
		e := sourceEntry{Name: c.Name, Type: c.Type}
		ps = append(ps, checkName(n, path, "source", c.Name, sources)...)
		rest := without(n, "name", "type")
		typ := c.Type
		if !slices.Contains(sourceTypes, typ) {
			// Report the type, and check the rest as the type meant, so that its other
			// problems show now rather than after the type is fixed.
			ps = append(ps, badType(n, path, c.Type, sourceTypes))
			typ = config.Closest(c.Type, sourceTypes)
		}
		switch typ {
		case "kinetic":
			e.Kinetic = &kinetic.Config{}
			ps = append(ps, config.Decode(rest, e.Kinetic, path)...)
			if e.Kinetic.ReadAhead == 0 {
				e.Kinetic.ReadAhead = readAheadFor(cfg.State.Backend) // settled above
			}
			e.Kinetic.Defaults()
			ps = append(ps, config.Locate(n, path, e.Kinetic.Validate())...)
		}
		cfg.Sources = append(cfg.Sources, e)
	}

	sinks := map[string]bool{}
	sinkType := map[string]*sinkEntry{}
	for i := range f.Sinks {
		n := &f.Sinks[i]
		path := config.Path("sinks", i)
		var c sinkCommon
		ps = append(ps, config.Decode(only(n, "name", "type", "retry"), &c, path)...)
		c.Retry.Defaults()
		ps = append(ps, config.Locate(n, path, c.Retry.Validate())...)
		e := sinkEntry{Name: c.Name, Type: c.Type, Retry: c.Retry}
		ps = append(ps, checkName(n, path, "sink", c.Name, sinks)...)
		rest := without(n, "name", "type", "retry")
		var v interface{ Validate() error }
		typ := c.Type
		if !slices.Contains(sinkTypes, typ) {
			ps = append(ps, badType(n, path, c.Type, sinkTypes))
			typ = config.Closest(c.Type, sinkTypes) // check the rest as the type meant
		}
		switch typ {
		case "webhook":
			e.Webhook = &webhook.Config{}
			v = e.Webhook
		case "slack":
			e.Slack = &slack.Config{}
			v = e.Slack
		case "stdout":
			e.Stdout = &stdout.Config{}
			v = e.Stdout
		}
		if v != nil {
			ps = append(ps, config.Decode(rest, v, path)...)
			if d, ok := v.(interface{ Defaults() }); ok {
				d.Defaults()
			}
			ps = append(ps, config.Locate(n, path, v.Validate())...)
		}
		cfg.Sinks = append(cfg.Sinks, e)
	}
	for i := range cfg.Sinks {
		sinkType[cfg.Sinks[i].Name] = &cfg.Sinks[i]
	}

	routesNode := config.Lookup(root, "routes")
	routeNames := map[string]bool{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		r.Defaults()
		path := config.Path("routes", i)
		var n *yaml.Node
		if routesNode != nil && i < len(routesNode.Content) {
			n = routesNode.Content[i]
		}
		ps = append(ps, checkName(n, path, "route", r.Name, routeNames)...)
		ps = append(ps, config.Locate(n, path, r.Validate(sources, sinks))...)
		for j, t := range r.To {
			e := sinkType[t.Sink]
			tp := config.Path(config.Path(path, "to"), j)
			switch {
			case e == nil:
			case t.Channel != "" && e.Slack == nil:
				ps.Add(config.FieldLine(n, fmt.Sprintf("to[%d].channel", j)), tp+".channel", "channel applies to slack sinks only; %q is a %s sink", t.Sink, e.Type)
			case t.Channel == "" && e.Slack != nil && e.Slack.Channel == "":
				ps.Add(config.FieldLine(n, fmt.Sprintf("to[%d]", j)), tp, "slack sink %q has no default channel: set channel here or on the sink", t.Sink)
			}
			if t.Template == "" || e == nil {
				continue
			}
			line := config.FieldLine(n, fmt.Sprintf("to[%d].template", j))
			switch {
			case e.Slack == nil:
				ps.Add(line, tp+".template", "template applies to slack sinks only; %q is a %s sink", t.Sink, e.Type)
			case otherTemplate(r.To[:j], t.Sink):
				ps.Add(line, tp+".template", "route %q already sets a template for sink %q", r.Name, t.Sink)
			default:
				if err := slack.ValidateTemplate(t.Template); err != nil {
					ps.Add(line, tp+".template", "%v", err)
				}
			}
		}
	}
	for i := range cfg.Sinks {
		if e := &cfg.Sinks[i]; e.Slack != nil {
			e.RouteTemplates = routeTemplates(cfg.Routes, e.Name)
		}
	}
	ps = append(ps, cfg.twoWay(routesNode)...)
	if len(cfg.Routes) == 0 && len(ps) == 0 {
		ps.Add(root.Line, "routes", "no routes: nothing would be delivered")
	}
	return cfg, ps
}

// settle gives each process setting its effective value, flag > environment > file >
// default, and records where it came from. A relative state.dir written in the file is
// relative to the file's folder dir; one given by flag or environment, to the current one.
func (c *Config) settle(dir string, s settings) {
	c.Origins = map[string]string{}
	if c.State.Dir != "" && dir != "" && !filepath.IsAbs(c.State.Dir) {
		c.State.Dir = filepath.Join(dir, c.State.Dir)
	}
	mine := map[string]*string{"state.dir": &c.State.Dir, "state.backend": &c.State.Backend, "state.replica": &c.State.Replica,
		"http.listen": &c.HTTP.Listen, "log.level": &c.Log.Level, "log.format": &c.Log.Format}
	for _, k := range s.processKeys() {
		dst := mine[k.key]
		switch {
		case *k.v != "":
			*dst = *k.v
			c.Origins[k.key] = orDefault(s.from[k.key], "override")
		case *dst != "":
			c.Origins[k.key] = "file"
		}
	}
	if s.DSN != "" {
		c.State.DSN, c.State.DSNFile = config.Secret(s.DSN), ""
		c.Origins["state.dsn"] = "environment KDBRIDGE_STATE_DSN"
	} else if c.State.DSN.IsSet() {
		c.Origins["state.dsn"] = "file"
	}
	c.Origins["state.retention"] = "file"
	for _, d := range []struct {
		key string
		v   *string
		def string
	}{{"log.level", &c.Log.Level, "info"}, {"log.format", &c.Log.Format, "text"}, {"http.listen", &c.HTTP.Listen, "127.0.0.1:9090"}, {"state.dir", &c.State.Dir, "./data"}, {"state.backend", &c.State.Backend, backendBolt}} {
		if *d.v == "" {
			*d.v = d.def
			c.Origins[d.key] = "default"
		}
	}
	if c.State.Replica == "" {
		c.State.Replica, _ = os.Hostname()
		c.Origins["state.replica"] = "default (the host name)"
	}
	if c.State.Retention == 0 {
		c.State.Retention = config.Duration(7 * 24 * time.Hour)
		c.Origins["state.retention"] = "default"
	}
	if c.State.Attempts.Retention == 0 {
		c.State.Attempts.Retention = config.Duration(72 * time.Hour)
	}
	if c.State.Attempts.Record == "" {
		c.State.Attempts.Record = recordAll
	}
	c.HTTP.Auth.Defaults()
}

// processCheck validates each process setting by its configuration key.
var processCheck = map[string]func(string) error{
	"log.level": func(v string) error { _, err := parseLevel(v); return err },
	"log.format": func(v string) error {
		if !slices.Contains([]string{"text", "json"}, v) {
			return fmt.Errorf("%q is not a log format (text or json)", v)
		}
		return nil
	},
	"http.listen": func(v string) error {
		if v == "off" {
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q is not host:port (or \"off\")", v)
		}
		return nil
	},
}

// validateProcess reports bad process settings where they came from: a line of the file,
// or the environment variable. (A bad flag is a usage error, found before the file is read.)
func (c *Config) validateProcess(root *yaml.Node) config.Problems {
	var ps config.Problems
	for _, k := range []struct{ key, v string }{{"log.level", c.Log.Level}, {"log.format", c.Log.Format}, {"http.listen", c.HTTP.Listen}} {
		err := processCheck[k.key](k.v)
		switch {
		case err == nil:
		case c.Origins[k.key] == "file":
			ps.Add(config.FieldLine(root, k.key), k.key, "%v", err)
		default:
			ps.Add(0, k.key, "%v (from %s)", err, c.Origins[k.key])
		}
	}
	at := func(p string) int { return config.FieldLine(root, p) }
	switch c.State.Backend {
	case backendBolt:
		if c.State.DSN.IsSet() {
			ps.Add(at("state.dsn"), "state.dsn", "applies to backend postgres only (backend is %q)", c.State.Backend)
		}
	case backendPostgres:
		if !c.State.DSN.IsSet() {
			ps.Add(at("state"), "state.dsn", "backend postgres needs dsn (or dsn_file): the database to keep the state in")
		} else if _, err := pgconn.ParseConfig(c.State.DSN.Reveal()); err != nil {
			ps.Add(at("state.dsn"), "state.dsn", "not a PostgreSQL connection string: %s", pgstore.ScrubDSN(err.Error(), c.State.DSN.Reveal()))
		}
		if c.State.Replica == "" {
			ps.Add(at("state.replica"), "state.replica", "backend postgres needs a replica name (the host name could not be read)")
		}
	default:
		if c.Origins["state.backend"] == "file" {
			ps.Add(at("state.backend"), "state.backend", "%q is not a state backend (bbolt or postgres)", c.State.Backend)
		} else {
			ps.Add(0, "state.backend", "%q is not a state backend (bbolt or postgres) (from %s)", c.State.Backend, c.Origins["state.backend"])
		}
	}
	ps = append(ps, config.Locate(config.Lookup(root, "http.auth"), "http.auth", c.HTTP.Auth.Validate())...)
	if c.State.Attempts.Retention < 0 {
		ps.Add(config.FieldLine(root, "state.attempts.retention"), "state.attempts.retention", "must not be negative")
	}
	if r := c.State.Attempts.Record; r != recordAll && r != recordFailures {
		ps.Add(config.FieldLine(root, "state.attempts.record"), "state.attempts.record", "%q is not all or failures", r)
	}
	return ps
}

func checkName(n *yaml.Node, path, kind, name string, seen map[string]bool) config.Problems {
	var ps config.Problems
	switch {
	case name == "":
		ps.Add(config.FieldLine(n, ""), path+".name", "every %s needs a name", kind)
	case strings.ContainsAny(name, "\x00/"):
		ps.Add(config.FieldLine(n, "name"), path+".name", "%s name %q may not contain '/'", kind, name)
	case seen[name]:
		ps.Add(config.FieldLine(n, "name"), path+".name", "duplicate %s name %q", kind, name)
	}
	seen[name] = true
	return ps
}

func badType(n *yaml.Node, path, typ string, known []string) config.Problem {
	msg := fmt.Sprintf("unknown type %q (known: %s)", typ, strings.Join(known, ", "))
	if guess := config.Closest(typ, known); guess != "" {
		msg = fmt.Sprintf("unknown type %q (known: %s); did you mean %s? The rest of this entry is checked as %s", typ, strings.Join(known, ", "), guess, guess)
	}
	if typ == "" {
		msg = fmt.Sprintf("missing type (one of: %s)", strings.Join(known, ", "))
	}
	return config.Problem{Line: config.FieldLine(n, "type"), Path: path + ".type", Msg: msg}
}

// only and without split a mapping node's keys between the common part and the
// adapter's part, so that each is decoded strictly against its own type.
func only(n *yaml.Node, keys ...string) *yaml.Node    { return filter(n, keys, true) }
func without(n *yaml.Node, keys ...string) *yaml.Node { return filter(n, keys, false) }

func filter(n *yaml.Node, keys []string, keep bool) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(keys, n.Content[i].Value) == keep {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &out
}

// routeTemplates maps route names to the Slack template their targets set for sink.
func routeTemplates(routes []bridge.RouteConfig, sink string) map[string]string {
	out := map[string]string{}
	for _, r := range routes {
		for _, t := range r.To {
			if t.Sink == sink && t.Template != "" {
				out[r.Name] = t.Template
			}
		}
	}
	return out
}

func otherTemplate(targets []bridge.TargetConfig, sink string) bool {
	for _, t := range targets {
		if t.Sink == sink && t.Template != "" {
			return true
		}
	}
	return false
}
