package webhook_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// The path and query go out as configured, byte for byte: a receiver may route or check a
// signature on them, and its own client would not have "cleaned" them.
func TestPathIsSentAsConfigured(t *testing.T) {
	srv, got := receiver(t, nil)
	var uri string
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { uri = r.RequestURI })
	for _, path := range []string{"/a//b/../c/%2Fd?x=1&y=%20", "/hook", "/"} {
		if err := deliver(t, newSink(t, webhook.Config{URL: srv.URL + path}, webhook.Options{}), messageEvent()); err != nil {
			t.Fatal(err)
		}
		if uri != path {
			t.Errorf("the receiver saw %q, want %q", uri, path)
		}
	}
	_ = got
}

// An answer longer than what the sink reads still says what happened: a success is one, and
// a 503 with Retry-After waits as asked.
func TestLongAnswersAreClassifiedByTheirStatus(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	code := make(chan int, 1)
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(<-code)
		io.WriteString(w, long)
	})
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	code <- http.StatusOK
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatalf("a success with a long body: %v", err)
	}
	code <- http.StatusServiceUnavailable
	err := deliver(t, s, messageEvent())
	if d, ok := bridge.RetryAfterOf(err); !ok || d != 7*time.Second {
		t.Fatalf("err = %v (wait %v, %v), want a wait of 7s", err, d, ok)
	}
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want the 503", err)
	}
	// Short answers keep their text.
	code <- http.StatusBadRequest
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(<-code)
		io.WriteString(w, "missing field: text")
	})
	err = deliver(t, s, messageEvent())
	if !errors.As(err, &se) || se.Response != "missing field: text" || !isPermanent(err) {
		t.Fatalf("err = %v, want a permanent 400 with its text", err)
	}
}

// A kept-alive connection the receiver has closed (its idle timeout is shorter than ours)
// costs the delivery nothing: it goes again on a new connection.
func TestAConnectionClosedWhileIdleIsNotAFailure(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	closed := make(chan struct{}, 4)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	for i := range 3 {
		if err := deliver(t, s, messageEvent()); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		select {
		case <-closed: // the receiver dropped the idle connection the sink keeps
		case <-time.After(5 * time.Second):
			t.Fatal("the receiver never closed the idle connection")
		}
	}
}

// A delivery cancelled while the receiver holds it (a shutdown past its grace period) ends
// at once with the context's error, not at the timeout.
func TestCancelEndsAnExchangeInFlight(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var held atomic.Bool
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if held.Swap(true) {
			return // only the first request is held
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{}) // timeout 15s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Deliver(ctx, bridge.Delivery{Event: messageEvent(), Attempt: 1}) }()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never arrived")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || isPermanent(err) {
			t.Fatalf("err = %v, want context.Canceled, retryable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the delivery did not end when cancelled")
	}
	// The sink still delivers afterwards.
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
}

// HTTP_PROXY is honoured as net/http honours it: a request to an endpoint behind the proxy
// goes to the proxy (which here leads to the loopback receiver), and a loopback endpoint is
// reached directly.
func TestProxyFromTheEnvironment(t *testing.T) {
	srv, got := receiver(t, nil)
	via := make(chan string, 4)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		via <- r.Method + " " + r.RequestURI
		// An absolute-form request, as a client sends plain HTTP through a proxy.
		out, err := http.NewRequest(r.Method, srv.URL+r.URL.Path, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := srv.Client().Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")

	// hook.invalid is never resolved: only the proxy is dialled.
	if err := deliver(t, newSink(t, webhook.Config{URL: "http://hook.invalid/hook"}, webhook.Options{}), messageEvent()); err != nil {
		t.Fatal(err)
	}
	if v := <-via; v != "POST http://hook.invalid/hook" {
		t.Errorf("the proxy saw %q", v)
	}
	if r := next(t, got); r.URL != "/hook" || r.Header.Get("Webhook-Id") == "" {
		t.Errorf("the receiver saw %q, headers %v", r.URL, r.Header)
	}
	if err := deliver(t, newSink(t, webhook.Config{URL: srv.URL + "/direct"}, webhook.Options{}), messageEvent()); err != nil {
		t.Fatal(err)
	}
	if r := next(t, got); r.URL != "/direct" {
		t.Errorf("the receiver saw %q", r.URL)
	}
	select {
	case v := <-via:
		t.Errorf("a loopback endpoint went through the proxy (%q)", v)
	default:
	}

}

// One connection carries every delivery, whatever the answer (with or without a body, a
// success or not): a connection per delivery would cost a handshake each.
func TestConnectionsAreKeptAlive(t *testing.T) {
	var conns atomic.Int64
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {},                                      // 200, empty
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }, // no body at all
		func(w http.ResponseWriter) { io.WriteString(w, `{"ok":true}`) },
		func(w http.ResponseWriter) { http.Error(w, "busy", http.StatusServiceUnavailable) },
	}
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		answers[int(n.Add(1)-1)%len(answers)](w)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	for i := range 40 {
		err := deliver(t, s, messageEvent())
		if (i%len(answers) == 3) != (err != nil) {
			t.Fatalf("delivery %d: err = %v", i, err)
		}
	}
	if c := conns.Load(); c != 1 {
		t.Errorf("40 deliveries took %d connections, want 1", c)
	}
}

