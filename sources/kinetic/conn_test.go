package kinetic

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wireServer is a minimal Topic Hub that records the client's frames verbatim, acks every
// request and answers pings unless mute.
type wireServer struct {
	mu     sync.Mutex
	frames []string
	pings  int
	mute   atomic.Bool
}

func (ws *wireServer) handler() http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPingHandler(func(string) error {
			ws.mu.Lock()
			ws.pings++
			ws.mu.Unlock()
			if ws.mute.Load() {
				return nil
			}
			return c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
		})
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			ws.mu.Lock()
			ws.frames = append(ws.frames, string(data))
			ws.mu.Unlock()
			var f struct{ Action, Ref string }
			_ = json.Unmarshal(data, &f)
			if f.Action != actHeartbeat && !ws.mute.Load() {
				_ = c.WriteMessage(websocket.TextMessage, []byte(`{"event":"ack-ok","ref":"`+f.Ref+`"}`))
			}
		}
	})
}

func (ws *wireServer) snapshot() ([]string, int) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]string(nil), ws.frames...), ws.pings
}

func dialTest(t *testing.T, url string, hb time.Duration) *conn {
	t.Helper()
	var refs atomic.Uint64
	c, err := dial(t.Context(), dialConfig{
		url: "ws" + strings.TrimPrefix(url, "http"), heartbeat: hb, ackTimeout: time.Second,
		readLimit: 1 << 20, httpClient: http.DefaultClient, refs: &refs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The frames on the wire are exactly the browser client's (protocol §3.3, §3.8); string
// refs count up across every action, heartbeats included; acks come back tagged.
func TestWireFrames(t *testing.T) {
	ws := &wireServer{}
	srv := httptest.NewServer(ws.handler())
	defer srv.Close()
	c := dialTest(t, srv.URL, 50*time.Millisecond)
	defer c.close()

	if err := c.request(actIdentify, map[string]string{"token": "JWT_TOKEN"}, "identify"); err != nil {
		t.Fatal(err)
	}
	if in := recv(t, c); in.tag != "identify" || in.f.Event != evAckOK || in.f.Ref != "1" {
		t.Fatalf("ack = %+v", in)
	}
	if err := c.request(actSubscribe, map[string]string{"topic": discussionTopic("d1")}, "subscribe:d1"); err != nil {
		t.Fatal(err)
	}
	if in := recv(t, c); in.tag != "subscribe:d1" {
		t.Fatalf("ack = %+v", in)
	}
	eventually(t, "two heartbeats", func() bool { f, p := ws.snapshot(); return len(f) >= 4 && p >= 2 })
	frames, _ := ws.snapshot()
	want := []string{
		`{"topic":"topichub","action":"identify","payload":{"token":"JWT_TOKEN"},"ref":"1"}`,
		`{"topic":"topichub","action":"subscribe","payload":{"topic":"discussions/discussion/d1"},"ref":"2"}`,
	}
	for i, w := range want {
		if frames[i] != w {
			t.Errorf("frame %d = %s\nwant %s", i, frames[i], w)
		}
	}
	if frames[2] != `{"topic":"topichub","action":"heartbeat","ref":"3"}` {
		t.Errorf("heartbeat = %s", frames[2])
	}
}

// A peer that stops answering (no frames, no pongs) is dead after two heartbeats.
func TestReadDeadline(t *testing.T) {
	ws := &wireServer{}
	ws.mute.Store(true)
	srv := httptest.NewServer(ws.handler())
	defer srv.Close()
	start := time.Now()
	c := dialTest(t, srv.URL, 50*time.Millisecond)
	defer c.close()
	select {
	case <-c.done:
	case <-time.After(waitLimit):
		t.Fatal("a silent peer was not detected")
	}
	if took := time.Since(start); took < 90*time.Millisecond || took > 2*time.Second {
		t.Errorf("detected after %s, want about two heartbeats (100ms)", took)
	}
	if err := c.reason(); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("reason = %v", err)
	}
}

// An ack that never comes ends the connection with an ackTimeoutError.
func TestAckTimeout(t *testing.T) {
	ws := &wireServer{}
	srv := httptest.NewServer(ws.handler())
	defer srv.Close()
	c := dialTest(t, srv.URL, time.Minute)
	defer c.close()
	ws.mute.Store(true)
	if err := c.request(actSubscribe, map[string]string{"topic": discussionTopic("d1")}, "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(waitLimit):
		t.Fatal("no ack timeout")
	}
	if _, ok := c.reason().(*ackTimeoutError); !ok {
		t.Errorf("reason = %v", c.reason())
	}
}

// recv waits for the next inbound frame, for at most the wait limit.
func recv(t *testing.T, c *conn) inbound {
	t.Helper()
	select {
	case in := <-c.in:
		return in
	case <-time.After(waitLimit):
		t.Fatal("no frame")
		return inbound{}
	}
}
