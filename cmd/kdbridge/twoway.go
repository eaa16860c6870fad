package main

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	kineticsink "github.com/kdbridge/kdbridge/sinks/kinetic"
	"github.com/kdbridge/kdbridge/sources/kinetic"
	slackin "github.com/kdbridge/kdbridge/sources/slack"
)

// kineticSinkName is the sink that writes Slack replies into Kinetic; reserved when a route
// is two-way.
const kineticSinkName = "kinetic"

// twoWay checks the two-way settings (`reply: true` on route targets or on slack sinks) and
// adds what they imply: for each two-way Slack sink, a source of its replies (Socket Mode)
// and a route from it to the Kinetic sink, which writes into the Kinetic sources' spaces.
func (c *Config) twoWay(routesNode *yaml.Node) config.Problems {
	var ps config.Problems
	sinks := map[string]*sinkEntry{}
	for i := range c.Sinks {
		sinks[c.Sinks[i].Name] = &c.Sinks[i]
	}
	kineticSources := map[string]*kinetic.Config{}
	for _, s := range c.Sources {
		if s.Kinetic != nil {
			kineticSources[s.Name] = s.Kinetic
		}
	}
	replyRoutes := map[string][]string{} // slack sink → two-way routes
	for i, r := range c.Routes {
		var n *yaml.Node
		if routesNode != nil && i < len(routesNode.Content) {
			n = routesNode.Content[i]
		}
		for j, t := range r.To {
			e := sinks[t.Sink]
			if e == nil || !(t.Reply || (e.Slack != nil && e.Slack.Reply)) {
				continue
			}
			tp := config.Path(config.Path(config.Path("routes", i), "to"), j)
			line := config.FieldLine(n, fmt.Sprintf("to[%d].reply", j))
			switch {
			case e.Slack == nil:
				ps.Add(line, tp+".reply", "reply applies to slack sinks only; %q is a %s sink", t.Sink, e.Type)
				continue
			case !e.Slack.AppToken.IsSet():
				ps.Add(line, tp+".reply", "slack sink %q has no app_token: replies come over Socket Mode, which needs an app-level token (xapp-…)", t.Sink)
				continue
			case r.Source != "" && kineticSources[r.Source] == nil:
				ps.Add(line, tp+".reply", "replies go back to the route's Kinetic source, and %q is not one", r.Source)
				continue
			case len(kineticSources) == 0:
				ps.Add(line, tp+".reply", "replies need a kinetic source to write into")
				continue
			}
			if !slices.Contains(replyRoutes[t.Sink], r.Name) {
				replyRoutes[t.Sink] = append(replyRoutes[t.Sink], r.Name)
			}
		}
	}
	if len(replyRoutes) == 0 {
		return ps
	}
	if _, taken := sinks[kineticSinkName]; taken {
		ps.Add(0, "sinks", "the sink name %q is reserved for writing Slack replies into Kinetic when a route is two-way (reply: true); rename that sink", kineticSinkName)
		return ps
	}
	authors := map[string]string{}
	for name := range replyRoutes {
		if a := sinks[name].Slack.ReplyAuthor; a != "" {
			if err := kineticsink.ValidateAuthor(a); err != nil {
				ps.Add(0, config.Path(config.Path("sinks", slices.IndexFunc(c.Sinks, func(e sinkEntry) bool { return e.Name == name })), "reply_author"), "%v", err)
			}
			authors[name] = a
		}
	}
	spaces := map[string]kineticsink.Space{}
	for name, k := range kineticSources {
		spaces[name] = kineticsink.Space{URL: k.URL, ClientID: k.ClientID, ClientSecret: k.ClientSecret}
	}
	retry := bridge.RetryConfig{}
	retry.Defaults()
	c.Sinks = append(c.Sinks, sinkEntry{Name: kineticSinkName, Type: "kinetic", Retry: retry, ToKinetic: &kineticsink.Config{Spaces: spaces, Authors: authors}})

	names := map[string]bool{}
	for _, s := range c.Sources {
		names[s.Name] = true
	}
	for _, r := range c.Routes {
		names["route "+r.Name] = true
	}
	var sinkNames []string
	for name := range replyRoutes {
		sinkNames = append(sinkNames, name)
	}
	slices.Sort(sinkNames)
	for _, name := range sinkNames {
		sc := sinks[name].Slack
		src := slackin.Name(name)
		if names[src] || names["route "+src] {
			ps.Add(0, "sources", "the name %q is reserved for the replies of slack sink %q; rename that source or route", src, name)
			continue
		}
		routes := replyRoutes[name]
		slices.Sort(routes)
		c.Sources = append(c.Sources, sourceEntry{Name: src, Type: "slack", Replies: &slackin.Config{
			Sink: name, Token: sc.Token, AppToken: sc.AppToken, APIURL: apiURL(sc.APIURL), Routes: routes,
			Timeout: sc.Timeout.D(), MaxText: kineticsink.MaxText,
		}})
		c.Routes = append(c.Routes, bridge.RouteConfig{Name: src, Source: src, Discussions: []string{"*"},
			Events: slices.Clone(bridge.DefaultRouteEvents), To: []bridge.TargetConfig{{Sink: kineticSinkName}}})
	}
	return ps
}

// apiURL is a sink's api_url as slack-go wants it: ending in "/".
func apiURL(u string) string {
	if u != "" && !strings.HasSuffix(u, "/") {
		return u + "/"
	}
	return u
}

// socketModeNotReady lists the two-way sources whose Socket Mode connection is not up: a
// reason for /readyz to answer 503.
func socketModeNotReady(sources []bridge.Source) []string {
	var out []string
	for _, src := range sources {
		if is, ok := src.(*slackin.Source); ok {
			if st := is.Status(); st.State != slackin.StateConnected {
				line := fmt.Sprintf("source %s: Socket Mode %s", src.Name(), st.State)
				if st.LastError != "" {
					line += ": " + st.LastError
				}
				out = append(out, line)
			}
		}
	}
	return out
}

// socketModeStates lists the two-way sources' Socket Mode connections, shown under "ready".
func socketModeStates(sources []bridge.Source) []string {
	var out []string
	for _, src := range sources {
		if is, ok := src.(*slackin.Source); ok {
			out = append(out, fmt.Sprintf("source %s: Socket Mode %s", src.Name(), is.Status().State))
		}
	}
	return out
}
