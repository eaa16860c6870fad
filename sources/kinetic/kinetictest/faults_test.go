package kinetictest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestDropConnections(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "drop"})
	c1 := subscribed(t, s, d.ID)
	c2 := dial(t, s)
	eventually(t, "two connections", func() bool { return s.Stats().Connections == 2 })

	s.DropConnections()
	c1.expectClosed()
	c2.expectClosed()
	eventually(t, "connections gone", func() bool {
		st := s.Stats()
		return st.Connections == 0 && st.Subscriptions == 0
	})

	// Reconnecting works and resumes the stream; the user was already a participant.
	c3 := dial(t, s)
	c3.identify(token(t, s))
	c3.subscribe(d.ID)
	if _, err := s.PostMessage(d.ID, User{Username: "u"}, "after drop"); err != nil {
		t.Fatal(err)
	}
	if f := c3.next(); f.Event != "participant:updated" {
		t.Fatalf("want the participant back online, got %s", f)
	}
	if f := c3.next(); f.Event != "message:created" || decode[Message](t, f.Payload).Text() != "after drop" {
		t.Fatalf("got %s", f)
	}
	if st := s.Stats(); st.ConnectionsTotal != 3 {
		t.Fatalf("ConnectionsTotal = %d", st.ConnectionsTotal)
	}
}

func TestRefuseIdentifies(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := token(t, s)
	s.RefuseIdentifies(2)
	c := dial(t, s)
	for range 2 {
		ref := c.send("identify", map[string]string{"token": tok})
		if f := c.expectAck(ref, "ack-error"); string(f.Payload) != `"Unauthorized"` {
			t.Fatalf("payload %s", f.Payload)
		}
	}
	c.identify(tok)
}

func TestWithholdAcks(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "acks"})
	tok := token(t, s)
	c := dial(t, s)
	s.WithholdAcks(true)
	c.send("identify", map[string]string{"token": tok})
	c.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	eventually(t, "actions received", func() bool { return s.Stats().Subscribes == 1 })
	s.WithholdAcks(false)
	// The withheld actions were neither answered nor applied: the next answer is for the
	// next ref, and subscribing still requires identify.
	ref := c.send("subscribe", map[string]string{"topic": topicOf(d.ID)})
	c.expectAck(ref, "ack-error")
	c.identify(tok)
	c.subscribe(d.ID)
}

func TestSendRaw(t *testing.T) {
	s := newTestServer(t, Options{})
	c := dial(t, s)
	eventually(t, "connection", func() bool { return s.Stats().Connections == 1 })
	frames := [][]byte{
		[]byte("not json at all"),
		[]byte(`{"topic":"topichub","event":"surprise","payload":{}}`),
		[]byte(`{"event":` + strings.Repeat(" ", 1<<20) + `"big"}`),
	}
	for _, f := range frames {
		s.SendRaw(f)
	}
	for _, want := range frames {
		if got := c.next(); string(got.raw) != string(want) {
			t.Fatalf("got %.60q, want %.60q", got.raw, want)
		}
	}
}

