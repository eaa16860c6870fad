package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// verify checks a request as a Standard Webhooks receiver does. It is written from the
// specification (spec/standard-webhooks.md, "Verifying webhook authenticity"), not from the
// sink, so that the sink's signing is checked against the spec rather than against itself:
// key = base64 of the part after "whsec_"; signed content = "{id}.{timestamp}.{body}";
// header = space-separated "v1,<base64 HMAC-SHA256>"; timestamp within 5 minutes.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, stamp, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || stamp == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	sec, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp outside tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + stamp + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, enc, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// The verifier itself must agree with the spec's published example.
func TestVerifierKnownAnswer(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	now := time.Unix(1614265330, 0)
	if err := verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, []byte(`{"test": 2432232314}`), now); err != nil {
		t.Fatalf("reference vector: %v", err)
	}
	if err := verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, []byte(`{"test": 2432232315}`), now); err == nil {
		t.Fatal("reference vector with a changed body verified")
	}
}

func TestSignatureRotation(t *testing.T) {
	oldKey, newKey, stranger := newSecret(t, 24), newSecret(t, 64), newSecret(t, 32)
	srv, got := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL + "/hook", Secret: secrets(oldKey, newKey)}, webhook.Options{})
	e := messageEvent()
	e.Time = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // the attempt, not the event, is timestamped
	if err := deliver(t, s, e); err != nil {
		t.Fatal(err)
	}
	r := next(t, got)
	now := time.Now()

	if n := len(strings.Fields(r.Header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("webhook-signature has %d entries, want one per secret: %q", n, r.Header.Get("webhook-signature"))
	}
	for name, key := range map[string]string{"old": oldKey, "new": newKey} {
		if err := verify(key, r.Header, r.Body, now); err != nil {
			t.Errorf("%s secret alone does not verify: %v", name, err)
		}
	}
	if err := verify(stranger, r.Header, r.Body, now); err == nil {
		t.Error("an unrelated secret verified")
	}

	tampered := bytes.Replace(r.Body, []byte("down"), []byte("up!!"), 1)
	if bytes.Equal(tampered, r.Body) {
		t.Fatal("test did not tamper")
	}
	if err := verify(oldKey, r.Header, tampered, now); err == nil {
		t.Error("a tampered body verified")
	}
	h := r.Header.Clone()
	h.Set("webhook-id", "evt_other")
	if err := verify(oldKey, h, r.Body, now); err == nil {
		t.Error("a changed webhook-id verified")
	}
	h = r.Header.Clone()
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10))
	if err := verify(oldKey, h, r.Body, now); err == nil {
		t.Error("a changed webhook-timestamp verified")
	}
}

func TestNoSecretNoSignature(t *testing.T) {
	srv, got := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
	r := next(t, got)
	if v, ok := r.Header["Webhook-Signature"]; ok {
		t.Errorf("webhook-signature sent without a secret: %q", v)
	}
	if r.Header.Get("webhook-id") == "" || r.Header.Get("webhook-timestamp") == "" {
		t.Error("webhook-id and webhook-timestamp are sent with or without a secret")
	}
}

func TestHeadersAndBody(t *testing.T) {
	key := newSecret(t, 32)
	srv, got := receiver(t, nil)
	cfg := webhook.Config{
		URL:    srv.URL + "/in?tenant=acme",
		Secret: secrets(key),
		Headers: map[string]string{
			"X-Tenant": "acme",
			"X-Event":  "{{.Type}}/{{.Data.Source}}",
		},
	}
	s := newSink(t, cfg, webhook.Options{UserAgent: "kdbridge/1.2.3"})
	e := messageEvent()
	for attempt := range 2 {
		if err := deliver(t, s, e); err != nil {
			t.Fatal(err)
		}
		r := next(t, got)
		now := time.Now()
		want := map[string]string{
			"webhook-id":   e.ID,
			"content-type": "application/json",
			"user-agent":   "kdbridge/1.2.3",
			"x-tenant":     "acme",
			"x-event":      "message.created/acme",
		}
		for k, v := range want {
			if g := r.Header.Get(k); g != v {
				t.Errorf("attempt %d: header %s = %q, want %q", attempt, k, g, v)
			}
		}
		ts, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if err != nil || now.Unix()-ts > 5 || ts > now.Unix() {
			t.Errorf("webhook-timestamp %q is not the time of this attempt", r.Header.Get("webhook-timestamp"))
		}
		if r.Method != http.MethodPost || r.URL != "/in?tenant=acme" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		if !bytes.Equal(r.Body, mustEnvelope(t, e)) {
			t.Errorf("body is not the exact envelope:\n%s\n%s", r.Body, mustEnvelope(t, e))
		}
		if err := verify(key, r.Header, r.Body, now); err != nil {
			t.Error(err)
		}
	}
}

// A configured user-agent header replaces kdbridge's own; each header is sent once.
func TestConfiguredUserAgent(t *testing.T) {
	srv, got := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL, Headers: map[string]string{"user-agent": "acme-relay/2"}}, webhook.Options{UserAgent: "kdbridge/1.2.3"})
	if err := deliver(t, s, messageEvent()); err != nil {
		t.Fatal(err)
	}
	r := next(t, got)
	if ua := r.Header.Values("User-Agent"); len(ua) != 1 || ua[0] != "acme-relay/2" {
		t.Fatalf("user-agent %q, want the configured one only", ua)
	}
	for _, k := range []string{"Content-Type", "Webhook-Id", "Webhook-Timestamp"} {
		if n := len(r.Header.Values(k)); n != 1 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
}

func TestBadEventIDIsPermanent(t *testing.T) {
	srv, got := receiver(t, nil)
	s := newSink(t, webhook.Config{URL: srv.URL}, webhook.Options{})
	for _, id := range []string{"", "evt.with.dots"} {
		e := messageEvent()
		e.ID = id
		if err := deliver(t, s, e); !isPermanent(err) {
			t.Errorf("id %q: err = %v, want permanent", id, err)
		}
	}
	select {
	case r := <-got:
		t.Errorf("a request was sent for an unusable id: %v", r.Header)
	default:
	}
}
