package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

var pages = []string{"overview", "deliveries", "deadletters", "deadletter", "discussions"}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"ago": func(now, t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return roughly(now.Sub(t)) + " ago"
		},
		"dur": func(d time.Duration) string {
			if d == 0 {
				return "—"
			}
			return roughly(d)
		},
		"ms": func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) },
		"short": func(s string, n int) string {
			if len(s) <= n {
				return s
			}
			return s[:n] + "…"
		},
		"target": func(t bridge.Target) string {
			s := t.Route + " → " + t.Sink
			if t.Channel != "" {
				s += " " + t.Channel
			}
			return s
		},
		"list": func(s ...string) []string { return s },
		"sub":  func(a, b time.Time) time.Duration { return a.Sub(b).Round(time.Second) },
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console templates: %w", err)
		}
		out[p] = t
	}
	return out, nil
}

// roughly prints a duration to two units: 3h12m, 4m05s, 12s, 350ms.
func roughly(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + roughly(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return strings.TrimSuffix(fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24), "0h")
	}
}
