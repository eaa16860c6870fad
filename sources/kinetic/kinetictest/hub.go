package kinetictest

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	hubTopic = "topichub"
	// maxClientFrame bounds what a client may send; real client frames are a few hundred
	// bytes (identify carries a JWT).
	maxClientFrame = 64 << 10
	writeWait      = 10 * time.Second
)

// Answers of ack-error frames. "Unauthorized" is what the bundle maps to "you don't have
// access" (§3.4); the others are the simulator's choice (§9.1).
const (
	errUnauthorized  = "Unauthorized"
	errNotIdentified = "Not Identified"
	errNotFound      = "Not Found"
	errNotSubscribed = "Not Subscribed"
	errUnknownAction = "Unknown Action"
	errUnknownTopic  = "Unknown Topic"
)

// clientFrame is client → server (§3.1). Ref is kept raw: the server echoes whatever the
// client sent (§3.2).
type clientFrame struct {
	Topic   string          `json:"topic"`
	Action  string          `json:"action"`
	Payload json.RawMessage `json:"payload"`
	Ref     json.RawMessage `json:"ref"`
}

// serverFrame is server → client (§3.1). Acks carry no topic, as the reference's test
// server sends them.
type serverFrame struct {
	Topic   string          `json:"topic,omitempty"`
	Event   string          `json:"event"`
	Payload any             `json:"payload,omitempty"`
	Ref     json.RawMessage `json:"ref,omitempty"`
}

// presenceData is one presence entry (§3.4).
type presenceData struct {
	Topic      string `json:"topic"`
	Connection string `json:"connection"`
	User       string `json:"user"`
}

type hub struct {
	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
}

func (h *hub) snapshotLocked() []*conn {
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) snapshot() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshotLocked()
}

// conn is one Topic Hub websocket: one reader goroutine (the HTTP handler's) and one writer
// goroutine, as in gorilla/websocket's chat example. Every frame goes through send, so the
// writer is the only goroutine that writes data frames.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	id   string
	send chan []byte
	done chan struct{} // closed by kill
	once sync.Once

	// Client frames go from the reader to the processor, which answers them in order: the
	// reader keeps reading while the processor waits out a subscribe's latency or delay, so
	// the subscribes a client has sent and not had answered are counted (awaiting) as a
	// real server would see them queue up.
	in       chan clientIn
	procDone chan struct{} // closed when the processor has ended
	awaiting atomic.Int64  // subscribes read and not yet answered

	ident    *actor       // processor goroutine only
	identExp atomic.Int64 // Unix second the identity's token expires (see SilenceExpired)

	mu   sync.Mutex
	subs map[string]*discussion // discussion id → discussion
}

var upgrader = websocket.Upgrader{
	// Daemons send no Origin; whether the real server checks it is unknown (§9.3).
	CheckOrigin: func(*http.Request) bool { return true },
}

// handleSocket serves GET /app/topics/socket. There is no authentication on the upgrade:
// the token arrives in identify (§2.1).
func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &conn{
		s:    s,
		ws:   ws,
		id:   newUUID(),
		send: make(chan []byte, s.opts.SendBuffer),
		done: make(chan struct{}),
		subs: make(map[string]*discussion),

		in:       make(chan clientIn, clientQueue),
		procDone: make(chan struct{}),
	}
	s.hub.mu.Lock()
	if s.hub.closed {
		s.hub.mu.Unlock()
		ws.Close()
		return
	}
	s.hub.conns[c] = struct{}{}
	// Added under the hub lock so that Close, which sets closed under it, waits for these.
	s.wg.Add(3)
	s.hub.mu.Unlock()
	s.stats.connectionsTotal.Add(1)

	go c.writeLoop()
	go c.processLoop()
	c.readLoop()
}

// clientIn is a client frame read and not yet answered.
type clientIn struct {
	f  clientFrame
	at time.Time // when it was read
}

