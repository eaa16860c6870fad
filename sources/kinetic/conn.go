package kinetic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Hub actions (client → server, topic "topichub"; protocol §3.3).
const (
	hubTopic        = "topichub"
	actIdentify     = "identify"
	actSubscribe    = "subscribe"
	actHeartbeat    = "heartbeat"
	writeWait       = 10 * time.Second // a write that takes longer means a dead peer
	closeGrace      = 500 * time.Millisecond
	inboundCapacity = 256
)

// outFrame is a client → server envelope (protocol §3.1).
type outFrame struct {
	Topic   string `json:"topic"`
	Action  string `json:"action"`
	Payload any    `json:"payload,omitempty"`
	Ref     string `json:"ref"`
}

// inbound is what the reader hands to the session, in arrival order: a frame, with the tag of
// the request it answers if it is an ack for one; or a frame that did not decode.
type inbound struct {
	f   frame
	tag string // non-empty: this frame answers the request made with this tag
	err error  // the frame did not decode (a *badInputError)
	raw []byte // the frame as received, for logs when err != nil
	// timedOut: no frame; the soft request tagged tag was not answered within the ack
	// timeout (see requestSoft). Its ack may still come, with the same tag.
	timedOut bool
}

// ackTimeoutError says the server did not answer a request in time: the connection is no
// longer trusted.
type ackTimeoutError struct {
	action, ref string
	after       time.Duration
}

func (e *ackTimeoutError) Error() string {
	return fmt.Sprintf("kinetic: no ack for %s (ref %s) within %s", e.action, e.ref, e.after)
}

// errClosed is the reason of a connection closed by this side.
var errClosed = errors.New("kinetic: connection closed")

// conn is one Topic Hub websocket, in the gorilla chat pattern: one reader goroutine, one
// writer goroutine through which every write goes (requests and heartbeats), read deadlines
// renewed by every frame and pong. The session that dialed it owns it and calls close.
type conn struct {
	ws         *websocket.Conn
	heartbeat  time.Duration
	ackTimeout time.Duration
	refs       *atomic.Uint64 // shared by the source's connections: refs never repeat

	out  chan outMsg  // to the writer
	in   chan inbound // from the reader, in arrival order
	done chan struct{}

	mu      sync.Mutex
	pending map[string]*pendingReq // ref → request awaiting its ack
	err     error                  // why the connection ended; set once, before done closes
	wg      sync.WaitGroup
}

type pendingReq struct {
	tag    string
	action string
	soft   bool        // a timeout is reported on in, not fatal (see requestSoft)
	timer  *time.Timer // armed once the request is written (see armAck)
}

// outMsg is a frame for the writer; ref, if set, is a request whose ack timer starts once
// the frame is written, not while it waits its turn.
type outMsg struct {
	data []byte
	ref  string
}

// dialConfig holds what dialing needs.
type dialConfig struct {
	url        string
	heartbeat  time.Duration
	ackTimeout time.Duration
	readLimit  int64
	httpClient *http.Client
	refs       *atomic.Uint64
}

// dial opens the websocket and starts its reader and writer.
func dial(ctx context.Context, dc dialConfig) (*conn, error) {
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: max(dc.ackTimeout, 5*time.Second),
	}
	if t, ok := dc.httpClient.Transport.(*http.Transport); ok && t != nil {
		d.TLSClientConfig = t.TLSClientConfig
		if t.Proxy != nil {
			d.Proxy = t.Proxy
		}
	}
	ws, resp, err := d.DialContext(ctx, dc.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			// Kinetic's Topic Hub upgrades every request on this path (the token is checked
			// by identify, not here): anything else is another server.
			return nil, fmt.Errorf("kinetic: websocket %s: %w (HTTP %d): the Topic Hub is not at this address; check url", dc.url, err, resp.StatusCode)
		}
		if resp != nil {
			return nil, fmt.Errorf("kinetic: websocket %s: %w (HTTP %d)", dc.url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("kinetic: websocket %s: %w", dc.url, err)
	}
	c := &conn{
		ws:         ws,
		heartbeat:  dc.heartbeat,
		ackTimeout: dc.ackTimeout,
		refs:       dc.refs,
		out:        make(chan outMsg, 64),
		in:         make(chan inbound, inboundCapacity),
		done:       make(chan struct{}),
		pending:    map[string]*pendingReq{},
	}
	ws.SetReadLimit(dc.readLimit)
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// deadline is how long the connection may be silent: two heartbeat periods. Every heartbeat
// also sends a ping, which any websocket server answers, so a live peer is never silent that
// long.
func (c *conn) deadline() time.Time { return time.Now().Add(2 * c.heartbeat) }

func (c *conn) readLoop() {
	defer c.wg.Done()
	_ = c.ws.SetReadDeadline(c.deadline())
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(c.deadline()) })
	// Frames are read into one reused buffer: decodeFrame keeps nothing of the bytes it is
	// given (its payload and strings are copies), so only a frame kept for a bad-input report
	// is copied out. A buffer grown by an unusually large frame is let go.
	var buf bytes.Buffer
	for {
		data, err := c.readFrame(&buf)
		if err != nil {
			c.fail(err)
			return
		}
		_ = c.ws.SetReadDeadline(c.deadline())
		item := inbound{}
		item.f, item.err = decodeFrame(data)
		if buf.Cap() > maxKeptReadBuffer {
			buf = bytes.Buffer{}
		}
		if item.err != nil {
			item.raw = bytes.Clone(data)
		} else if item.f.Ref != "" && (item.f.Event == evAckOK || item.f.Event == evAckError) {
			item.tag = c.answered(item.f.Ref)
		}
		select {
		case c.in <- item:
		case <-c.done:
			return
		}
	}
}

