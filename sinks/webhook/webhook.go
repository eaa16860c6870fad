// Package webhook is the sink that POSTs events to an HTTP endpoint as Standard Webhooks
// (https://www.standardwebhooks.com): the envelope of DESIGN §4 (or a body rendered from a
// template), signed with HMAC-SHA256 under every configured secret, with the event id as the
// receiver's idempotency key. Status codes are mapped to the bridge's failure kinds, so the
// dispatcher retries, waits or dead-letters as the receiver asked.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kdbridge/kdbridge/bridge"
)

// Options are what the process, not the configuration file, gives a sink.
type Options struct {
	Logger    *slog.Logger // default: discard
	UserAgent string       // default "kdbridge"; the daemon passes "kdbridge/<version>"
	// Client, if set, lends its transport (tests: a TLS test server's client); nothing else
	// of it is used: the configured timeout applies and redirects are never followed.
	Client *http.Client
}

// Sink delivers events to one webhook endpoint. It is safe for concurrent use.
type Sink struct {
	name    string
	c       *compiled
	sign    *signer           // nil without secrets
	rt      http.RoundTripper // the sink's own transport (see newTransport)
	timeout time.Duration     // of a whole attempt: request, answer and its body
	limiter *rate.Limiter     // nil: unlimited
	log     *slog.Logger
	ua      string
	hidden  []string    // never shown in errors: secrets, URL parts, header values
	gone    atomic.Bool // the endpoint answered 410 and nothing since succeeded
}

var _ bridge.Sink = (*Sink)(nil)

// New builds a sink from a configuration. It returns the same errors Validate does (joined
// config.FieldErrors) and makes no network calls.
func New(name string, cfg Config, opts Options) (*Sink, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	s := &Sink{name: name, c: c, ua: opts.UserAgent}
	if s.ua == "" {
		s.ua = "kdbridge"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s.log = logger.With("sink", name)
	if c.cfg.Rate > 0 {
		// A burst of one keeps the rate a ceiling over any window, also when a backlog
		// drains after an outage.
		s.limiter = rate.NewLimiter(rate.Limit(c.cfg.Rate), 1)
	}
	s.rt, s.timeout = newTransport(opts.Client, c.cfg.MaxInFlight), c.cfg.Timeout.D()
	if len(c.keys) > 0 {
		s.sign = newSigner(c.keys)
	}

	hidden := append([]string(nil), c.endpoint.hidden...)
	for _, sec := range c.cfg.Secret {
		hidden = append(hidden, sec.Reveal(), strings.TrimPrefix(sec.Reveal(), secretPrefix))
	}
	// A static header value is often a credential (Authorization, X-Api-Key); an echoing
	// receiver must not be able to put it into our logs.
	for _, h := range c.headers {
		if h.tmpl == nil {
			hidden = append(hidden, h.value)
		}
	}
	s.hidden = sortHidden(hidden)
	return s, nil
}

// newTransport returns the sink's own transport, so that keep-alive connections to the
// endpoint are pooled per sink and sized for its concurrency; with base set, base's.
//
// Deliveries call its RoundTrip, not an http.Client's Do: the client's work around the
// exchange was a twentieth of a burst delivery's CPU (docs/performance.md, seventh round)
// and none of it is wanted — a redirect is a failure (Standard Webhooks; following it could
// also carry a signed body to a host the operator never configured), there are no cookies,
// and the timeout is the attempt's context. What the client did that is wanted, deliver
// does itself: Basic credentials from the URL's user info, and naming the URL in errors.
func newTransport(base *http.Client, maxInFlight int) http.RoundTripper {
	if base != nil {
		if base.Transport != nil {
			return base.Transport
		}
		return http.DefaultTransport
	}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t := dt.Clone()
		t.MaxIdleConnsPerHost = maxInFlight
		return t
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: maxInFlight,
		ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second}
}

// Name returns the sink's name from the configuration.
func (s *Sink) Name() string { return s.name }

// MaxInFlight is how many deliveries the dispatcher may run at once on this sink.
func (s *Sink) MaxInFlight() int { return s.c.cfg.MaxInFlight }

