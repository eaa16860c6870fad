package slacktest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode, as Slack speaks it (https://api.slack.com/apis/socket-mode): the app-level
// token calls apps.connections.open and gets a single-use WebSocket URL on this server; the
// server greets a connection with "hello", sends Events API events in "events_api" envelopes,
// expects each envelope acknowledged with {"envelope_id": …}, and sends every envelope not
// acknowledged again, with retry_attempt counted up, on the next connection (or when the test
// calls ResendUnacked). "disconnect" with reason refresh_requested asks the client to
// reconnect. Once Socket Mode has been opened, the bot's own chat.postMessage, chat.update
// and chat.delete produce message events too, as they do in Slack (with bot_id and app_id),
// and UserPosts and its friends play a person typing in Slack.

// DefaultAppToken is the app-level token a server accepts when Options.AppToken is empty.
const DefaultAppToken = "xapp-1-A0FAKEAPP-0000-slacktestslacktestslacktest"

// AppID is the id of the fake app, as the hello frame and the events name it.
const AppID = "A0FAKEAPP"

const socketPath = "/link/"

// sendBuffer is how many frames may wait for one connection before it counts as stuck and is
// closed (its envelopes stay pending and go out again on the next connection).
const sendBuffer = 1024

// socketMode is the Socket Mode state of a Server. Its own mutex is taken inside s.mu, never
// the other way round.
type socketMode struct {
	appToken string
	ping     time.Duration

	mu      sync.Mutex
	opened  bool                       // apps.connections.open succeeded once: events flow
	tickets map[string]bool            // unused connection tickets
	conns   []*socketConn              // open connections, oldest first
	pending []*envelope                // sent or not, not acknowledged, in order
	events  map[string]json.RawMessage // event_id → Events API payload, for Resend
	seq     int
	stats   SocketStats
}

type envelope struct {
	id       string
	payload  json.RawMessage
	attempts int // how many times it was sent
}

// SocketStats counts what the Socket Mode endpoint did.
type SocketStats struct {
	Opens       int // successful apps.connections.open calls
	Accepted    int // WebSocket connections accepted (hello sent), ever
	Connections int // WebSocket connections open now
	Sent        int // envelopes sent (retries included)
	Retried     int // envelopes sent again (retry_attempt > 0)
	Acked       int // acknowledgements received for pending envelopes
	Pending     int // envelopes not acknowledged yet
}

type socketConn struct {
	ws   *websocket.Conn
	send chan []byte
	done chan struct{}
	once sync.Once
}

func (c *socketConn) close() { c.once.Do(func() { close(c.done) }) }

func (m *socketMode) init(opts Options) {
	m.appToken = opts.AppToken
	if m.appToken == "" {
		m.appToken = DefaultAppToken
	}
	m.ping = opts.PingInterval
	if m.ping <= 0 {
		m.ping = 2 * time.Second
	}
	m.tickets = map[string]bool{}
	m.events = map[string]json.RawMessage{}
}

// AppToken is the app-level token the server accepts.
func (s *Server) AppToken() string { return s.socket.appToken }

// SocketStats returns the Socket Mode counters.
func (s *Server) SocketStats() SocketStats {
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.Connections = len(m.conns)
	st.Pending = len(m.pending)
	return st
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// connectionsOpen serves apps.connections.open; s.mu is held.
func (s *Server) connectionsOpen(token string) answer {
	m := &s.socket
	switch token {
	case m.appToken:
	case s.token:
		return errAnswer("not_allowed_token_type")
	default:
		return errAnswer("invalid_auth")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ticket := randomID()
	m.tickets[ticket] = true
	m.opened = true
	m.stats.Opens++
	url := "ws" + strings.TrimPrefix(s.ts.URL, "http") + socketPath + "?ticket=" + ticket + "&app_id=" + AppID
	return okAnswer(map[string]any{"url": url})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveSocket upgrades a connection whose ticket apps.connections.open handed out.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	m := &s.socket
	ticket := r.URL.Query().Get("ticket")
	m.mu.Lock()
	ok := m.tickets[ticket]
	delete(m.tickets, ticket)
	m.mu.Unlock()
	if !ok {
		http.Error(w, "unknown or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &socketConn{ws: ws, send: make(chan []byte, sendBuffer), done: make(chan struct{})}
	hello, _ := json.Marshal(map[string]any{"type": "hello", "num_connections": 1,
		"debug_info":      map[string]any{"host": "slacktest", "build_number": 1, "approximate_connection_time": 3600},
		"connection_info": map[string]any{"app_id": AppID}})
	c.send <- hello

	m.mu.Lock()
	select {
	case <-s.release: // closing
		m.mu.Unlock()
		_ = ws.Close()
		return
	default:
	}
	m.conns = append(m.conns, c)
	m.stats.Accepted++
	// What the last connection did not acknowledge goes out again, in order.
	for _, e := range m.pending {
		m.sendLocked(c, e)
	}
	s.wg.Add(2)
	m.mu.Unlock()

	go func() { defer s.wg.Done(); s.writeSocket(c) }()
	go func() { defer s.wg.Done(); s.readSocket(c) }()
}

// writeSocket is the connection's only writer: frames and pings.
func (s *Server) writeSocket(c *socketConn) {
	defer s.dropConn(c)
	t := time.NewTicker(s.socket.ping)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			_ = c.ws.Close()
			return
		case <-s.release:
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
			_ = c.ws.Close()
			return
		case f := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
				_ = c.ws.Close()
				return
			}
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second)); err != nil {
				_ = c.ws.Close()
				return
			}
		}
	}
}

