package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

func isPermanent(err error) bool { return bridge.IsPermanent(err) }

func TestStatusClasses(t *testing.T) {
	type want int
	const (
		ok want = iota
		retry
		retryAfter
		permanent
	)
	inAnHour := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       want
		wait       time.Duration // for retryAfter; HTTP-dates are checked within a few seconds
	}{
		{"200", 200, "", ok, 0},
		{"202", 202, "", ok, 0},
		{"204", 204, "", ok, 0},
		{"301 is a failure", 301, "", retry, 0},
		{"308 is a failure", 308, "", retry, 0},
		{"400", 400, "", permanent, 0},
		{"401", 401, "", permanent, 0},
		{"404", 404, "", permanent, 0},
		{"413", 413, "", permanent, 0},
		{"422", 422, "", permanent, 0},
		{"408 is transient", 408, "", retry, 0},
		{"410 gone", 410, "", permanent, 0},
		{"410 ignores Retry-After", 410, "5", permanent, 0},
		{"429 without Retry-After", 429, "", retry, 0},
		{"429 Retry-After seconds", 429, "7", retryAfter, 7 * time.Second},
		{"429 Retry-After zero", 429, "0", retryAfter, 0},
		{"503 Retry-After date", 503, inAnHour, retryAfter, time.Hour},
		{"503 Retry-After date in the past", 503, "Wed, 21 Oct 2015 07:28:00 GMT", retryAfter, 0},
		{"503 Retry-After garbage", 503, "soon", retry, 0},
		{"502 Retry-After", 502, "3", retryAfter, 3 * time.Second},
		{"504 Retry-After", 504, "4", retryAfter, 4 * time.Second},
		{"500 ignores Retry-After", 500, "9", retry, 0},
		{"501", 501, "", retry, 0},
		{"599", 599, "", retry, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status >= 300 && tt.status < 400 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				w.Write([]byte("reason from the receiver"))
			})
			s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
			err := deliver(t, s, messageEvent())
			if tt.want == ok {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("err = nil, want a failure")
			}
			var se *webhook.StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Fatalf("err = %v, want a StatusError with %d", err, tt.status)
			}
			if !strings.Contains(err.Error(), "reason from the receiver") {
				t.Errorf("error does not quote the response: %v", err)
			}
			wait, hasWait := bridge.RetryAfterOf(err)
			switch tt.want {
			case retry:
				if isPermanent(err) || hasWait {
					t.Errorf("err = %v, want plain retryable", err)
				}
			case permanent:
				if !isPermanent(err) || hasWait {
					t.Errorf("err = %v, want permanent", err)
				}
			case retryAfter:
				if isPermanent(err) || !hasWait {
					t.Fatalf("err = %v, want retry-after", err)
				}
				lo := max(tt.wait-5*time.Second, 0) // an HTTP-date has whole seconds
				if wait < lo || wait > tt.wait {
					t.Errorf("retry after %s, want about %s", wait, tt.wait)
				}
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	target, targetGot := receiver(t, nil)
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/moved", http.StatusTemporaryRedirect)
	})
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	err := deliver(t, s, messageEvent())
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusTemporaryRedirect || isPermanent(err) {
		t.Fatalf("err = %v, want a retryable 307", err)
	}
	if se.Location != target.URL+"/moved" {
		t.Errorf("Location = %q, want %q", se.Location, target.URL+"/moved")
	}
	next(t, got)
	// The sink returned after its one request; a followed redirect would have been made
	// before Deliver returned, so the target has had every chance to see it.
	select {
	case r := <-targetGot:
		t.Fatalf("redirect was followed: %s %s", r.Method, r.URL)
	default:
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	s := newSink(t, webhook.Config{URL: srv.URL, Timeout: config.Duration(50 * time.Millisecond)}, webhook.Options{})
	err := deliver(t, s, messageEvent())
	if err == nil || isPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if _, ok := bridge.RetryAfterOf(err); ok {
		t.Errorf("a timeout asks for no particular wait: %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms") {
		t.Errorf("err = %v, want a timeout", err)
	}
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newSink(t, webhook.Config{URL: "http://" + addr + "/hook"}, webhook.Options{})
	err = deliver(t, s, messageEvent())
	if err == nil || isPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
}

func TestCancelledContext(t *testing.T) {
	srv, _ := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Deliver(ctx, bridge.Delivery{Event: messageEvent(), Attempt: 1})
	if !errors.Is(err, context.Canceled) || isPermanent(err) {
		t.Fatalf("err = %v, want context.Canceled, retryable", err)
	}
}

func TestGoneIsLoggedOnce(t *testing.T) {
	status := make(chan int, 4)
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(<-status) })
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{Logger: log})
	for _, code := range []int{410, 410, 410} {
		status <- code
		if err := deliver(t, s, messageEvent()); !isPermanent(err) || !bridge.IsGone(err) {
			t.Fatalf("err = %v, want permanent and gone (disables the target)", err)
		}
	}
	if n := strings.Count(logs.String(), "is gone"); n != 1 {
		t.Fatalf("logged %d times that the endpoint is gone, want once:\n%s", n, logs.String())
	}
	status <- 200
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "accepts deliveries again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

