package kinetictest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wait bounds every blocking step of a test.
const wait = 5 * time.Second

func newTestServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fetchToken asks the token endpoint as a daemon does and returns the decoded response.
func fetchToken(t testing.TB, s *Server, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/app/oauth/token?grant_type=client_credentials&response_type=token", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

func token(t testing.TB, s *Server) string {
	t.Helper()
	status, body := fetchToken(t, s, "integration-user", "integration-secret")
	if status != http.StatusOK {
		t.Fatalf("token: status %d %v", status, body)
	}
	return body["access_token"].(string)
}

// call makes a Discussions REST call; body is JSON-encoded unless it is a []byte.
func call(t testing.TB, s *Server, tok, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL()+"/app/discussions/api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// callJSON makes a REST call that must answer 200 and decodes the answer into out.
func callJSON(t testing.TB, s *Server, tok, method, path string, body, out any) {
	t.Helper()
	status, raw := call(t, s, tok, method, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, path, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

// wantError checks a REST error: the status and the Kinetic error body.
func wantError(t testing.TB, status int, raw []byte, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d: %s", status, want, raw)
	}
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error body is not JSON: %s", raw)
	}
	if _, ok := e["error"].(string); !ok {
		t.Fatalf("error body without error: %s", raw)
	}
	if _, ok := e["errorKey"].(string); !ok {
		t.Fatalf("error body without errorKey: %s", raw)
	}
}

// frame is a server → client frame as a client decodes it.
type frame struct {
	Topic   string          `json:"topic"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Ref     string          `json:"ref"`
	raw     []byte
}

func (f frame) String() string { return string(f.raw) }

// wsClient is a minimal Topic Hub client over a real loopback websocket.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	ref  int
}

func dial(t testing.TB, s *Server) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.URL(), "http") + "/app/topics/socket"
	d := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	resp.Body.Close()
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { conn.Close() })
	return c
}

// send sends an action on the topichub topic and returns its ref.
func (c *wsClient) send(action string, payload any) string {
	c.t.Helper()
	c.ref++
	ref := itoa(c.ref)
	msg := map[string]any{"topic": "topichub", "action": action, "ref": ref}
	if payload != nil {
		msg["payload"] = payload
	}
	c.sendRaw(mustJSON(msg))
	return ref
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func itoa(n int) string { return string(mustJSON(n)) }

// next reads one frame, failing the test after d.
func (c *wsClient) nextWithin(d time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	typ, raw, err := c.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("frame type %d", typ)
	}
	f := frame{raw: raw}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, nil // raw frames (SendRaw) need not be JSON
	}
	return f, nil
}

func (c *wsClient) next() frame {
	c.t.Helper()
	f, err := c.nextWithin(wait)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// nextEvent reads frames until one with the event arrives (at most 50 frames).
func (c *wsClient) nextEvent(event string) frame {
	c.t.Helper()
	for range 50 {
		if f := c.next(); f.Event == event {
			return f
		}
	}
	c.t.Fatalf("no %s frame within 50 frames", event)
	return frame{}
}

// expectAck reads the next frame and checks it is the ack of ref.
func (c *wsClient) expectAck(ref, event string) frame {
	c.t.Helper()
	f := c.next()
	if f.Event != event || f.Ref != ref {
		c.t.Fatalf("got %s, want %s for ref %s", f, event, ref)
	}
	return f
}

// identify identifies with tok and expects ack-ok.
func (c *wsClient) identify(tok string) {
	c.t.Helper()
	ref := c.send("identify", map[string]string{"token": tok})
	c.expectAck(ref, "ack-ok")
}

// subscribe subscribes and consumes the ack and the presence INIT.
func (c *wsClient) subscribe(id string) {
	c.t.Helper()
	ref := c.send("subscribe", map[string]string{"topic": topicOf(id)})
	c.expectAck(ref, "ack-ok")
	if f := c.next(); f.Event != "presence" {
		c.t.Fatalf("got %s, want presence", f)
	}
}

// expectClosed reads until the connection fails, which must happen within wait.
func (c *wsClient) expectClosed() {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		_ = c.conn.SetReadDeadline(deadline)
		if _, _, err := c.conn.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatal("connection still open")
			}
			return
		}
	}
	c.t.Fatal("connection still open")
}

// expectSilence asserts that nothing arrives for d. It leaves the websocket unusable
// (gorilla/websocket does not recover from a read timeout), so it is a test's last read
// on that connection.
func (c *wsClient) expectSilence(d time.Duration) {
	c.t.Helper()
	f, err := c.nextWithin(d)
	if err == nil {
		c.t.Fatalf("unexpected frame %s", f)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("connection failed instead of staying silent: %v", err)
	}
}

func decode[T any](t testing.TB, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %T: %v in %s", v, err, raw)
	}
	return v
}

// eventually polls cond until it holds, failing after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
