package kinetic

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/kdbridge/kdbridge/internal/config"
)

// maxTokenBody bounds the token endpoint's answer; a real one is well under 2 KiB.
const maxTokenBody = 1 << 20

// tokenSource gets access tokens from the space's OAuth token endpoint with the
// client_credentials grant (protocol §2.2) and caches each until shortly before it expires.
//
// It is written here rather than taken from golang.org/x/oauth2/clientcredentials for two
// reasons: that package URL-escapes the id and secret inside HTTP Basic auth (RFC 6749
// §2.3.1), which Kinetic's clients never do and which breaks secrets that are user passwords
// with special characters; and a reuse source cannot be told that the server rejected its
// token (a 401, an identify ack-error), which must force one fresh token.
type tokenSource struct {
	endpoint string
	clientID string
	secret   config.Secret
	client   *http.Client

	lock chan struct{} // a mutex that a waiting caller can abandon when its ctx ends
	tok  *oauth2.Token // guarded by lock
	mu   sync.Mutex    // guards user and offset
	user string
	// offset is the space's clock less ours, estimated from the last token (its exp claim
	// less expires_in is when the space issued it); offsetOK says there is an estimate.
	offset   time.Duration
	offsetOK bool

	// Requests to the endpoint by result, for Status.
	ok, refused, failed atomic.Uint64
	// renewAt is when the cached token will be replaced (unix nanoseconds; 0: none yet).
	renewAt atomic.Int64
}

func newTokenSource(space, clientID string, secret config.Secret, client *http.Client) *tokenSource {
	return &tokenSource{
		endpoint: space + "/app/oauth/token?grant_type=client_credentials&response_type=token",
		clientID: clientID,
		secret:   secret,
		client:   client,
		lock:     make(chan struct{}, 1),
	}
}

// tokenError is a failed token request. Refused is true when the endpoint rejected the
// credentials (401 or 403): retrying soon cannot help, only a configuration change can.
type tokenError struct {
	Status  int    // HTTP status; 0 when there was no answer
	Refused bool   // the credentials were rejected
	Detail  string // why, without the secret
	// Foreign: the answer is not a Kinetic token endpoint's (a 404, an HTML page, JSON
	// without access_token): url points somewhere else. Retried slowly, like Refused.
	Foreign bool
}

func (e *tokenError) Error() string {
	if e.Foreign {
		status := ""
		if e.Status != 0 {
			status = fmt.Sprintf("%d %s, ", e.Status, http.StatusText(e.Status))
		}
		return fmt.Sprintf("kinetic: the token endpoint's answer is not Kinetic's (%s%s); check url: it must be the space URL, such as https://acme.kinops.io", status, e.Detail)
	}
	if e.Refused {
		return fmt.Sprintf("kinetic: token request refused: %d %s (%s); check client_id/client_secret", e.Status, http.StatusText(e.Status), e.Detail)
	}
	if e.Status != 0 {
		return fmt.Sprintf("kinetic: token request failed: %d %s (%s)", e.Status, http.StatusText(e.Status), e.Detail)
	}
	return "kinetic: token request failed: " + e.Detail
}

// tokenRefused reports whether err says the credentials were rejected.
func tokenRefused(err error) bool {
	var te *tokenError
	return errors.As(err, &te) && te.Refused
}

// configProblem reports whether err is one that only a configuration change can fix:
// refused credentials, or a url that is not a Kinetic space. Such errors are retried slowly.
func configProblem(err error) bool {
	var te *tokenError
	return errors.As(err, &te) && (te.Refused || te.Foreign)
}

// Token returns a valid token, from the cache or from the endpoint.
func (ts *tokenSource) Token(ctx context.Context) (*oauth2.Token, error) {
	select {
	case ts.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-ts.lock }()
	// Not oauth2.Token.Valid: it keeps a fixed 10 s margin of its own, more than a short
	// lifetime; the expiry already has the early margin taken off.
	if ts.tok != nil && time.Now().Before(ts.tok.Expiry) {
		return ts.tok, nil
	}
	tok, err := ts.fetch(ctx)
	switch {
	case err == nil:
		ts.ok.Add(1)
	case tokenRefused(err):
		ts.refused.Add(1)
	case ctx.Err() == nil: // not our own shutdown
		ts.failed.Add(1)
	}
	if err != nil {
		return nil, err
	}
	ts.tok = tok
	ts.renewAt.Store(tok.Expiry.UnixNano())
	return tok, nil
}

// renewsAt is when the current token will be replaced; zero before the first token.
func (ts *tokenSource) renewsAt() time.Time {
	if n := ts.renewAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// requests counts the requests to the endpoint so far by result (see Status.TokenRequests).
func (ts *tokenSource) requests() map[string]uint64 {
	return map[string]uint64{TokenOK: ts.ok.Load(), TokenRefused: ts.refused.Load(), TokenError: ts.failed.Load()}
}

// Invalidate drops the cached token if it is still access, so that the next Token call gets
// a fresh one. Comparing first keeps concurrent 401s from fetching one token each.
func (ts *tokenSource) Invalidate(access string) {
	ts.lock <- struct{}{}
	defer func() { <-ts.lock }()
	if ts.tok != nil && ts.tok.AccessToken == access {
		ts.tok = nil
	}
}

// Username is the user the last token was issued to ("" before the first token).
func (ts *tokenSource) Username() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.user
}

