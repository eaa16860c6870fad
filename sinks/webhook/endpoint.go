package webhook

import (
	"encoding/base64"
	"errors"
	"net/url"
	"sort"
	"strings"

	"github.com/kdbridge/kdbridge/internal/config"
)

// endpoint is the destination of a sink, with what may be shown of it and what must not.
type endpoint struct {
	url     string   // the full URL: for requests only, never for text
	parsed  *url.URL // url, parsed: what a redirect's Location is resolved against
	display string   // scheme://host/path, or scheme://host/… when the path may hold a token
	hidden  []string // substrings to redact from any text: the URL, its userinfo, query, ...
	hideAll bool     // the URL came from a file, so its path is a secret too
	// whole are the spellings of the whole URL, which text shows as display: a Go error
	// such as `Post "https://host/p?token=…"` then names the endpoint without its secrets,
	// and a URL with no secret is not turned into "<secret>".
	whole []string
	// basic is the Authorization header for the URL's user info ("Basic …"), sent unless a
	// configured header gives Authorization; "" when the URL has none.
	basic string
}

// parseEndpoint checks raw. hidePath is set for a URL read from url_file, whose path may be a
// token (Discord and Slack webhook URLs are). Its errors never quote the URL.
func parseEndpoint(raw string, hidePath bool) (endpoint, error) {
	if raw == "" {
		return endpoint{}, errors.New("URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, errors.New("URL does not parse; it must be an absolute http or https URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return endpoint{}, errors.New("URL must be an absolute http or https URL")
	case u.Host == "" || u.Opaque != "":
		return endpoint{}, errors.New("URL has no host; it must be an absolute http or https URL")
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return endpoint{}, errors.New("URL must not have a #fragment (it is never sent)")
	}
	ep := endpoint{url: raw, parsed: u, hideAll: hidePath}
	ep.display = displayURL(u, hidePath)
	ep.whole = []string{raw, u.String()}
	ep.hidden = append(ep.hidden, u.RawQuery)
	if u.User != nil {
		ep.hidden = append(ep.hidden, u.User.String(), u.User.Username())
		// Sent as Basic credentials (as net/http's client does), which a receiver may echo.
		p, hasPassword := u.User.Password()
		basic := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + p))
		ep.basic = "Basic " + basic
		ep.hidden = append(ep.hidden, basic)
		if hasPassword {
			ep.hidden = append(ep.hidden, p, url.QueryEscape(p))
		}
	}
	for k, vs := range u.Query() {
		ep.hidden = append(ep.hidden, k+"="+url.QueryEscape(strings.Join(vs, "")))
		for _, v := range vs {
			ep.hidden = append(ep.hidden, v, url.QueryEscape(v))
		}
	}
	if hidePath {
		ep.hidden = append(ep.hidden, u.Path, u.EscapedPath())
		for _, seg := range strings.Split(u.Path, "/") {
			// A token segment is long; short ones ("api", "hooks") are words that would
			// turn up in unrelated text.
			if len(seg) >= 16 {
				ep.hidden = append(ep.hidden, seg)
			}
		}
	}
	return ep, nil
}

// displayURL is the form of u that logs and errors may show.
func displayURL(u *url.URL, hidePath bool) string {
	if hidePath {
		return u.Scheme + "://" + u.Host + "/…"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// sortHidden orders substrings longest first, so that redacting a short one (a query value)
// cannot break the match of a long one (the whole URL).
func sortHidden(hidden []string) []string {
	out := make([]string, 0, len(hidden))
	seen := map[string]bool{}
	for _, h := range hidden {
		// Very short strings ("a", "v1") would turn every error into noise; config.Redact
		// skips them as well.
		if len(h) >= 4 && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// redactedError hides the sink's secrets in the text of an error while keeping the error's
// chain for errors.As and errors.Is: the whole URL becomes its display form, then every
// secret part left (a query value, user info, a header value) becomes "<secret>".
type redactedError struct {
	err    error
	ep     *endpoint
	hidden []string
}

func (e *redactedError) Error() string { return config.Redact(e.ep.show(e.err.Error()), e.hidden...) }

// show replaces every spelling of the whole URL in text with its display form.
func (ep *endpoint) show(text string) string {
	for _, w := range ep.whole {
		if w != "" {
			text = strings.ReplaceAll(text, w, ep.display)
		}
	}
	return text
}
func (e *redactedError) Unwrap() error { return e.err }

// DisplayURL is the form of the configured URL that logs and `check` may show: no query,
// no user info, and no path when the URL comes from url_file.
func (c *Config) DisplayURL() string {
	if c.URL == "" && c.URLFile != "" {
		return "(url from " + c.URLFile + ")"
	}
	ep, err := parseEndpoint(c.URL, c.URLFile != "")
	if err != nil {
		return "(invalid URL)"
	}
	return ep.display
}