func TestRateLimitWaitsUnderContext(t *testing.T) {
	srv, got := receiver(t, nil)
	// One request per 1000 s: the first passes at once, the second cannot within its context.
	s := newSink(t, webhook.Config{URL: srv.URL, Rate: 0.001}, webhook.Options{})
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
	next(t, got)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Deliver(ctx, bridge.Delivery{Event: messageEvent(), Attempt: 1})
	if err == nil || isPermanent(err) {
		t.Fatalf("err = %v, want a retryable rate-limit wait failure", err)
	}
	select {
	case r := <-got:
		t.Fatalf("a request beyond the rate was sent: %v", r.Header)
	default:
	}
}

func TestMaxInFlight(t *testing.T) {
	s := newSink(t, webhook.Config{URL: "http://127.0.0.1:1/"}, webhook.Options{})
	if got := s.MaxInFlight(); got != webhook.DefaultMaxInFlight {
		t.Errorf("default MaxInFlight = %d, want %d", got, webhook.DefaultMaxInFlight)
	}
	s = newSink(t, webhook.Config{URL: "http://127.0.0.1:1/", MaxInFlight: 3}, webhook.Options{})
	if got := s.MaxInFlight(); got != 3 {
		t.Errorf("MaxInFlight = %d, want 3", got)
	}
	if s.Name() != "hook" {
		t.Errorf("Name = %q", s.Name())
	}
}

func TestLargeResponseBodyIsCapped(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write([]byte(big))
	})
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	err := deliver(t, s, messageEvent())
	var se *webhook.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	if len(se.Body) > 256 {
		t.Errorf("error keeps %d bytes of the body, want about 200", len(se.Body))
	}
}

func TestTLSIsVerified(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// The test server's certificate is self-signed: the sink's own client must refuse it.
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	if err := deliver(t, s, messageEvent()); err == nil || isPermanent(err) {
		t.Fatalf("err = %v, want a retryable certificate failure", err)
	}
	// TLS settings that trust it (Options.TLSConfig) are used by the sink's own client.
	trusting := srv.Client().Transport.(*http.Transport).TLSClientConfig
	s = newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{TLSConfig: trusting})
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
	// So is a lent client (Options.Client), with its own.
	s = newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{Client: srv.Client()})
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
}

// The URL's user info goes as Basic credentials, as net/http's client would send it, unless
// a configured header gives Authorization.
func TestURLUserInfoIsSentAsBasicAuth(t *testing.T) {
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		name, url string
		headers   map[string]string
		want      string
	}{
		{"user and password", "http://alice:s3cret@" + host + "/hook", nil, "Basic YWxpY2U6czNjcmV0"},
		{"user alone", "http://alice@" + host + "/hook", nil, "Basic YWxpY2U6"},
		{"a configured header wins", "http://alice:s3cret@" + host + "/hook", map[string]string{"Authorization": "Bearer tok"}, "Bearer tok"},
		{"no user info", srv.URL + "/hook", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, webhook.Config{URL: tt.url, Headers: tt.headers}, webhook.Options{})
			if err := deliver(t, s, messageEvent()); err != nil {
				t.Fatal(err)
			}
			r := next(t, got)
			if a := r.Header.Values("Authorization"); len(a) > 1 || r.Header.Get("Authorization") != tt.want {
				t.Errorf("Authorization = %q, want %q", a, tt.want)
			}
		})
	}
}
