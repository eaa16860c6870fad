package main

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// httpHandler serves the operational endpoints: /healthz (the process is alive), /readyz
// (every source identified, every discussion subscribed or explicitly refused), /metrics
// (Prometheus), the operator console (internal/console) and, under the console's access
// rules (loopback only unless http.auth is set), the dead letter API of `kdbridge dlq` and
// POST /-/reload; /debug/pprof/ is for loopback clients only.
func httpHandler(d *daemon) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		leadership := ""
		if d.postgres {
			// A follower connected to the database is ready: it serves, and can take over.
			var problem string
			problem, leadership = d.ha.status()
			if problem != "" {
				problems = append(problems, problem)
			} else if d.store() == nil {
				problems = append(problems, "starting")
			}
		}
		switch {
		case leadership != "" && !d.leads():
		case !d.started.Load():
			problems = append(problems, "starting")
		default:
			problems = append(problems, notReady(d.currentSources())...)
			var halted map[string]string
			if disp := d.dispatcher(); disp != nil {
				halted = disp.Halted()
			}
			for _, name := range slices.Sorted(maps.Keys(halted)) {
				problems = append(problems, fmt.Sprintf("sink %s: halted, its credentials were refused (fix them and reload): %s", name, halted[name]))
			}
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:")
			for _, p := range problems {
				fmt.Fprintln(w, "  "+p)
			}
		} else {
			fmt.Fprintln(w, "ready")
			srcs := d.currentSources()
			for _, n := range append(socketModeStates(srcs), notices(srcs)...) {
				fmt.Fprintln(w, "  "+n)
			}
		}
		if leadership != "" {
			fmt.Fprintln(w, leadership)
		}
	})
	// Profiles for diagnosing memory and CPU, from this machine only.
	mux.Handle("GET /debug/pprof/", loopbackOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", loopbackOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", loopbackOnly(http.HandlerFunc(pprof.Trace)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{}))
	mux.Handle("POST /dlq/{action}", d.guard(dlqHandler(d)))
	if d.console != nil {
		d.console.Register(mux)
	}
	mux.Handle("POST /-/reload", d.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := d.reload(); err != nil {
			http.Error(w, "reload refused; the running configuration is kept:\n"+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "reloaded")
	})))
	return mux
}

// notReady lists what keeps the daemon from being ready, one line per problem.
func notReady(sources []bridge.Source) []string {
	var out []string
	out = append(out, socketModeNotReady(sources)...)
	for _, src := range sources {
		ks, ok := src.(*kinetic.Source)
		if !ok {
			continue
		}
		s := ks.Status()
		if !s.Identified {
			line := fmt.Sprintf("source %s: not identified", src.Name())
			if s.LastError != "" {
				line += ": " + s.LastError
			}
			out = append(out, line)
			continue
		}
		if s.Discovering && s.LastDiscovery.IsZero() {
			line := fmt.Sprintf("source %s: discovery has not completed a poll yet", src.Name())
			if s.DiscoveryError != "" {
				line += ": " + s.DiscoveryError
			}
			out = append(out, line)
		}
		for _, d := range s.Discussions {
			switch {
			case d.State == kinetic.StateRefused, d.State == kinetic.StateRemoved:
				// Explicitly refused by Kinetic, or removed from the discussion: reported in
				// logs, metrics and below "ready", but not a reason to take the daemon out of
				// service.
			case d.State != kinetic.StateSubscribed:
				out = append(out, fmt.Sprintf("source %s: discussion %s: %s", src.Name(), d.ID, d.State))
			case d.CatchingUp():
				out = append(out, fmt.Sprintf("source %s: discussion %s: catching up", src.Name(), d.ID))
			}
		}
	}
	return out
}

// notices lists the discussions that are left out while the daemon is ready: refused by
// Kinetic (retried slowly) or removed by the server (until a reload), and how many wait to
// catch up while their sinks are far behind (see kinetic's worker.holdBack).
func notices(sources []bridge.Source) []string {
	var out []string
	for _, src := range sources {
		ks, ok := src.(*kinetic.Source)
		if !ok {
			continue
		}
		held := 0
		for _, d := range ks.Status().Discussions {
			if d.HeldBack {
				held++
			}
			switch d.State {
			case kinetic.StateRefused:
				out = append(out, fmt.Sprintf("source %s: discussion %s: refused (%s); retried every few minutes", src.Name(), d.ID, d.Error))
			case kinetic.StateRemoved:
				out = append(out, fmt.Sprintf("source %s: discussion %s: removed (kdbridge's user was removed from it); subscribed again on reload", src.Name(), d.ID))
			}
		}
		if held > 0 {
			// One line, not one a discussion: after a restart it can be most of them.
			out = append(out, fmt.Sprintf("source %s: %d discussion(s) to catch up once the sinks they go to have delivered more of their backlog", src.Name(), held))
		}
	}
	return out
}

// loopbackOnly refuses requests that do not come from this machine: the listener may be bound
// to 0.0.0.0 in a container, and dead-letter actions are for the operator at the console.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(strings.Trim(host, "[]")); err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, "dead-letter actions are accepted from loopback only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
