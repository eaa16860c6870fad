package bridge

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/internal/config"
)

// RouteConfig is one entry of `routes:` in the configuration file.
type RouteConfig struct {
	Name          string         `yaml:"name"`
	Source        string         `yaml:"source"`         // "" = every source
	Discussions   []string       `yaml:"discussions"`    // ids or "*"; default "*" unless match is set
	Match         []MatchRule    `yaml:"match"`          // also (or instead) discussions that match any rule
	Events        []string       `yaml:"events"`         // canonical types or globs; default message.*
	SkipAuthors   []string       `yaml:"skip_authors"`   // usernames; the source's own user is always skipped
	IncludeSystem bool           `yaml:"include_system"` // also route System messages ("Participant Joined"...)
	To            []TargetConfig `yaml:"to"`
}

// TargetConfig is one entry of a route's `to:`: a sink name, or a mapping with per-route
// options for that sink.
type TargetConfig struct {
	Sink     string `yaml:"sink"`
	Channel  string `yaml:"channel"`  // slack: this route's channel
	Template string `yaml:"template"` // slack: this route's message template
	Reply    bool   `yaml:"reply"`    // slack: replies typed in this route's threads go back to Kinetic
}

type targetFields TargetConfig

// UnmarshalYAML accepts the shorthand `- audit` as well as `- {sink: audit, channel: C1}`.
func (t *TargetConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Sink = n.Value
		return nil
	}
	var f targetFields
	if ps := config.Decode(n, &f, ""); len(ps) > 0 {
		return ps.Err()
	}
	*t = TargetConfig(f)
	return nil
}

// Defaults fills the defaults of a route.
func (r *RouteConfig) Defaults() {
	if len(r.Discussions) == 0 && len(r.Match) == 0 {
		r.Discussions = []string{"*"}
	}
	if len(r.Events) == 0 {
		r.Events = slices.Clone(DefaultRouteEvents)
	}
}

// discussionID is a Kinetic discussion id: a UUID.
var discussionID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate checks the route against the names of the configured sources and sinks. It
// returns every problem, each naming its key.
func (r *RouteConfig) Validate(sources, sinks map[string]bool) error {
	var errs []error
	if r.Name == "" {
		errs = append(errs, config.Fieldf("name", "a route needs a name"))
	}
	if r.Source != "" && !sources[r.Source] {
		errs = append(errs, config.Fieldf("source", "unknown source %q (configured: %s)", r.Source, names(sources)))
	}
	for i, d := range r.Discussions {
		switch {
		case strings.TrimSpace(d) == "":
			errs = append(errs, config.Fieldf(fmt.Sprintf("discussions[%d]", i), "empty discussion id"))
		case d != "*" && !discussionID.MatchString(d):
			errs = append(errs, config.Fieldf(fmt.Sprintf("discussions[%d]", i), "%q is not a discussion id: Kinetic discussion ids are UUIDs such as 9fa2b330-fa5e-11e8-88ef-7bbe80231820 (or \"*\" for all)", d))
		}
	}
	if r.Match != nil {
		errs = append(errs, ValidateMatch("match", r.Match)...)
	}
	for i, e := range r.Events {
		if !knownEventPattern(e) {
			errs = append(errs, config.Fieldf(fmt.Sprintf("events[%d]", i), "%q matches no event type (known: %s)", e, strings.Join(EventTypes, ", ")))
		}
	}
	if len(r.To) == 0 {
		errs = append(errs, config.Fieldf("to", "a route needs at least one target"))
	}
	for i, t := range r.To {
		if !sinks[t.Sink] {
			errs = append(errs, config.Fieldf(fmt.Sprintf("to[%d]", i), "unknown sink %q (configured: %s)", t.Sink, names(sinks)))
		}
	}
	return errors.Join(errs...)
}

func knownEventPattern(p string) bool {
	if _, err := path.Match(p, ""); err != nil {
		return false
	}
	for _, t := range EventTypes {
		if ok, _ := path.Match(p, t); ok {
			return true
		}
	}
	return false
}

func names(m map[string]bool) string {
	if len(m) == 0 {
		return "none"
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// Router decides which targets an event goes to. It is a pure function of the event and the
// routes; it holds no state that changes.
type Router struct {
	routes []route
	self   SelfUsers
}

type route struct {
	cfg         RouteConfig
	allDisc     bool
	discussions map[string]bool
	skip        map[string]bool
	targets     []Target
}

// SelfUsers returns the username a source acts as ("" when unknown): events authored by it
// are never routed, so that kdbridge never echoes itself. It is called for every event, from
// the dispatcher's goroutines.
type SelfUsers func(source string) string

// NewRouter builds a router. self maps a source name to the username the source acts as.
func NewRouter(routes []RouteConfig, self map[string]string) *Router {
	return NewRouterSelf(routes, func(source string) string { return self[source] })
}

// NewRouterSelf builds a router that asks self at routing time: a source may learn the
// username it acts as only once connected (a Kinetic token's username claim).
func NewRouterSelf(routes []RouteConfig, self SelfUsers) *Router {
	r := &Router{self: self}
	for _, rc := range routes {
		rc.Defaults()
		rt := route{cfg: rc, discussions: map[string]bool{}, skip: map[string]bool{}}
		for _, d := range rc.Discussions {
			if d == "*" {
				rt.allDisc = true
			}
			rt.discussions[d] = true
		}
		for _, a := range rc.SkipAuthors {
			rt.skip[a] = true
		}
		for _, t := range rc.To {
			rt.targets = append(rt.targets, Target{Route: rc.Name, Sink: t.Sink, Channel: t.Channel})
		}
		r.routes = append(r.routes, rt)
	}
	return r
}

// Targets returns the targets of every route that selects e, in route order.
func (r *Router) Targets(e Event) []Target {
	var out []Target
	for i := range r.routes {
		if rt := &r.routes[i]; rt.selects(e, r.self(e.Source)) {
			out = append(out, rt.targets...)
		}
	}
	return out
}

func (rt *route) selects(e Event, self string) bool {
	if rt.cfg.Source != "" && rt.cfg.Source != e.Source {
		return false
	}
	if e.Inbound != nil && rt.cfg.Source != e.Source {
		// A reply typed in Slack goes only where a route for its source says: a route for
		// every source must not send it back out to Slack or to webhooks.
		return false
	}
	if !rt.allDisc && !rt.discussions[e.Discussion.ID] && !MatchesAny(rt.cfg.Match, e.Discussion) {
		return false
	}
	if !matchAny(rt.cfg.Events, e.Type) {
		return false
	}
	if m := e.Message; m != nil {
		if m.Kind == KindSystem && !rt.cfg.IncludeSystem {
			return false
		}
		if u := m.Author.Username; u != "" && (u == self || rt.skip[u]) {
			return false
		}
	}
	return true
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}
