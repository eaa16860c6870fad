package kinetic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"
	"github.com/kdbridge/kdbridge/bridge"
)

// maxRESTBody bounds a REST answer: a page of 1000 large messages fits, a runaway body does not.
const maxRESTBody = 16 << 20

// restClient calls the Discussions REST API (protocol §4) with a bearer token.
type restClient struct {
	base   string // <space>/app/discussions/api/v1
	client *http.Client
	tokens *tokenSource
	retry  retryPolicy
}

// retryPolicy is how often and how patiently a REST call is retried.
type retryPolicy struct {
	initial, max time.Duration
	tries        uint
}

// httpError is a REST answer with an unexpected status.
type httpError struct {
	Status int
	URL    string // without query
	Detail string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("kinetic: GET %s: %d %s (%s)", e.URL, e.Status, http.StatusText(e.Status), e.Detail)
}

// temporary reports whether a status is worth retrying soon.
func temporary(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

// get fetches path (below base) into out. A 401 forces one fresh token and a retry; 5xx,
// 429 and transport errors are retried with backoff; anything else fails at once.
func (r *restClient) get(ctx context.Context, path string, query url.Values, out any) error {
	target := r.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	freshToken := false
	b := &backoff.ExponentialBackOff{
		InitialInterval:     r.retry.initial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         r.retry.max,
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		tok, err := r.tokens.Token(ctx)
		if err != nil {
			if configProblem(err) {
				return struct{}{}, backoff.Permanent(err)
			}
			return struct{}{}, err
		}
		status, err := r.do(ctx, target, tok.AccessToken, out)
		switch {
		case err == nil:
			return struct{}{}, nil
		case status == http.StatusUnauthorized && !freshToken:
			// The token may have expired or been revoked early: one fresh token, at once.
			freshToken = true
			r.tokens.Invalidate(tok.AccessToken)
			return struct{}{}, backoff.RetryAfter(0)
		case status == 0 || temporary(status):
			return struct{}{}, err
		default:
			return struct{}{}, backoff.Permanent(err)
		}
	}, backoff.WithBackOff(b), backoff.WithMaxTries(r.retry.tries), backoff.WithMaxElapsedTime(0))
	var ra *backoff.RetryAfterError
	if errors.As(err, &ra) { // the last try was the fresh-token one
		return &httpError{Status: http.StatusUnauthorized, URL: r.base + path, Detail: "refused a fresh token"}
	}
	return err
}