// earlyExpiry is how long before its expiry a token is replaced: a minute for real lifetimes
// (12 h), a fifth of the lifetime for short ones, so that a short-lived token is still reused.
func earlyExpiry(lifetime time.Duration) time.Duration {
	return min(time.Minute, lifetime/5)
}

func (ts *tokenSource) fetch(ctx context.Context) (*oauth2.Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.endpoint, nil)
	if err != nil {
		return nil, &tokenError{Detail: err.Error()}
	}
	// The grant is in the query string and the body is empty, as Kinetic's own handlers send
	// it; the credentials go in Basic auth unescaped.
	req.SetBasicAuth(ts.clientID, ts.secret.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := ts.client.Do(req)
	if err != nil {
		return nil, &tokenError{Detail: ts.redact(err.Error())}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
	if err != nil {
		return nil, &tokenError{Status: resp.StatusCode, Detail: "reading the answer: " + ts.redact(err.Error())}
	}
	if resp.StatusCode != http.StatusOK {
		te := &tokenError{Status: resp.StatusCode, Detail: ts.redact(errorDetail(body, ts.endpoint))}
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || !kineticError(body):
			// Every space has this endpoint, and answers errors with a JSON object.
			te.Foreign, te.Detail = true, ts.redact(foreignDetail(resp.Header, body, ts.endpoint))
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			te.Refused = true
		}
		return nil, te
	}
	var r struct {
		AccessToken string      `json:"access_token"`
		TokenType   string      `json:"token_type"`
		ExpiresIn   json.Number `json:"expires_in"`
		Username    string      `json:"username"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" {
		return nil, &tokenError{Status: resp.StatusCode, Foreign: true,
			Detail: ts.redact(foreignDetail(resp.Header, body, ts.endpoint)) + ": no access_token"}
	}
	lifetime := 10 * time.Minute // no expires_in: assume little, a 401 renews it anyway
	if secs, err := r.ExpiresIn.Float64(); err == nil && secs > 0 {
		lifetime = time.Duration(secs * float64(time.Second))
	}
	tok := &oauth2.Token{
		AccessToken: r.AccessToken,
		TokenType:   "Bearer",
		Expiry:      time.Now().Add(lifetime - earlyExpiry(lifetime)),
	}
	claims := jwtClaims(r.AccessToken)
	user := claims.Username
	if user == "" {
		user = r.Username // an opaque token: the answer's username field, as Kinetic's carries
	}
	tok = tok.WithExtra(map[string]any{"username": user})
	ts.mu.Lock()
	ts.user = user
	if secs, err := r.ExpiresIn.Float64(); err == nil && secs > 0 && claims.Exp > 0 {
		issued := time.Unix(claims.Exp, 0).Add(-time.Duration(secs * float64(time.Second)))
		ts.offset, ts.offsetOK = time.Until(issued), true
	}
	ts.mu.Unlock()
	return tok, nil
}

// clockOffset returns the space's clock less ours, to about a second (the token's times are
// whole seconds), and whether it is known.
func (ts *tokenSource) clockOffset() (time.Duration, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.offset, ts.offsetOK
}

// tokenClaims are the claims kdbridge reads from an access token.
type tokenClaims struct {
	Username string `json:"username"`
	Exp      int64  `json:"exp"`
}

// jwtClaims returns the claims of a JWT access token (protocol §2.2: Kinetic's tokens are
// HS256 JWTs whose claims include username and exp), zero if the token is not a JWT. The
// signature is not checked: the token comes straight from the space's token endpoint over
// the connection kdbridge opened, and the claims only tell which user kdbridge acts as (its
// own messages are not mirrored back) and the space's clock.
func jwtClaims(token string) tokenClaims {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenClaims{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return tokenClaims{}
	}
	var c tokenClaims
	if json.Unmarshal(raw, &c) != nil {
		return tokenClaims{}
	}
	c.Username = strings.TrimSpace(c.Username)
	return c
}

// jwtUsername returns the username claim of a JWT access token ("" if none).
func jwtUsername(token string) string { return jwtClaims(token).Username }

// redact removes the secret from text that may quote a request.
func (ts *tokenSource) redact(s string) string {
	return config.Redact(s, ts.secret.Reveal())
}

// kineticError reports whether an error answer looks like Kinetic's: a JSON object with an
// error or message (protocol §2.2: {"error","errorKey"}), whatever its content type says.
func kineticError(body []byte) bool {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	return json.Unmarshal(body, &e) == nil && (e.Error != "" || e.Message != "")
}

// foreignDetail says what came back instead of a Kinetic answer: the content type and the
// start of the body (an HTML page's title is in there).
func foreignDetail(h http.Header, body []byte, url string) string {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "no content type"
	}
	b := truncate(strings.Join(strings.Fields(string(body)), " "), 120)
	if b == "" {
		return "from " + url + ": " + ct + ", empty body"
	}
	return "from " + url + ": " + ct + ": " + b
}

// errorDetail summarises an error answer: Kinetic's {"error","errorKey"} or {"message"}, or
// the start of the body.
func errorDetail(body []byte, url string) string {
	var e struct {
		Error    string `json:"error"`
		Message  string `json:"message"`
		ErrorKey string `json:"errorKey"`
	}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.Error != "":
			return "from " + url + ": " + e.Error
		case e.Message != "":
			return "from " + url + ": " + e.Message
		}
	}
	s := truncate(strings.TrimSpace(string(body)), 200)
	if s == "" {
		return "from " + url
	}
	return "from " + url + ": " + s
}