// readSocket reads acknowledgements until the connection ends.
func (s *Server) readSocket(c *socketConn) {
	defer c.close()
	c.ws.SetReadLimit(1 << 20)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		m := &s.socket
		m.mu.Lock()
		for i, e := range m.pending {
			if e.id == ack.EnvelopeID {
				m.pending = append(m.pending[:i:i], m.pending[i+1:]...)
				m.stats.Acked++
				break
			}
		}
		m.mu.Unlock()
	}
}

func (s *Server) dropConn(c *socketConn) {
	c.close()
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.conns {
		if o == c {
			m.conns = append(m.conns[:i:i], m.conns[i+1:]...)
			break
		}
	}
}

func (s *Server) closeSockets() {
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		c.close()
	}
}

// sendLocked writes an envelope to c; m.mu is held.
func (m *socketMode) sendLocked(c *socketConn, e *envelope) {
	frame := map[string]any{"envelope_id": e.id, "type": "events_api", "payload": e.payload,
		"accepts_response_payload": false, "retry_attempt": e.attempts, "retry_reason": ""}
	if e.attempts > 0 {
		frame["retry_reason"] = "timeout"
		m.stats.Retried++
	}
	e.attempts++
	b, _ := json.Marshal(frame)
	m.writeLocked(c, b)
	m.stats.Sent++
}

func (m *socketMode) writeLocked(c *socketConn, b []byte) {
	select {
	case c.send <- b:
	default:
		c.close() // stuck: its envelopes stay pending for the next connection
	}
}

// current is the connection new envelopes go to: the newest, as a client that reconnects
// on refresh_requested expects.
func (m *socketMode) currentLocked() *socketConn {
	if len(m.conns) == 0 {
		return nil
	}
	return m.conns[len(m.conns)-1]
}

// eventLocked wraps an inner event in an Events API payload and an envelope, and sends it
// if a connection is open; it returns the event_id. Nothing happens before Socket Mode was
// opened once.
func (m *socketMode) eventLocked(inner map[string]any) string {
	if !m.opened {
		return ""
	}
	m.seq++
	id := fmt.Sprintf("Ev%08d", m.seq)
	payload, _ := json.Marshal(map[string]any{
		"token": "verification-token-unused-in-socket-mode", "team_id": TeamID, "api_app_id": AppID,
		"event": inner, "type": "event_callback", "event_id": id, "event_time": time.Now().Unix(),
		"authorizations":        []map[string]any{{"team_id": TeamID, "user_id": BotUID, "is_bot": true}},
		"is_ext_shared_channel": false,
	})
	m.events[id] = payload
	m.enqueueLocked(payload)
	return id
}