// maxKeptReadBuffer is the largest read buffer kept for the next frame.
const maxKeptReadBuffer = 64 << 10

// readFrame reads the next data frame into buf (emptied first) and returns its bytes, valid
// until the next call.
func (c *conn) readFrame(buf *bytes.Buffer) ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *conn) writeLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(c.heartbeat)
	defer tick.Stop()
	for {
		var msg outMsg
		select {
		case <-c.done:
			return
		case msg = <-c.out:
		case <-tick.C:
			// The protocol's heartbeat keeps the server's session alive; the ping makes the
			// server answer, which renews our read deadline (the heartbeat gets no reply).
			msg.data, _ = json.Marshal(outFrame{Topic: hubTopic, Action: actHeartbeat, Ref: c.nextRef()})
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.fail(err)
				return
			}
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.ws.WriteMessage(websocket.TextMessage, msg.data); err != nil {
			c.fail(err)
			return
		}
		if msg.ref != "" {
			c.armAck(msg.ref)
		}
	}
}

func (c *conn) nextRef() string { return strconv.FormatUint(c.refs.Add(1), 10) }

// request sends a hub action; its ack arrives on in with tag. An ack that does not come
// within the ack timeout of the frame being written ends the connection.
func (c *conn) request(action string, payload any, tag string) error {
	return c.send(action, payload, tag, false)
}

// requestSoft is request for an action whose slow answer says nothing about the connection
// (a subscribe does database work on the server): when the ack timeout passes, an inbound
// with timedOut set and tag is handed to the session instead, and the connection stays up.
// A late ack still arrives with tag.
func (c *conn) requestSoft(action string, payload any, tag string) error {
	return c.send(action, payload, tag, true)
}

func (c *conn) send(action string, payload any, tag string, soft bool) error {
	ref := c.nextRef()
	msg, err := json.Marshal(outFrame{Topic: hubTopic, Action: action, Payload: payload, Ref: ref})
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.pending[ref] = &pendingReq{tag: tag, action: action, soft: soft}
	c.mu.Unlock()
	select {
	case c.out <- outMsg{data: msg, ref: ref}:
		return nil
	case <-c.done:
		return c.reason()
	}
}

// armAck starts the ack timer of a request that has just been written.
func (c *conn) armAck(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[ref]
	if p == nil || p.timer != nil || c.err != nil {
		return // answered already, or the connection is over
	}
	p.timer = time.AfterFunc(c.ackTimeout, func() { c.expired(ref) })
}

// expired handles a request whose ack did not come in time.
func (c *conn) expired(ref string) {
	c.mu.Lock()
	p := c.pending[ref]
	if p == nil || c.err != nil {
		c.mu.Unlock()
		return
	}
	if !p.soft {
		c.mu.Unlock()
		c.fail(&ackTimeoutError{action: p.action, ref: ref, after: c.ackTimeout})
		return
	}
	tag := p.tag // the entry stays: a late ack still finds its tag
	c.mu.Unlock()
	select {
	case c.in <- inbound{tag: tag, timedOut: true}:
	case <-c.done:
	}
}

// answered removes a pending request and returns its tag ("" for an unknown ref: a
// heartbeat's ack, or one that came too late).
func (c *conn) answered(ref string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[ref]
	if !ok {
		return ""
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	delete(c.pending, ref)
	return p.tag
}

// fail ends the connection for err; the first reason wins.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	for ref, p := range c.pending {
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(c.pending, ref)
	}
	close(c.done)
	c.mu.Unlock()
	if err == errClosed {
		// Say goodbye; WriteControl may run concurrently with the writer.
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeGrace))
	}
	_ = c.ws.Close() // unblocks the reader
}

// reason is why the connection ended (nil while it is up).
func (c *conn) reason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close ends the connection and waits for its goroutines.
func (c *conn) close() {
	c.fail(errClosed)
	c.wg.Wait()
}