// do makes one request. status is 0 when there was no answer.
func (r *restClient) do(ctx context.Context, target, token string, out any) (status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		// The URL in a transport error never carries the token (it is a header).
		return 0, fmt.Errorf("kinetic: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRESTBody+1))
	if err != nil {
		return 0, fmt.Errorf("kinetic: reading %s: %w", stripQuery(target), err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, &httpError{Status: resp.StatusCode, URL: stripQuery(target), Detail: errorDetail(body, "server")}
	}
	if len(body) > maxRESTBody {
		return resp.StatusCode, fmt.Errorf("kinetic: %s: answer larger than %d bytes", stripQuery(target), maxRESTBody)
	}
	if fd, ok := out.(fastDecoder); ok && fd.scanJSON(body) {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("kinetic: %s: %w: %w", stripQuery(target), errBadAnswer, err)
	}
	return resp.StatusCode, nil
}

// fastDecoder is an answer with a fast path for its JSON: scanJSON reads body as
// json.Unmarshal would, or reports false (having changed nothing) for encoding/json to
// decide.
type fastDecoder interface {
	scanJSON(body []byte) bool
}

var errBadAnswer = errors.New("unexpected answer")

func stripQuery(u string) string {
	if p, err := url.Parse(u); err == nil {
		p.RawQuery = ""
		return p.String()
	}
	return u
}

// messagesPage is one page of GET /discussions/{id}/messages, newest first.
type messagesPage struct {
	Messages      []json.RawMessage `json:"messages"`
	NextPageToken *string           `json:"nextPageToken"`
}

var messagesPageKeys = []string{"messages", "nextPageToken"}

// scanJSON reads a page in one validating pass (scan.go). encoding/json checked the whole
// answer, then copied each message out of it: 4–5 % of the catch-up's CPU. The messages are
// slices of body, which is the page's own (read for this answer alone) and never changed.
// FuzzMessagesPage holds it to json.Unmarshal.
func (p *messagesPage) scanJSON(body []byte) bool {
	s := newScanner(body)
	var msgs []json.RawMessage
	var token *string
	ok := s.fields(messagesPageKeys, 1, func(k int) bool {
		if k == 1 {
			if s.Peek() == 'n' {
				return s.Literal("null")
			}
			inner, plain, ok := s.Str()
			if !ok || !plain {
				return false
			}
			t := string(inner)
			token = &t
			return true
		}
		if s.Peek() == 'n' {
			return s.Literal("null")
		}
		msgs = []json.RawMessage{}
		return s.Array(func() bool {
			v, ok := s.Value(1)
			msgs = append(msgs, v)
			return ok
		})
	})
	if !ok || !s.End() {
		return false
	}
	p.Messages, p.NextPageToken = msgs, token
	return true
}

// messages fetches one page of a discussion's messages.
func (r *restClient) messages(ctx context.Context, discussion string, limit int, pageToken string) (messagesPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	var p messagesPage
	err := r.get(ctx, "/discussions/"+url.PathEscape(discussion)+"/messages", q, &p)
	return p, err
}

// discussion fetches what kdbridge reads of one discussion (GET /discussions/{id}): its
// title and related items.
func (r *restClient) discussion(ctx context.Context, discussion string) (listedDiscussion, error) {
	var d struct {
		Discussion wireDiscussion `json:"discussion"`
	}
	err := r.get(ctx, "/discussions/"+url.PathEscape(discussion), nil, &d)
	return d.Discussion.listed(), err
}

// listedDiscussion is what discovery reads of a discussion in GET /discussions (§5.1).
type listedDiscussion struct {
	ID         string
	Title      string
	IsArchived bool
	CreatedAt  time.Time            // zero when absent or unreadable
	Related    []bridge.RelatedItem // nil when the answer does not list relatedItems
}

// discussionsPage is one page of GET /discussions.
type discussionsPage struct {
	Discussions   []listedDiscussion
	NextPageToken *string
}

// discussions fetches one page of GET /discussions with the query q (title, type, key,
// archived, limit, pageToken; protocol §4.1).
func (r *restClient) discussions(ctx context.Context, q url.Values) (discussionsPage, error) {
	var p struct {
		Discussions   []wireDiscussion `json:"discussions"`
		NextPageToken *string          `json:"nextPageToken"`
	}
	if err := r.get(ctx, "/discussions", q, &p); err != nil {
		return discussionsPage{}, err
	}
	out := discussionsPage{NextPageToken: p.NextPageToken, Discussions: make([]listedDiscussion, 0, len(p.Discussions))}
	for _, d := range p.Discussions {
		out.Discussions = append(out.Discussions, d.listed())
	}
	return out, nil
}

// wireDiscussion is the part of a Kinetic discussion object (§5.1) that kdbridge reads.
type wireDiscussion struct {
	ID           lenientString   `json:"id"`
	Title        lenientString   `json:"title"`
	IsArchived   bool            `json:"isArchived"`
	CreatedAt    json.RawMessage `json:"createdAt"`
	RelatedItems *[]struct {
		Type lenientString `json:"type"`
		Key  lenientString `json:"key"`
	} `json:"relatedItems"`
}

func (d wireDiscussion) listed() listedDiscussion {
	ld := listedDiscussion{ID: string(d.ID), Title: string(d.Title), IsArchived: d.IsArchived, CreatedAt: parseTime(d.CreatedAt)}
	if d.RelatedItems != nil {
		ld.Related = make([]bridge.RelatedItem, 0, len(*d.RelatedItems))
		for _, ri := range *d.RelatedItems {
			ld.Related = append(ld.Related, bridge.RelatedItem{Type: string(ri.Type), Key: string(ri.Key)})
		}
	}
	return ld
}

// truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
