// Package sinkprobe sends one clearly marked test event through a configured sink — the
// real delivery path: envelope, templates, signing, Slack formatting — and records what
// the far side answered to each HTTP request, so that `kdbridge send-test` can show a new
// user whether a sink works before any Kinetic message flows.
package sinkprobe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// Marker names the test event wherever it shows: the discussion's title, its id and the
// message's author and text all carry it, so nobody takes it for a real message.
const Marker = "kdbridge send-test"

// BodyLimit is how much of each answer's body is kept.
const BodyLimit = 512

// Event returns a message.created event that says it is a test, with fresh ids (so that a
// receiver's de-duplication by webhook-id never swallows a second test) and the given time.
func Event(source string, now time.Time) bridge.Event {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	nonce := hex.EncodeToString(b[:])
	if source == "" {
		source = "send-test"
	}
	discussion := "kdbridge-send-test"
	msgID := "send-test-" + nonce
	text := "This is a test message from `" + Marker + "`: if you can read it, this sink works. (" + now.UTC().Format(time.RFC3339) + ")"
	value, _ := json.Marshal(text)
	return bridge.Event{
		ID:     bridge.EventID(source, discussion, msgID, "", bridge.MessageCreated),
		Type:   bridge.MessageCreated,
		Source: source,
		Time:   now,
		Discussion: bridge.Discussion{
			ID:    discussion,
			Title: Marker,
		},
		Message: &bridge.Message{
			ID:        msgID,
			VersionID: nonce,
			Kind:      "user",
			Text:      text,
			Content:   []bridge.Token{{Type: "text", Value: value}},
			Author:    bridge.User{Username: "kdbridge-send-test", DisplayName: Marker},
			CreatedAt: now,
			UpdatedAt: now,
		},
	}
}

// Answer is one HTTP exchange the sink made and what came back.
type Answer struct {
	Method   string
	Endpoint string        // scheme://host, plus the path when the recorder shows paths
	Status   int           // 0 when no answer came (Err says why)
	Body     string        // the first BodyLimit bytes of the answer's body
	Elapsed  time.Duration // from sending the request to the answer's headers
	Err      error         // a transport error: refused, timed out, TLS…
}

// Recorder is an http.RoundTripper that passes requests to Next (http.DefaultTransport
// when nil) and keeps each answer's status and the start of its body, leaving the body
// intact for the sink to read. It is safe for concurrent use.
type Recorder struct {
	Next http.RoundTripper
	// ShowPath keeps the URL's path in Answer.Endpoint. Leave it false when the path may
	// carry a secret (a webhook URL read from url_file); the query string and user info
	// are never kept.
	ShowPath bool

	mu      sync.Mutex
	answers []Answer
}

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	a := Answer{Method: req.Method, Endpoint: r.endpoint(req.URL)}
	start := time.Now()
	resp, err := next.RoundTrip(req)
	a.Elapsed = time.Since(start)
	if err != nil {
		a.Err = err
		r.add(a)
		return nil, err
	}
	a.Status = resp.StatusCode
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, BodyLimit))
	a.Body = string(head)
	r.add(a)
	resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(head), errReader{readErr}, resp.Body), Closer: resp.Body}
	return resp, nil
}

func (r *Recorder) endpoint(u *url.URL) string {
	e := u.Scheme + "://" + u.Host
	if r.ShowPath {
		e += u.EscapedPath()
	}
	return e
}

// Record keeps an answer that came another way than through RoundTrip: a sink with an
// HTTP client of its own tells of its exchanges (the webhook sink's Options.Observe). Its
// Body is cut to BodyLimit bytes, as RoundTrip keeps it.
func (r *Recorder) Record(a Answer) {
	if len(a.Body) > BodyLimit {
		a.Body = a.Body[:BodyLimit]
	}
	r.add(a)
}

func (r *Recorder) add(a Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers = append(r.answers, a)
}

// CloseIdleConnections closes Next's idle connections, if it keeps any, so that an
// http.Client over the recorder can release them.
func (r *Recorder) CloseIdleConnections() {
	if c, ok := r.Next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Answers returns the exchanges recorded so far, in order.
func (r *Recorder) Answers() []Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Answer(nil), r.answers...)
}

// replayBody gives back the bytes the recorder read, then the rest of the original body.
type replayBody struct {
	io.Reader
	io.Closer
}

// errReader hands on the error that cut the recorder's read short, if any.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}

// Verdict is what the dispatcher would make of the sink's result.
type Verdict int

const (
	Delivered  Verdict = iota // the far side accepted it
	Retry                     // a retryable failure: kdbridge would try again with backoff
	RetryAfter                // the far side asked to wait (429, Retry-After)
	Permanent                 // kdbridge would dead-letter it at once
	Gone                      // 410 Gone: kdbridge would disable the target
)

func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Retry:
		return "failed (kdbridge would retry it with backoff)"
	case RetryAfter:
		return "asked to wait (kdbridge would pause this queue and retry)"
	case Permanent:
		return "refused for good (kdbridge would dead-letter it at once)"
	case Gone:
		return "gone (410: kdbridge would disable the target and dead-letter its deliveries)"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Classify maps a sink's Deliver result to the dispatcher's view of it.
func Classify(err error) Verdict {
	_, after := bridge.RetryAfterOf(err)
	switch {
	case err == nil:
		return Delivered
	case bridge.IsGone(err):
		return Gone
	case bridge.IsPermanent(err):
		return Permanent
	case after:
		return RetryAfter
	}
	return Retry
}

// Result is the outcome of one Send.
type Result struct {
	Event   bridge.Event
	Target  bridge.Target
	Err     error // the sink's error, nil when delivered; never carries a secret (sinks redact)
	Verdict Verdict
	Answers []Answer
}

// Send delivers ev to target through sink once, as the dispatcher's first attempt would,
// and returns what happened with the answers rec recorded (rec must be the transport of
// the sink's HTTP client; nil for a sink without one, such as stdout).
func Send(ctx context.Context, sink bridge.Sink, target bridge.Target, ev bridge.Event, rec *Recorder) Result {
	if target.Sink == "" {
		target.Sink = sink.Name()
	}
	if target.Route == "" {
		target.Route = "send-test"
	}
	err := sink.Deliver(ctx, bridge.Delivery{Event: ev, Target: target, Attempt: 1})
	res := Result{Event: ev, Target: target, Err: err, Verdict: Classify(err)}
	if rec != nil {
		res.Answers = rec.Answers()
	}
	return res
}

// MemoryKV is a throwaway key-value store for a Slack sink's message map, so that a test
// send never touches (nor waits for) the daemon's state.
type MemoryKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Get implements the Slack sink's KV.
func (kv *MemoryKV) Get(_ context.Context, namespace, key string) ([]byte, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[namespace+"\x00"+key]
	return v, ok, nil
}

// Put implements the Slack sink's KV.
func (kv *MemoryKV) Put(_ context.Context, namespace, key string, value []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.m == nil {
		kv.m = map[string][]byte{}
	}
	kv.m[namespace+"\x00"+key] = append([]byte(nil), value...)
	return nil
}
