package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// The raw ceiling: the same path as kdbridge's — token, Topic Hub websocket, identify,
// subscribe, frames in, one HTTP POST per message out — with nothing else in it: no store,
// no fsync, no routing, no retries, no signature, no checkpoints. Each scenario states
// kdbridge as a ratio of what this client reaches on the same machine.

// rawPosters is the number of POSTing goroutines per target, as many as a webhook sink's
// default max_in_flight, so that the ceiling has the concurrency kdbridge has. A discussion
// always goes to the same one, so order holds.
const rawPosters = webhook.DefaultMaxInFlight

const topicPrefix = "discussions/discussion/"

func rawRun(ctx context.Context, spec Spec, rep *SUTReport, ready func()) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = rawPosters * max(1, len(spec.Targets))
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()

	tok, err := rawToken(ctx, client, spec)
	if err != nil {
		return err
	}
	u, err := url.Parse(spec.SimURL)
	if err != nil {
		return err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path += "/app/topics/socket"
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("raw: websocket: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	stopped := context.AfterFunc(ctx, func() { ws.Close() })
	defer stopped()
	defer ws.Close()

	// Posters, one set per target.
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	posters := make([][]*rawQueue, len(spec.Targets))
	for t, target := range spec.Targets {
		for range rawPosters {
			q := newBenchRawQueue()
			posters[t] = append(posters[t], q)
			wg.Go(func() { q.post(ctx, client, target, &ok, &failed) })
		}
	}
	defer func() {
		for _, ps := range posters {
			for _, q := range ps {
				q.close()
			}
		}
		wg.Wait()
		rep.OK, rep.Failed = ok.Load(), failed.Load()
	}()
	enqueue := func(discussion string, bodies ...[]byte) {
		h := fnv.New32a()
		h.Write([]byte(discussion))
		i := int(h.Sum32() % rawPosters)
		for _, ps := range posters {
			ps[i].push(bodies...)
		}
	}

	write := func(action string, payload any, ref int) error {
		b, _ := json.Marshal(map[string]any{"topic": "topichub", "action": action, "payload": payload, "ref": strconv.Itoa(ref)})
		return ws.WriteMessage(websocket.TextMessage, b)
	}
	if err := write("identify", map[string]string{"token": tok}, 1); err != nil {
		return fmt.Errorf("raw: identify: %w", err)
	}
	var f rawFrame
	for {
		if err := rawRead(ws, &f); err != nil {
			return fmt.Errorf("raw: identify: %w", err)
		}
		if f.Ref == "1" {
			break
		}
	}
	if f.Event != "ack-ok" {
		return fmt.Errorf("raw: identify refused: %s", f.Payload)
	}
	ready()
	// Subscribes go out from their own goroutine while this one reads the acks, as a
	// pipelined client would.
	subErr := make(chan error, 1)
	go func() {
		for i, id := range spec.Discussions {
			if err := write("subscribe", map[string]string{"topic": topicPrefix + id}, i+2); err != nil {
				subErr <- err
				return
			}
		}
		subErr <- nil
	}()
	defer func() { ws.Close(); <-subErr }()
	if len(spec.Checkpoints) > 0 {
		wg.Go(func() { rawCatchUp(ctx, client, spec, tok, enqueue) })
	}

	var msg struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		CreatedBy struct {
			Username string `json:"username"`
		} `json:"createdBy"`
	}
	for {
		if err := rawRead(ws, &f); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("raw: read: %w", err)
		}
		if f.Event != "message:created" {
			continue
		}
		d, found := strings.CutPrefix(f.Topic, topicPrefix)
		if !found {
			continue
		}
		msg.Type, msg.CreatedBy.Username = "", ""
		if json.Unmarshal(f.Payload, &msg) != nil || msg.Type == "System" || msg.CreatedBy.Username == spec.ClientID {
			continue // what a route drops: system messages and the bridge's own
		}
		enqueue(d, rawBody(d, f.Payload))
	}
}