// clientQueue bounds the frames read ahead of the processor (kdbridge lets at most 1,000
// subscribes await their answers); a client that sends more without waiting for answers
// waits for the reader (TCP backpressure). The buffer is allocated with each connection.
const clientQueue = 1024

// enqueue queues a frame for the writer without blocking.
//
// Overflow policy: a connection whose buffer (Options.SendBuffer frames) is full is a slow
// consumer and is closed, abruptly. Blocking would stall the discussion for every other
// subscriber (and hold its lock); dropping frames silently would break the ordered stream a
// client relies on. A closed client reconnects and catches up over REST, as with the real
// server. Counted in Stats.SlowConsumers.
func (c *conn) enqueue(frame []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- frame:
		c.s.stats.frames.Add(1)
		return true
	default:
		c.s.stats.slowConsumers.Add(1)
		c.kill()
		return false
	}
}

func (c *conn) enqueueFrame(f serverFrame) bool {
	return c.enqueue(mustJSON(f))
}

// kill closes the connection without a close frame. Idempotent and non-blocking, so it may
// be called under any lock.
func (c *conn) kill() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// closeGoingAway sends a close frame (1001) when it can, then kills the connection.
func (c *conn) closeGoingAway() {
	if !c.s.stalled() {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server closing")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(100*time.Millisecond))
	}
	c.kill()
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	var ping <-chan time.Time
	if c.s.opts.PingInterval > 0 {
		t := time.NewTicker(c.s.opts.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case frame := <-c.send:
			if !c.s.waitUnstalled(c.done) {
				return
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.kill()
				return
			}
		case <-ping:
			if c.s.stalled() {
				continue
			}
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.kill()
				return
			}
		}
	}
}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer func() {
		c.kill() // stops the processor
		<-c.procDone
		c.teardown()
	}()
	c.ws.SetReadLimit(maxClientFrame)
	idle := c.s.opts.IdleTimeout
	renew := func() {
		if idle > 0 {
			_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		}
	}
	renew()
	c.ws.SetPongHandler(func(string) error { renew(); return nil })
	// A half-open peer answers nothing, pings included; gorilla's default handler would
	// keep sending pongs from inside ReadMessage while stalled.
	c.ws.SetPingHandler(func(msg string) error {
		if c.s.stalled() {
			return nil
		}
		err := c.ws.WriteControl(websocket.PongMessage, []byte(msg), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	for {
		if !c.s.waitUnstalled(c.done) {
			return
		}
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		renew()
		// A frame that was in flight when a stall began is held, not answered.
		if !c.s.waitUnstalled(c.done) {
			return
		}
		if typ != websocket.TextMessage {
			c.s.stats.badFrames.Add(1)
			continue
		}
		// Frames that are not JSON objects are counted and ignored: there is no ref to
		// answer to.
		var f clientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.s.stats.badFrames.Add(1)
			continue
		}
		if f.Action == "subscribe" {
			c.s.stats.awaitingSubscribes(c.awaiting.Add(1))
		}
		select {
		case c.in <- clientIn{f: f, at: time.Now()}:
		case <-c.done:
			return
		}
	}
}

// processLoop answers the client's frames in order until the connection ends.
func (c *conn) processLoop() {
	defer c.s.wg.Done()
	defer close(c.procDone)
	for {
		select {
		case <-c.done:
			return
		case in := <-c.in:
			// A frame that was in flight when a stall began is held, not answered.
			if !c.s.waitUnstalled(c.done) {
				return
			}
			c.handle(in)
		}
	}
}

// teardown runs when the reader stops: the connection leaves the hub and every discussion.
func (c *conn) teardown() {
	c.kill()
	s := c.s
	s.hub.mu.Lock()
	delete(s.hub.conns, c)
	s.hub.mu.Unlock()
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for _, d := range subs {
		d.mu.Lock()
		s.leaveLocked(d, c)
		d.mu.Unlock()
	}
}

func (c *conn) ack(ref json.RawMessage) {
	c.s.stats.acksOK.Add(1)
	c.enqueueFrame(serverFrame{Event: "ack-ok", Ref: ref})
}

func (c *conn) nack(ref json.RawMessage, reason string) {
	c.s.stats.acksError.Add(1)
	c.enqueueFrame(serverFrame{Event: "ack-error", Payload: reason, Ref: ref})
}

// handle answers one client frame.
func (c *conn) handle(in clientIn) {
	f := in.f
	// A subscribe stops awaiting just before it is answered: after, the client may send the
	// next one, which the reader counts.
	awaiting := f.Action == "subscribe"
	settle := func() {
		if awaiting {
			awaiting = false
			c.awaiting.Add(-1)
		}
	}
	defer settle()
	switch f.Action {
	case "identify":
		c.s.stats.identifies.Add(1)
	case "subscribe":
		c.s.stats.subscribes.Add(1)
	case "unsubscribe":
		c.s.stats.unsubscribes.Add(1)
	}
	if f.Topic != hubTopic {
		// Per-topic actions exist in the client library but no client sends one (§3.3).
		settle()
		c.nack(f.Ref, errUnknownTopic)
		return
	}
	switch f.Action {
	case "heartbeat":
		// No reply: the client awaits none (§3.3).
	case "identify", "subscribe", "unsubscribe":
		if c.s.faults.withholdAcks.Load() {
			return
		}
		switch f.Action {
		case "identify":
			c.identify(f)
		case "subscribe":
			if !c.s.processSubscribe(in.at, c.done) {
				return
			}
			settle()
			c.subscribe(f)
		default:
			c.unsubscribe(f)
		}
	default:
		c.nack(f.Ref, errUnknownAction)
	}
}

func (c *conn) identify(f clientFrame) {
	var p struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(f.Payload, &p)
	if takeOne(&c.s.faults.refuseIdentifies) {
		c.nack(f.Ref, errUnauthorized)
		return
	}
	cl, err := c.s.verifyJWT(p.Token)
	if err != nil {
		c.nack(f.Ref, errUnauthorized)
		return
	}
	// A connection may identify again (e.g. with a fresh token); the newest identity wins.
	c.ident = &actor{user: cl.user(), admin: cl.SpaceAdmin}
	c.identExp.Store(cl.Exp)
	c.ack(f.Ref)
}

// topicPayload is the payload of subscribe, unsubscribe and unsubscribed.
type topicPayload struct {
	Topic               string  `json:"topic"`
	UserInvitationToken *string `json:"userInvitationToken,omitempty"`
}

func discussionIDOf(topic string) (string, bool) {
	id, ok := strings.CutPrefix(topic, "discussions/discussion/")
	return id, ok && id != ""
}

func (c *conn) subscribe(f clientFrame) {
	if c.ident == nil {
		// Unspecified by the reference (§9.3); refusing is the safe reading.
		c.nack(f.Ref, errNotIdentified)
		return
	}
	var p topicPayload
	_ = json.Unmarshal(f.Payload, &p)
	id, ok := discussionIDOf(p.Topic)
	if !ok {
		c.nack(f.Ref, errNotFound)
		return
	}
	s := c.s
	d, err := s.store.get(id)
	if err != nil {
		c.nack(f.Ref, errNotFound)
		return
	}
	a := *c.ident
	forbidden := s.faults.isForbidden(a.user.Username, id)

	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.deleted:
		c.nack(f.Ref, errNotFound)
		return
	case !d.canAccessLocked(a, forbidden):
		c.nack(f.Ref, errUnauthorized)
		return
	}
	if _, dup := d.subs[c]; dup {
		c.ack(f.Ref) // idempotent: no second presence or join
		return
	}
	// Everything below happens under the discussion lock, so this connection sees its
	// ack-ok, then presence INIT, then its own join events, before any later event. The
	// subscription is recorded (and counted in Stats) before its ack can be read.
	c.mu.Lock()
	c.subs[id] = d
	c.mu.Unlock()
	d.subs[c] = a.user.Username
	s.stats.subscriptions.Add(1)
	c.ack(f.Ref)

	me := presenceData{Topic: d.topic, Connection: c.id, User: a.user.Username}
	all := make([]presenceData, 0, len(d.subs))
	for o, u := range d.subs {
		all = append(all, presenceData{Topic: d.topic, Connection: o.id, User: u})
		if o != c {
			o.enqueueFrame(serverFrame{Topic: hubTopic, Event: "presence",
				Payload: map[string]any{"op": "CREATED", "presenceData": me}})
		}
	}
	slices.SortFunc(all, func(a, b presenceData) int { return strings.Compare(a.Connection, b.Connection) })
	c.enqueueFrame(serverFrame{Topic: hubTopic, Event: "presence",
		Payload: map[string]any{"op": "INIT", "presences": all}})
	s.joinLocked(d, a)
}

