package kinetic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	kineticsrc "github.com/kdbridge/kdbridge/sources/kinetic"
)

// httpError is an answer with an unexpected status.
type httpError struct {
	Method string
	Path   string
	Status int
	Detail string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("kinetic sink: %s %s: %d %s%s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Detail)
}

func notFound(err error) bool {
	var h *httpError
	return errors.As(err, &h) && h.Status == http.StatusNotFound
}

// call makes one REST call as the integration user, with one fresh token after a 401, and
// classifies its failure.
func (s *Sink) call(ctx context.Context, sp *space, method, path string, body any) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, bridge.Permanent(err)
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := sp.tokens.Token(ctx)
		if err != nil {
			if kineticsrc.CredentialsRefused(err) {
				return nil, bridge.Permanent(err)
			}
			return nil, err
		}
		status, ans, wait, err := s.do(ctx, sp, method, path, tok, payload)
		switch {
		case err != nil:
			return nil, err // network: retried
		case status >= 200 && status < 300:
			return ans, nil
		case status == http.StatusUnauthorized && attempt == 0:
			sp.tokens.Invalidate(tok) // expired or revoked early: one fresh token, at once
			continue
		}
		herr := &httpError{Method: method, Path: path, Status: status, Detail: detail(ans)}
		switch {
		case status == http.StatusTooManyRequests:
			return nil, bridge.RetryAfter(herr, wait)
		case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusUnauthorized:
			return nil, herr
		default:
			return nil, bridge.Permanent(herr)
		}
	}
}

// retryAfter reads a Retry-After header in seconds; 5s when absent or unreadable.
func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 && n < 3600 {
		return time.Duration(n) * time.Second
	}
	return 5 * time.Second
}

// do makes one request; wait is the Retry-After of the answer.
func (s *Sink) do(ctx context.Context, sp *space, method, path, token string, payload []byte) (status int, ans []byte, wait time.Duration, err error) {
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(callCtx, method, sp.base+path, body)
	if err != nil {
		return 0, nil, 0, bridge.Permanent(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		// The token is a header: a transport error never quotes it; the secret is redacted
		// all the same should a proxy echo a request.
		return 0, nil, 0, fmt.Errorf("kinetic sink: %s %s: %s", method, path, config.Redact(err.Error(), sp.secret, token))
	}
	defer resp.Body.Close()
	ans, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("kinetic sink: %s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, ans, retryAfter(resp.Header.Get("Retry-After")), nil
}

// detail is Kinetic's reason from an error answer ({"error": …} or {"message": …}).
func detail(body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != "" {
			return ": " + truncate(e.Error, 300)
		}
		if e.Message != "" {
			return ": " + truncate(e.Message, 300)
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
