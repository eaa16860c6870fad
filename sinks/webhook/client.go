package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpproxy"
)

// request is one attempt as the sink builds it, for whichever client sends it.
type request struct {
	body []byte
	// fixed are the headers the sink sets, in the order written: User-Agent first, then the
	// configured headers (which may replace it), then these from Content-Type on; nfixed
	// of them are set (Webhook-Signature only with a secret).
	fixed  [5]string
	nfixed int
	custom [][2]string
	basic  string // Authorization for the URL's user info, unless custom sets one
}

var fixedHeaders = [5]string{"User-Agent", "Content-Type", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

// headers sets r's headers through set, in their order: User-Agent, the configured ones
// (which may replace it), the sink's own from Content-Type on, and the URL's Basic
// credentials unless a configured header gave Authorization (has says what is set).
func (r *request) headers(set func(k, v string), has func(k string) bool) {
	set(fixedHeaders[0], r.fixed[0])
	for _, h := range r.custom {
		set(h[0], h[1])
	}
	for i := 1; i < r.nfixed; i++ {
		set(fixedHeaders[i], r.fixed[i])
	}
	if r.basic != "" && !has("Authorization") {
		set("Authorization", r.basic)
	}
}

// answer is what the sink needs of a response.
type answer struct {
	code       int
	retryAfter string
	location   string // the Location header as sent
	body       []byte // up to maxBody of it (a copy) when it was not a success, or keepBody
	keepBody   bool   // set by the caller: keep a success's body too (Options.Observe)
}

// poster sends an attempt and reads the answer. deadline bounds the whole exchange; ctx's
// cancellation ends it early (shutdown).
type poster interface {
	post(ctx context.Context, deadline time.Time, r *request, a *answer) error
	closeIdle()
}

// fastClient is the sink's own HTTP/1.1 client for its one endpoint: fasthttp writes the
// request and reads the answer in the delivering goroutine, with pooled buffers, on a
// connection from the sink's own pool. net/http's transport hands every request to a writer
// and a reader goroutine per connection; that handing over was most of the CPU a delivery
// took (docs/performance.md, tenth round). The client starts no goroutine of its own.
//
// As net/http's would: TLS is verified (against the system's roots, or tlsConfig's),
// redirects are not followed, a connection is kept for idleTimeout, and a request that fails
// on a kept-alive connection the receiver had closed goes again once on a new one. An
// endpoint reached through a proxy goes through net/http instead (proxiedTransport).
type fastClient struct {
	uri       *fasthttp.URI // the endpoint without its user info (sent as Basic by the sink)
	addr      string        // host:port
	dial      func(addr string) (net.Conn, error)
	tlsConfig *tls.Config    // nil: plain HTTP
	idle      chan *keptConn // at most max_in_flight connections wait for the next request
	closed    atomic.Bool    // the sink is closed: connections are no longer kept
}

// idleTimeout is how long a connection is kept without a request (net/http's default).
const idleTimeout = 90 * time.Second

// keptConn is a connection of the pool.
type keptConn struct {
	net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	used  time.Time
	spent bool
}

func newFastClient(u *url.URL, tlsConfig *tls.Config, maxInFlight int, timeout time.Duration) (*fastClient, error) {
	isTLS := u.Scheme == "https"
	plain := *u
	plain.User = nil
	uri := fasthttp.AcquireURI()
	if err := uri.Parse(nil, []byte(plain.String())); err != nil {
		return nil, err
	}
	// The path is sent as configured: a receiver's signature check or routing may depend
	// on its exact spelling.
	uri.DisablePathNormalizing = true
	c := &fastClient{uri: uri, addr: fasthttp.AddMissingPort(u.Host, isTLS), idle: make(chan *keptConn, maxInFlight)}
	if isTLS {
		if tlsConfig == nil {
			c.tlsConfig = &tls.Config{}
		} else {
			c.tlsConfig = tlsConfig.Clone()
		}
		c.tlsConfig.ServerName = u.Hostname()
		c.tlsConfig.NextProtos = []string{"http/1.1"}
	}
	d := &net.Dialer{Timeout: timeout}
	c.dial = func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }
	return c, nil
}

// proxyFor is the proxy net/http's ProxyFromEnvironment would choose for u (nil for
// loopback and NO_PROXY hosts), read from the environment now: the endpoint is fixed.
func proxyFor(u *url.URL) (*url.URL, error) {
	return httpproxy.FromEnvironment().ProxyFunc()(u)
}

// proxiedTransport is a net/http transport for an endpoint reached through proxy: what a
// proxy accepts varies (absolute-form requests for http, CONNECT only to some ports,
// credentials), and net/http's proxy support is the one Go programs are known by.
func proxiedTransport(proxy *url.URL, tlsConfig *tls.Config, maxInFlight int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = func(*http.Request) (*url.URL, error) { return proxy, nil }
	t.MaxIdleConnsPerHost = maxInFlight
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig.Clone()
	}
	return t
}

func closedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (c *fastClient) post(ctx context.Context, deadline time.Time, r *request, a *answer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.uri.CopyTo(req.URI())
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(fasthttp.MethodPost)
	r.headers(req.Header.Set, func(k string) bool { return len(req.Header.Peek(k)) > 0 })
	req.SetBodyRaw(r.body)

	for retried := false; ; retried = true {
		kc, reused, err := c.conn(ctx, deadline)
		if err != nil {
			return c.failure(ctx, err)
		}
		err = c.exchange(ctx, kc, deadline, req, resp)
		if err != nil && !errors.Is(err, fasthttp.ErrBodyTooLarge) {
			kc.Close()
			if reused && !retried && ctx.Err() == nil && time.Now().Before(deadline) && closedConn(err) {
				continue
			}
			return c.failure(ctx, err)
		}
		// An answer longer than maxBody is not read (its connection is closed): its status
		// and headers still say what happened. fasthttp counts a body read to the
		// connection's end (no length, not chunked) as Connection: close.
		if err != nil || kc.spent || resp.ConnectionClose() {
			kc.Close()
		} else {
			c.keep(kc)
		}
		break
	}
	a.code = resp.StatusCode()
	a.retryAfter = string(resp.Header.Peek("Retry-After"))
	a.location = string(resp.Header.Peek("Location"))
	a.body = nil
	if a.keepBody || a.code < 200 || a.code >= 300 {
		a.body = append(a.body, resp.Body()...)
	}
	return nil
}

// exchange writes req on kc and reads the answer into resp, by deadline. A cancellation
// meanwhile (shutdown, once the grace period is over) ends it at once.
func (c *fastClient) exchange(ctx context.Context, kc *keptConn, deadline time.Time, req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := kc.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { kc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			kc.spent = true // its deadline may be the past now: not for another request
		}
	}()
	if err := req.Write(kc.bw); err != nil {
		return err
	}
	if err := kc.bw.Flush(); err != nil {
		return err
	}
	return resp.ReadLimitBody(kc.br, maxBody)
}

// failure is err as the sink reports it: the context's error when the delivery was
// cancelled or its deadline passed, as net/http's transport says.
func (c *fastClient) failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return context.DeadlineExceeded
	}
	return err
}

// conn returns a kept connection that has not been idle too long, or a new one.
func (c *fastClient) conn(ctx context.Context, deadline time.Time) (kc *keptConn, reused bool, err error) {
	if kc := c.takeIdle(); kc != nil {
		return kc, true, nil
	}
	conn, err := c.dial(c.addr)
	if err != nil {
		return nil, false, err
	}
	if c.tlsConfig != nil {
		tc := tls.Client(conn, c.tlsConfig)
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, false, err
		}
		conn = tc
	}
	return &keptConn{Conn: conn, br: bufio.NewReaderSize(conn, 4096), bw: bufio.NewWriterSize(conn, 4096)}, false, nil
}

// takeIdle returns a kept connection that has not been idle for idleTimeout, or nil; the
// others it finds are closed.
func (c *fastClient) takeIdle() *keptConn {
	for {
		select {
		case kc := <-c.idle:
			if time.Since(kc.used) < idleTimeout {
				return kc
			}
			kc.Close()
		default:
			return nil
		}
	}
}

// keep puts kc back for the next request; past max_in_flight kept, or once the sink is
// closed, it is closed.
func (c *fastClient) keep(kc *keptConn) {
	kc.used = time.Now()
	if c.closed.Load() {
		kc.Close()
		return
	}
	select {
	case c.idle <- kc:
	default:
		kc.Close()
	}
}

// closeIdle closes the kept connections, and those in use as their requests end.
func (c *fastClient) closeIdle() {
	c.closed.Store(true)
	for kc := c.takeIdle(); kc != nil; kc = c.takeIdle() {
		kc.Close()
	}
}

// lentClient sends with net/http through a transport: one lent by Options.Client, or
// proxiedTransport.
type lentClient struct {
	rt  http.RoundTripper
	url string
}

func (c *lentClient) post(ctx context.Context, deadline time.Time, r *request, a *answer) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel() // after the answer's body is read: the deadline covers it
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	req.Header = make(http.Header, r.nfixed+len(r.custom)+1)
	r.headers(req.Header.Set, func(k string) bool { return req.Header.Get(k) != "" })
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	a.code = resp.StatusCode
	a.retryAfter = resp.Header.Get("Retry-After")
	a.location = resp.Header.Get("Location")
	a.body = nil
	if a.code >= 200 && a.code < 300 && !a.keepBody {
		// A success's body is not used: drained (so the connection is reused), not kept.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	a.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return nil
}

func (c *lentClient) closeIdle() {
	if ci, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