func TestServerUnsubscribe(t *testing.T) {
	s := newTestServer(t, Options{})
	d1 := s.CreateDiscussion(DiscussionSpec{Title: "one"})
	d2 := s.CreateDiscussion(DiscussionSpec{Title: "two"})
	c := subscribed(t, s, d1.ID)
	c.subscribe(d2.ID)
	c.nextEvent("message:created") // join of d2

	s.Unsubscribe(d1.ID)
	f := c.next()
	if f.Topic != "topichub" || f.Event != "unsubscribed" || string(f.Payload) != `{"topic":"`+topicOf(d1.ID)+`"}` {
		t.Fatalf("got %s", f)
	}
	// d1's events stop; d2's still flow. Posts from one goroutine are queued in call order,
	// so the d2 message arriving next proves the d1 one was not sent.
	if _, err := s.PostMessage(d1.ID, User{Username: "u"}, "unseen"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PostMessage(d2.ID, User{Username: "u"}, "seen"); err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Topic != topicOf(d2.ID) || decode[Message](t, f.Payload).Text() != "seen" {
		t.Fatalf("got %s", f)
	}
	// The client's own unsubscribe of d1 is now an error.
	ref := c.send("unsubscribe", map[string]string{"topic": topicOf(d1.ID)})
	c.expectAck(ref, "ack-error")
}

func TestFailREST(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := token(t, s)
	s.FailREST(2, http.StatusServiceUnavailable)
	for range 2 {
		status, raw := call(t, s, tok, http.MethodGet, "/discussions", nil)
		wantError(t, status, raw, http.StatusServiceUnavailable)
	}
	callJSON(t, s, tok, http.MethodGet, "/discussions", nil, nil)

	s.FailTokens(1, http.StatusBadGateway)
	if status, _ := fetchToken(t, s, "integration-user", "integration-secret"); status != http.StatusBadGateway {
		t.Fatalf("status %d", status)
	}
	token(t, s)
}

// TestStall checks the half-open fault: nothing is read or written while it lasts, no
// connection is closed, and everything resumes in order afterwards.
func TestStall(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "stall"})
	tok := token(t, s)
	watcher := subscribed(t, s, d.ID) // asserts silence
	later := dial(t, s)               // reads after the stall
	later.identify(tok)
	later.subscribe(d.ID)
	watcher.nextEvent("presence")

	s.Stall(true)
	if _, err := s.PostMessage(d.ID, User{Username: "u"}, "during stall"); err != nil {
		t.Fatal(err)
	}
	fresh := dial(t, s) // a new connection stalls too
	ref := fresh.send("identify", map[string]string{"token": tok})
	eventually(t, "the fresh connection", func() bool { return s.Stats().Connections == 3 })
	watcher.expectSilence(300 * time.Millisecond)
	if st := s.Stats(); st.Connections != 3 || st.Identifies != 2 {
		t.Fatalf("during stall: %+v", st)
	}

	s.Stall(false)
	fresh.expectAck(ref, "ack-ok")
	if f := later.next(); f.Event != "message:created" || decode[Message](t, f.Payload).Text() != "during stall" {
		t.Fatalf("got %s", f)
	}
}

func TestSlowConsumerIsClosed(t *testing.T) {
	s := newTestServer(t, Options{SendBuffer: 4})
	d := s.CreateDiscussion(DiscussionSpec{Title: "slow"})
	c := subscribed(t, s, d.ID)
	s.Stall(true) // the writer stops, so the buffer fills
	for range 8 {
		if _, err := s.PostMessage(d.ID, User{Username: "u"}, "x"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "slow consumer closed", func() bool {
		st := s.Stats()
		return st.SlowConsumers == 1 && st.Connections == 0
	})
	s.Stall(false)
	c.expectClosed()
}

func TestIdleTimeoutAndPings(t *testing.T) {
	s := newTestServer(t, Options{IdleTimeout: 200 * time.Millisecond, PingInterval: 20 * time.Millisecond})
	c := dial(t, s)
	pinged := make(chan struct{}, 1)
	c.conn.SetPingHandler(func(string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil // no pong: the server must then close the connection as idle
	})
	c.expectClosed()
	select {
	case <-pinged:
	default:
		t.Fatal("no ping before the idle close")
	}
}

// TestCloseStopsEverything closes servers with connections in every state, a stall in
// place and a NewHandler server served by the caller, and checks no goroutine survives.
func TestCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	s := NewServer(Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "bye"})
	c := subscribed(t, s, d.ID)
	dial(t, s)
	s.Stall(true)
	if _, err := s.PostMessage(d.ID, User{Username: "u"}, "queued"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	c.expectClosed()

	h := NewHandler(Options{})
	if h.URL() != "" {
		t.Fatalf("URL %q before SetURL", h.URL())
	}
	ts := httptest.NewServer(h.Handler())
	h.SetURL(ts.URL)
	d = h.CreateDiscussion(DiscussionSpec{Title: "handler"})
	c = subscribed(t, h, d.ID)
	h.Close()
	c.expectClosed()
	ts.Close()

	// A closed server refuses new websockets.
	ts2 := httptest.NewServer(h.Handler())
	defer ts2.Close()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts2.URL, "http")+"/app/topics/socket", nil)
	if err == nil {
		resp.Body.Close()
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		if _, _, err := conn.ReadMessage(); err == nil {
			t.Fatal("closed server kept a websocket open")
		}
		conn.Close()
	}
}