type rawFrame struct {
	Topic   string          `json:"topic"`
	Event   string          `json:"event"`
	Ref     string          `json:"ref"`
	Payload json.RawMessage `json:"payload"`
}

func rawRead(ws *websocket.Conn, f *rawFrame) error {
	_, b, err := ws.ReadMessage()
	if err != nil {
		return err
	}
	*f = rawFrame{}
	return json.Unmarshal(b, f)
}

// rawBody is what the raw client POSTs: the message as Kinetic sent it, in an envelope
// of the shape the receiver reads kdbridge's deliveries in.
func rawBody(discussion string, message json.RawMessage) []byte {
	b := make([]byte, 0, len(message)+len(discussion)+80)
	b = append(b, `{"type":"message.created","data":{"discussion":{"id":`...)
	b = strconv.AppendQuote(b, discussion)
	b = append(b, `},"message":`...)
	b = append(b, message...)
	return append(b, "}}"...)
}

func rawToken(ctx context.Context, client *http.Client, spec Spec) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.SimURL+"/app/oauth/token?grant_type=client_credentials&response_type=token", nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(spec.ClientID, spec.ClientSecret)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("raw: token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("raw: token: HTTP %d, %v", resp.StatusCode, err)
	}
	return tok.AccessToken, nil
}

// rawCatchUp pages each discussion's messages (newest first) back to its checkpoint and
// queues what is newer, oldest first — the least a client must do to catch up.
func rawCatchUp(ctx context.Context, client *http.Client, spec Spec, tok string, enqueue func(string, ...[]byte)) {
	ids := make(chan string)
	var wg sync.WaitGroup
	for range rawPosters {
		wg.Go(func() {
			for id := range ids {
				rawCatchUpOne(ctx, client, spec, tok, id, enqueue)
			}
		})
	}
	for _, id := range spec.Discussions {
		select {
		case ids <- id:
		case <-ctx.Done():
		}
	}
	close(ids)
	wg.Wait()
}

func rawCatchUpOne(ctx context.Context, client *http.Client, spec Spec, tok, id string, enqueue func(string, ...[]byte)) {
	cp := spec.Checkpoints[id]
	var fresh [][]byte // newest first
	pageToken := ""
	for ctx.Err() == nil {
		q := url.Values{"limit": {"100"}}
		if pageToken != "" {
			q.Set("pageToken", pageToken)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, spec.SimURL+"/app/discussions/api/v1/discussions/"+id+"/messages?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return
		}
		var page struct {
			Messages []json.RawMessage `json:"messages"`
			Next     *string           `json:"nextPageToken"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return
		}
		reached := false
		for _, raw := range page.Messages {
			var m struct {
				ID        string `json:"id"`
				Type      string `json:"type"`
				CreatedBy struct {
					Username string `json:"username"`
				} `json:"createdBy"`
			}
			if json.Unmarshal(raw, &m) != nil {
				continue
			}
			if m.ID == cp {
				reached = true
				break
			}
			if m.Type != "System" && m.CreatedBy.Username != spec.ClientID {
				fresh = append(fresh, rawBody(id, raw))
			}
		}
		if reached || page.Next == nil || *page.Next == "" {
			break
		}
		pageToken = *page.Next
	}
	slices.Reverse(fresh)
	enqueue(id, fresh...)
}

// rawQueue is one poster's unbounded FIFO: the websocket reader never waits for HTTP.
type rawQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  [][]byte
	closed bool
}

func newBenchRawQueue() *rawQueue {
	q := &rawQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *rawQueue) push(bodies ...[]byte) {
	q.mu.Lock()
	q.items = append(q.items, bodies...)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *rawQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *rawQueue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	b := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return b, true
}

func (q *rawQueue) post(ctx context.Context, client *http.Client, target string, ok, failed *atomic.Int64) {
	for {
		body, more := q.pop()
		if !more {
			return
		}
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 300 {
					ok.Add(1)
					break
				}
			}
			// No retry policy: the ceiling has nothing to wait for but the receiver.
			failed.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}
}
