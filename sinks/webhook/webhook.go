// Package webhook is the sink that POSTs events to an HTTP endpoint as Standard Webhooks
// (https://www.standardwebhooks.com): the envelope of DESIGN §4 (or a body rendered from a
// template), signed with HMAC-SHA256 under every configured secret, with the event id as the
// receiver's idempotency key. Status codes are mapped to the bridge's failure kinds, so the
// dispatcher retries, waits or dead-letters as the receiver asked.
package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
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
	// Client, if set, lends its transport, and deliveries go through it with net/http (a
	// test's TLS server client, or a transport that answers in memory for a benchmark);
	// nothing else of it is used: the configured timeout applies and redirects are never
	// followed. Without it the sink has its own HTTP/1.1 client (see fastClient), or, for
	// an endpoint reached through a proxy, a net/http transport of its own.
	Client *http.Client
	// TLSConfig, if set, replaces the system's roots and TLS settings for the sink's own
	// client (tests: a TLS test server's certificate). Verification stays on.
	TLSConfig *tls.Config
	// Observe, if set, is told of every attempt's HTTP exchange once it has ended, with the
	// answer's body also after a success (send-test shows it): the exchange is the one the
	// daemon makes, through the same client, unlike one lent by Client.
	Observe func(Exchange)
}

// Exchange is one attempt's HTTP exchange, as Options.Observe is told of it. Nothing in it
// shows a secret: Endpoint is the URL's display form, and Err is redacted as Deliver's
// errors are.
type Exchange struct {
	Method   string
	Endpoint string        // scheme://host/path, or scheme://host/… when the path may hold a token
	Status   int           // 0 when no answer came (Err says why)
	Body     []byte        // the answer's body, up to 64 KiB
	Elapsed  time.Duration // from sending the request to the end of the answer
	Err      error         // a transport error: refused, timed out, TLS…
}

// Sink delivers events to one webhook endpoint. It is safe for concurrent use.
type Sink struct {
	name    string
	c       *compiled
	sign    *signer       // nil without secrets
	client  poster        // fastClient, or lentClient for Options.Client
	timeout time.Duration // of a whole attempt: request, answer and its body
	limiter *rate.Limiter // nil: unlimited
	log     *slog.Logger
	ua      string
	hidden  []string    // never shown in errors: secrets, URL parts, header values
	gone    atomic.Bool // the endpoint answered 410 and nothing since succeeded
	observe func(Exchange)
}

var _ bridge.Sink = (*Sink)(nil)

// New builds a sink from a configuration. It returns the same errors Validate does (joined
// config.FieldErrors) and makes no network calls.
func New(name string, cfg Config, opts Options) (*Sink, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	s := &Sink{name: name, c: c, ua: opts.UserAgent, observe: opts.Observe}
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
	s.timeout = c.cfg.Timeout.D()
	u := c.endpoint.parsed
	proxy, err := proxyFor(u)
	switch {
	case opts.Client != nil:
		rt := opts.Client.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		s.client = &lentClient{rt: rt, url: c.endpoint.url}
	case err != nil:
		// Not err itself: it quotes the variable, credentials included.
		return nil, fmt.Errorf("sink %s: HTTPS_PROXY or HTTP_PROXY is not a proxy URL", name)
	case proxy != nil:
		s.client = &lentClient{rt: proxiedTransport(proxy, opts.TLSConfig, c.cfg.MaxInFlight), url: c.endpoint.url}
	default:
		if s.client, err = newFastClient(u, opts.TLSConfig, c.cfg.MaxInFlight, s.timeout); err != nil {
			return nil, fmt.Errorf("sink %s: %w", name, err)
		}
	}
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

// Name returns the sink's name from the configuration.
func (s *Sink) Name() string { return s.name }

// MaxInFlight is how many deliveries the dispatcher may run at once on this sink.
func (s *Sink) MaxInFlight() int { return s.c.cfg.MaxInFlight }

// Close releases idle keep-alive connections.
func (s *Sink) Close() error {
	s.client.closeIdle()
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
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ts := time.Now().Unix()
	r := request{body: body, custom: headers, basic: s.c.endpoint.basic, nfixed: 4,
		fixed: [5]string{s.ua, s.c.cfg.ContentType, e.ID, strconv.FormatInt(ts, 10)}}
	if s.sign != nil {
		r.fixed[4], r.nfixed = s.sign.sign(e.ID, ts, body), 5
	}
	a := answer{keepBody: s.observe != nil}
	var start time.Time
	if s.observe != nil {
		start = time.Now()
	}
	if err = s.client.post(ctx, deadline, &r, &a); err != nil {
		// Named as http.Client names it, by the URL that errors may show.
		err = &url.Error{Op: "Post", URL: ep, Err: err}
	}
	if s.observe != nil {
		x := Exchange{Method: http.MethodPost, Endpoint: ep, Status: a.code, Body: a.body, Elapsed: time.Since(start)}
		if err != nil {
			x.Status, x.Body = 0, nil
			x.Err = &redactedError{err: err, ep: &s.c.endpoint, hidden: s.hidden}
		}
		s.observe(x)
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return fmt.Errorf("webhook %s: timed out after %s: %w", ep, s.c.cfg.Timeout, err)
		}
		return fmt.Errorf("webhook: %w", err)
	}
	return s.classify(&a)
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