func (m *socketMode) enqueueLocked(payload json.RawMessage) {
	e := &envelope{id: randomID(), payload: payload}
	m.pending = append(m.pending, e)
	if c := m.currentLocked(); c != nil {
		m.sendLocked(c, e)
	}
}

// SendEvent sends inner (an Events API event such as {"type":"message",…}) to the app in a
// new envelope and returns its event_id; "" if Socket Mode was never opened.
func (s *Server) SendEvent(inner map[string]any) string {
	s.socket.mu.Lock()
	defer s.socket.mu.Unlock()
	return s.socket.eventLocked(inner)
}

// Resend sends the event eventID again in a new envelope, as Slack does when it is not
// sure the first one arrived; it reports whether the event is known.
func (s *Server) Resend(eventID string) bool {
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.events[eventID]
	if ok {
		m.enqueueLocked(p)
	}
	return ok
}

// ResendUnacked sends every envelope not acknowledged yet again on the newest connection,
// with retry_attempt counted up, as Slack does after its acknowledgement timeout.
func (s *Server) ResendUnacked() {
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.currentLocked(); c != nil {
		for _, e := range m.pending {
			m.sendLocked(c, e)
		}
	}
}

// SendFrame sends frame, unchanged, as a text frame on every open Socket Mode connection:
// garbage, unknown envelope types.
func (s *Server) SendFrame(frame []byte) {
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		m.writeLocked(c, append([]byte(nil), frame...))
	}
}

// Disconnect asks every open connection to reconnect, as Slack does before it retires a
// connection ({"type":"disconnect","reason":"refresh_requested"}). The server does not close
// them: the client does.
func (s *Server) Disconnect() {
	b, _ := json.Marshal(map[string]any{"type": "disconnect", "reason": "refresh_requested",
		"debug_info": map[string]any{"host": "slacktest"}})
	s.SendFrame(b)
}

// DropSockets closes every Socket Mode connection abruptly, without a close frame.
func (s *Server) DropSockets() {
	m := &s.socket
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		_ = c.ws.UnderlyingConn().Close()
	}
}

// File is a file a person shares in Slack (UserSharesFile).
type File struct {
	Name     string
	MimeType string
	Size     int64
}

// UserPosts plays a person typing text in channel: in the thread threadTS ("" for the channel
// itself). It returns the new message's ts. The message event goes to the app.
func (s *Server) UserPosts(channel, threadTS, user, text string) string {
	return s.userMessage(channel, threadTS, user, text, "", nil)
}

// UserSharesFile plays a person sharing a file (with a comment) in the thread threadTS.
func (s *Server) UserSharesFile(channel, threadTS, user, text string, f File) string {
	return s.userMessage(channel, threadTS, user, text, "", &f)
}

// BotPosts plays another app's bot (botID, not the fake's own BotID) posting in a thread.
func (s *Server) BotPosts(channel, threadTS, botID, text string) string {
	return s.userMessage(channel, threadTS, "", text, botID, nil)
}