func (c *conn) unsubscribe(f clientFrame) {
	var p topicPayload
	_ = json.Unmarshal(f.Payload, &p)
	id, _ := discussionIDOf(p.Topic)
	c.mu.Lock()
	d := c.subs[id]
	c.mu.Unlock()
	if d == nil {
		c.nack(f.Ref, errNotSubscribed)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c.ack(f.Ref)
	c.s.leaveLocked(d, c)
}

// leaveLocked removes c from d's subscribers: presence REMOVED to the others and, when the
// user has no other connection there, the participant goes offline (lastSeenAt set,
// participant:updated) — the inverse of joinLocked (§3.6, inferred).
func (s *Server) leaveLocked(d *discussion, c *conn) {
	user, ok := d.subs[c]
	if !ok {
		return
	}
	delete(d.subs, c)
	c.mu.Lock()
	delete(c.subs, d.id)
	c.mu.Unlock()
	s.stats.subscriptions.Add(-1)
	gone := presenceData{Topic: d.topic, Connection: c.id, User: user}
	stillHere := false
	for o, u := range d.subs {
		o.enqueueFrame(serverFrame{Topic: hubTopic, Event: "presence",
			Payload: map[string]any{"op": "REMOVED", "presenceData": gone}})
		stillHere = stillHere || u == user
	}
	if stillHere || d.deleted {
		return
	}
	if i := d.participantLocked(user); i >= 0 {
		now := s.nowString()
		d.meta.Participants[i].LastSeenAt = &now
		s.emitLocked(d, "participant:updated", d.meta.Participants[i])
	}
}

// evictLocked sends a server-initiated `unsubscribed` to the subscribers of d that match
// (all when match is nil) and drops their subscriptions.
func (s *Server) evictLocked(d *discussion, match func(username string) bool) {
	frame := mustJSON(serverFrame{Topic: hubTopic, Event: "unsubscribed", Payload: topicPayload{Topic: d.topic}})
	for c, u := range d.subs {
		if match != nil && !match(u) {
			continue
		}
		c.enqueue(frame)
		s.leaveLocked(d, c)
	}
}

// emitLocked queues one per-topic event to every subscriber of d. Called with d.mu held:
// the frame is marshalled once and only queued, never written, here.
func (s *Server) emitLocked(d *discussion, event string, payload any) {
	if len(d.subs) == 0 {
		return
	}
	frame := mustJSON(serverFrame{Topic: d.topic, Event: event, Payload: payload})
	silence := s.faults.silenceExpired.Load()
	now := s.now().Unix()
	for c := range d.subs {
		if silence && now >= c.identExp.Load() {
			continue // an expired identity gets nothing, and is not told
		}
		c.enqueue(frame)
	}
}

// Unsubscribe ends every subscription to the discussion from the server side: each
// subscriber gets `unsubscribed` (§3.4) and stops receiving the discussion's events.
func (s *Server) Unsubscribe(discussionID string) {
	d, err := s.store.get(discussionID)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s.evictLocked(d, nil)
}