// A sink closed while a delivery is in flight keeps no connection once it ends.
func TestCloseDropsConnectionsInUse(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	done := make(chan error, 1)
	go func() { done <- deliver(t, s, messageEvent()) }()
	<-arrived
	s.Close()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open after Close")
	}
}

// An interim 1xx answer before the final one is skipped (RFC 9110 §15.2: a client parses
// them even when it did not ask for one), and the connection stays in step for the next.
func TestInterimAnswersAreSkipped(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for range 2 {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"+
				"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nbusy")
		}
	}()
	s := newSink(t, webhook.Config{URL: "http://" + l.Addr().String() + "/hook"}, webhook.Options{})
	for i := range 2 {
		err := deliver(t, s, messageEvent())
		var se *webhook.StatusError
		if d, ok := bridge.RetryAfterOf(err); !errors.As(err, &se) || se.StatusCode != 503 || se.Response != "busy" || !ok || d != 3*time.Second {
			t.Fatalf("delivery %d: err = %v, want the final 503 with its Retry-After", i, err)
		}
	}
	l.Close()
	<-served
}

// Options.Observe is told of each attempt's exchange, made by the sink's own client: a
// success with its body, a refusal with its body, and a transport failure with an error
// that shows no secret of the URL.
func TestObserveTellsOfEachExchange(t *testing.T) {
	answers := []struct {
		code int
		body string
	}{{http.StatusOK, `{"ok":true}`}, {http.StatusBadRequest, "bad envelope"}}
	var n atomic.Int32
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		a := answers[n.Add(1)-1]
		w.WriteHeader(a.code)
		io.WriteString(w, a.body)
	})
	var seen []webhook.Exchange
	s := newSink(t, webhook.Config{URL: srv.URL + "/in?token=s3cret-token"}, webhook.Options{Observe: func(x webhook.Exchange) { seen = append(seen, x) }})
	for i, a := range answers {
		deliver(t, s, messageEvent())
		if r := next(t, got); r.Header.Get("Accept-Encoding") != "" {
			t.Errorf("exchange %d: sent with Accept-Encoding %q: not the sink's own client", i, r.Header.Get("Accept-Encoding"))
		}
		if len(seen) != i+1 {
			t.Fatalf("after %d deliveries Observe was told of %d exchanges", i+1, len(seen))
		}
		x := seen[i]
		if x.Method != http.MethodPost || x.Endpoint != srv.URL+"/in" || x.Status != a.code || string(x.Body) != a.body || x.Err != nil || x.Elapsed <= 0 {
			t.Errorf("exchange %d: %+v, want POST %s/in answered %d %q", i, x, srv.URL, a.code, a.body)
		}
	}

	srv.Close()
	deliver(t, s, messageEvent())
	if len(seen) != 3 {
		t.Fatalf("Observe was told of %d exchanges, want 3", len(seen))
	}
	if x := seen[2]; x.Err == nil || x.Status != 0 || strings.Contains(x.Err.Error(), "s3cret") {
		t.Errorf("a refused connection: %+v (error %v), want an error without the token", x, x.Err)
	}
}
