package webhook_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// chain lists err and every error it wraps.
func chain(err error) []error {
	if err == nil {
		return nil
	}
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, chain(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, chain(e)...)
		}
	}
	return out
}

// TestNoSecretInErrorsOrLogs fails deliveries in every way it can, against a receiver that
// echoes everything it got (and the secret itself), and checks that no error in any chain
// and no log line shows a secret, a credential from the URL or a header value.
func TestNoSecretInErrorsOrLogs(t *testing.T) {
	secret1, secret2 := newSecret(t, 32), newSecret(t, 48)
	const (
		queryToken  = "QUERYTOKEN0123456789"
		password    = "pa55w0rd-xyz"
		headerToken = "HEADERSECRET999"
		pathToken   = "PATHTOKENabcdefghijklmnop"
	)
	forbidden := []string{secret1, secret2, strings.TrimPrefix(secret1, "whsec_"), strings.TrimPrefix(secret2, "whsec_"),
		queryToken, password, headerToken, pathToken,
		// A secret cut short is still a leak.
		secret1[:len("whsec_")+6], secret2[:len("whsec_")+6]}

	modes := make(chan string, 16)
	echo := func(w http.ResponseWriter, r *http.Request) {
		everything := fmt.Sprintf("url=%s path=%s auth=%s key=%s sig=%s leaked=%s,%s", r.URL.String(), r.URL.Path,
			r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"), r.Header.Get("webhook-signature"), secret1, secret2)
		switch <-modes {
		case "500":
			w.WriteHeader(500)
		case "400":
			w.WriteHeader(400)
		case "410":
			w.WriteHeader(410)
		case "503":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
		case "redirect":
			w.Header().Set("Location", "https://elsewhere.example/x?token="+queryToken)
			w.WriteHeader(302)
		case "redirect-path": // the URL's path is secret only when it came from url_file
			w.Header().Set("Location", "/api/webhooks/1/"+pathToken+"/v2?token="+queryToken)
			w.WriteHeader(308)
		case "hang":
			<-r.Context().Done()
			return
		}
		w.Write([]byte(everything))
	}
	srv, _ := receiver(t, echo)

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	host := strings.TrimPrefix(srv.URL, "http://")
	rawURL := "http://alice:" + password + "@" + host + "/hook?token=" + queryToken
	cfg := webhook.Config{
		URL: rawURL, Secret: secrets(secret1, secret2),
		Headers: map[string]string{"X-Api-Key": headerToken},
		Timeout: config.Duration(200 * time.Millisecond),
	}
	s := newSink(t, cfg, webhook.Options{Logger: log})
	// base64("alice:"), the start of the Basic credential the client derives from the URL.
	forbidden = append(forbidden, "YWxpY2U6")

	var errs []error
	for _, mode := range []string{"500", "400", "410", "410", "503", "redirect", "hang"} {
		modes <- mode
		err := deliver(t, s, messageEvent())
		if err == nil {
			t.Fatalf("%s: delivery succeeded", mode)
		}
		errs = append(errs, err)
	}

	// The same secrets with the URL in a file, so its path is secret too.
	urlFile := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(urlFile, []byte(srv.URL+"/api/webhooks/1/"+pathToken+"?token="+queryToken), 0o600); err != nil {
		t.Fatal(err)
	}
	fileSink := newSink(t, webhook.Config{URLFile: urlFile, Secret: secrets(secret1, secret2)}, webhook.Options{Logger: log})
	for _, mode := range []string{"500", "410", "redirect", "redirect-path"} {
		modes <- mode
		errs = append(errs, deliver(t, fileSink, messageEvent()))
	}

	// Nobody listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg.URL = "http://alice:" + password + "@" + closed + "/hook?token=" + queryToken
	deadSink := newSink(t, cfg, webhook.Options{Logger: log})
	errs = append(errs, deliver(t, deadSink, messageEvent()))

	for _, err := range errs {
		if err == nil {
			t.Fatal("a failing delivery returned nil")
		}
		for _, e := range chain(err) {
			for _, f := range forbidden {
				if strings.Contains(e.Error(), f) {
					t.Errorf("error (%T) shows %q: %v", e, f, e)
				}
			}
		}
		var se *webhook.StatusError
		if errors.As(err, &se) && se.URL != "http://"+host+"/hook" && se.URL != "http://"+host+"/…" {
			t.Errorf("StatusError.URL = %q, want scheme://host/path", se.URL)
		}
	}
	for _, f := range forbidden {
		if strings.Contains(logs.String(), f) {
			t.Errorf("logs show %q:\n%s", f, logs.String())
		}
	}
	// Useful text survives the redaction.
	if !strings.Contains(errs[0].Error(), "http://"+host+"/hook: HTTP 500") {
		t.Errorf("error does not say where and what: %v", errs[0])
	}
	if !strings.Contains(logs.String(), "http://"+host+"/hook") {
		t.Errorf("logs do not name the endpoint:\n%s", logs.String())
	}
}