func (s *Server) userMessage(channel, threadTS, user, text, botID string, f *File) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	ts := fmt.Sprintf("1700000000.%06d", s.seq)
	m := &Message{Channel: channel, TS: ts, ThreadTS: threadTS, Text: text, User: user, BotID: botID, PostedAt: time.Now()}
	key := channel + " " + ts
	s.messages[key] = m
	s.order = append(s.order, key)
	ev := messageJSON(m)
	if f != nil {
		fid := fmt.Sprintf("F%08d", s.seq)
		ev["subtype"] = "file_share"
		ev["files"] = []map[string]any{{"id": fid, "name": f.Name, "title": f.Name, "mimetype": f.MimeType,
			"size": f.Size, "url_private": "https://files.slack.com/files-pri/" + TeamID + "-" + fid + "/" + f.Name,
			"permalink": "https://kdbridge-test.slack.com/files/" + user + "/" + fid + "/" + f.Name}}
	}
	ev["channel"], ev["event_ts"], ev["channel_type"] = channel, ts, "channel"
	s.socket.mu.Lock()
	s.socket.eventLocked(ev)
	s.socket.mu.Unlock()
	return ts
}

// UserEdits plays the author editing the message ts in channel; it reports whether there
// was a live message to edit.
func (s *Server) UserEdits(channel, ts, text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[channel+" "+ts]
	if !ok || m.Deleted {
		return false
	}
	prev := *m
	m.Text, m.Edited = text, true
	s.changedEventLocked(prev, m)
	return true
}

// UserDeletes plays the author deleting the message ts in channel; it reports whether there
// was a live message to delete.
func (s *Server) UserDeletes(channel, ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[channel+" "+ts]
	if !ok || m.Deleted {
		return false
	}
	m.Deleted = true
	s.deletedEventLocked(m)
	return true
}

// messageJSON is a message as events carry it.
func messageJSON(m *Message) map[string]any {
	out := map[string]any{"type": "message", "text": m.Text, "ts": m.TS}
	if m.User != "" {
		out["user"], out["team"] = m.User, TeamID
	}
	if m.BotID != "" {
		out["subtype"], out["bot_id"] = "bot_message", m.BotID
		if m.BotID == BotID {
			out["app_id"] = AppID
		}
		if m.Username != "" {
			out["username"] = m.Username
		}
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	return out
}

// The events of a message's life; s.mu is held.

func (s *Server) messageEventLocked(m *Message) {
	ev := messageJSON(m)
	ev["channel"], ev["event_ts"], ev["channel_type"] = m.Channel, m.TS, "channel"
	s.socket.mu.Lock()
	defer s.socket.mu.Unlock()
	s.socket.eventLocked(ev)
}

func (s *Server) changedEventLocked(prev Message, m *Message) {
	s.seq++
	evTS := fmt.Sprintf("1700000000.%06d", s.seq)
	msg := messageJSON(m)
	editor := m.User
	if editor == "" {
		editor = BotUID
	}
	msg["edited"] = map[string]any{"user": editor, "ts": evTS}
	ev := map[string]any{"type": "message", "subtype": "message_changed", "hidden": true, "channel": m.Channel,
		"ts": evTS, "event_ts": evTS, "channel_type": "channel", "message": msg, "previous_message": messageJSON(&prev)}
	s.socket.mu.Lock()
	defer s.socket.mu.Unlock()
	s.socket.eventLocked(ev)
}

func (s *Server) deletedEventLocked(m *Message) {
	s.seq++
	evTS := fmt.Sprintf("1700000000.%06d", s.seq)
	ev := map[string]any{"type": "message", "subtype": "message_deleted", "hidden": true, "channel": m.Channel,
		"ts": evTS, "event_ts": evTS, "deleted_ts": m.TS, "channel_type": "channel", "previous_message": messageJSON(m)}
	s.socket.mu.Lock()
	defer s.socket.mu.Unlock()
	s.socket.eventLocked(ev)
}

// userInfo serves users.info; s.mu is held.
func (s *Server) userInfo(id string) answer {
	for _, u := range s.users {
		if u.ID == id {
			return okAnswer(map[string]any{"user": map[string]any{"id": u.ID, "team_id": TeamID, "name": strings.ToLower(u.Name),
				"real_name": u.Name, "profile": map[string]any{"display_name": u.Name, "real_name": u.Name, "email": u.Email}}})
		}
	}
	return errAnswer("user_not_found")
}