// Close releases idle keep-alive connections.
func (s *Sink) Close() error {
	if c, ok := s.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// Deliver POSTs one event. The webhook-timestamp and signature are made for this attempt;
// the webhook-id is the event id, the same on every attempt. Failures are classified:
// redirects, 408, other 5xx and transport errors are retryable; 429/502/503/504 wait for
// Retry-After when given; 410 and other 4xx are permanent, and so is a template that cannot
// render the event.
func (s *Sink) Deliver(ctx context.Context, d bridge.Delivery) error {
	if err := s.deliver(ctx, d.Event, d.Shared); err != nil {
		return &redactedError{err: err, ep: &s.c.endpoint, hidden: s.hidden}
	}
	return nil
}

func (s *Sink) deliver(ctx context.Context, e bridge.Event, shared *bridge.Shared) error {
	ep := s.c.endpoint.display
	if e.ID == "" || strings.Contains(e.ID, ".") {
		// Standard Webhooks: the id is part of the signed content, delimited by '.'.
		return bridge.Permanent(fmt.Errorf("webhook %s: event id %q cannot be a webhook-id (empty, or contains '.')", ep, e.ID))
	}
	body, headers, err := s.render(e, shared)
	if err != nil {
		// The same event renders the same way every time: retrying cannot help.
		return bridge.Permanent(fmt.Errorf("webhook %s: %s: %w", ep, e.Type, err))
	}
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("webhook %s: waiting for the rate limit: %w", ep, err)
		}
	}
	parent := ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel() // after the answer's body is read: the timeout covers it
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.c.endpoint.url, bytes.NewReader(body))
	if err != nil {
		return bridge.Permanent(fmt.Errorf("webhook %s: %w", ep, err))
	}
	// The fixed headers go in under their canonical names, their values in one array and
	// the map sized once: Header.Set's canonicalizing and one allocation per value were a
	// tenth of a delivery's allocations.
	ts := time.Now().Unix()
	vals := [5]string{s.ua, s.c.cfg.ContentType, e.ID, strconv.FormatInt(ts, 10)}
	n := 4
	if s.sign != nil {
		vals[4], n = s.sign.sign(e.ID, ts, body), 5
	}
	keys := [5]string{"User-Agent", "Content-Type", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}
	all := vals[:n:n]
	req.Header = make(http.Header, n+len(headers))
	req.Header[keys[0]] = all[0:1:1]
	for _, h := range headers { // after User-Agent, which they may replace
		req.Header.Set(h[0], h[1])
	}
	for i := 1; i < n; i++ {
		req.Header[keys[i]] = all[i : i+1 : i+1]
	}
	if s.c.endpoint.basic != "" && req.Header.Get("Authorization") == "" {
		req.Header["Authorization"] = []string{s.c.endpoint.basic}
	}

	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		// Named as http.Client names it, by the URL that errors may show.
		err = &url.Error{Op: "Post", URL: ep, Err: err}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && parent.Err() == nil {
			return fmt.Errorf("webhook %s: timed out after %s: %w", ep, s.c.cfg.Timeout, err)
		}
		return fmt.Errorf("webhook: %w", err)
	}
	var respBody []byte
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// A success's body is not used: drain it (so the connection is reused) without
		// keeping it. io.Discard reads into a pooled buffer, io.ReadAll allocates one per
		// delivery even for an empty body.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	} else {
		respBody, _ = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	}
	resp.Body.Close()
	return s.classify(resp, respBody)
}

// render produces the body and the configured headers for e. Without a body template the
// body is the envelope, which is the same for every target: it comes from shared, encoded
// once for all of them (and must not be modified). A template is this sink's own.
func (s *Sink) render(e bridge.Event, shared *bridge.Shared) ([]byte, [][2]string, error) {
	var env bridge.Envelope
	if s.c.body != nil || s.hasHeaderTemplates() {
		env = bridge.NewEnvelope(e)
	}
	var body []byte
	var err error
	if s.c.body != nil {
		if body, err = execute(s.c.body, env); err != nil {
			return nil, nil, fmt.Errorf("body_template: %w", err)
		}
		if s.c.jsonBody && !json.Valid(body) {
			return nil, nil, errors.New("body_template produced a body that is not JSON (insert values with the json function)")
		}
	} else if body, err = shared.Envelope(e); err != nil {
		return nil, nil, fmt.Errorf("encoding the envelope: %w", err)
	}
	headers := make([][2]string, 0, len(s.c.headers))
	for _, h := range s.c.headers {
		v := h.value
		if h.tmpl != nil {
			out, err := execute(h.tmpl, env)
			if err != nil {
				return nil, nil, fmt.Errorf("headers.%s: %w", h.name, err)
			}
			if v = string(out); !validHeaderValue(v) {
				return nil, nil, fmt.Errorf("headers.%s: the template rendered control characters", h.name)
			}
		}
		headers = append(headers, [2]string{h.name, v})
	}
	return body, headers, nil
}

func (s *Sink) hasHeaderTemplates() bool {
	for _, h := range s.c.headers {
		if h.tmpl != nil {
			return true
		}
	}
	return false
}
