// Package slacktest is a fake of the part of the Slack Web API that kdbridge uses, served
// over a real loopback socket with the real protocol: POSTs to /api/<method> with
// form-encoded or JSON bodies (GET with a query also works), the token as a `token`
// parameter or an `Authorization: Bearer` header, answers {"ok":true,…} or
// {"ok":false,"error":"…"} with HTTP 200, and HTTP 429 with Retry-After when rate-limited.
//
// It follows slack-go's slacktest, adding what that lacks: chat.update, chat.delete,
// channels with membership and archiving, conversations.list paging, users.lookupByEmail, a
// record of every call, the visible state of every channel, per-channel rate enforcement and
// fault injection. Methods: auth.test, chat.postMessage, chat.update, chat.delete,
// conversations.list, conversations.info, users.lookupByEmail, users.info, and
// apps.connections.open with the app-level token, which opens Socket Mode (socket.go: the
// WebSocket endpoint, envelopes and acknowledgements, and people typing in Slack); any other
// answers unknown_method.
//
// Where Slack's behaviour is loose the fake is strict, so that a client bug shows: thread_ts
// must name a top-level message of the channel (else thread_not_found), text over 40,000
// characters is refused with msg_too_long instead of being truncated, and the bot can write
// only to channels it is a member of.
package slacktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultToken is the bot token a server accepts when Options.Token is empty.
const DefaultToken = "xoxb-0000000000-0000000000000-slacktestslacktestslacktest"

// Identity of the fake workspace and bot, as auth.test reports them.
const (
	TeamID = "T0FAKETEAM"
	BotID  = "B0FAKEBOT"
	BotUID = "U0FAKEBOT"
)

// MaxTextLength is the longest text chat.postMessage and chat.update accept, in characters.
const MaxTextLength = 40_000

// Options configure a Server. The zero value is a workspace without channels or users that
// accepts DefaultToken.
type Options struct {
	Token    string    // the only bot token accepted; default DefaultToken
	Channels []Channel // the workspace's channels
	Users    []User    // the people users.lookupByEmail finds
	// PageSize is the most channels one conversations.list page holds, whatever its limit
	// asks; default 100.
	PageSize int
	// RateTolerance is how much earlier than EnforceRate allows a post may arrive and still
	// pass: the jitter between a well-paced client's clock and the server's. Default 100ms.
	RateTolerance time.Duration
	// AppToken is the only app-level token apps.connections.open accepts (Socket Mode);
	// default DefaultAppToken.
	AppToken string
	// PingInterval is how often a Socket Mode connection is pinged; default 2s (slack-go's
	// client gives up on a connection after 30s without a ping).
	PingInterval time.Duration
	// Scopes are the bot token's scopes, sent as Slack does in the X-OAuth-Scopes header of
	// every answer; default DefaultScopes.
	Scopes []string
}

// DefaultScopes are the scopes of the fake's bot token: all that kdbridge uses.
var DefaultScopes = []string{"chat:write", "chat:write.customize", "channels:read", "groups:read",
	"users:read.email", "channels:history", "groups:history", "users:read"}

// Channel is a conversation of the workspace.
type Channel struct {
	ID, Name string
	Private  bool // invisible to a bot that is not a member: channel_not_found
	Archived bool // writes answer is_archived
	// NotMember means the bot was not invited: writes answer not_in_channel (channel_not_found
	// for a private channel, which the bot cannot see at all).
	NotMember bool
}

// User is a person users.lookupByEmail can find.
type User struct{ ID, Email, Name string }

// Call is one request the server received.
type Call struct {
	Method string            // "chat.postMessage"
	Params map[string]string // the request's parameters, without the token
	At     time.Time         // when it arrived
	Status int               // the HTTP status answered; 0 when it was never answered
	Error  string            // the error code answered ("ratelimited" with a 429); "" when ok
	// RetryAfter is the Retry-After header answered, in seconds ("" without one).
	RetryAfter string
	TS         string // the ts of the message a successful chat.postMessage created
}

// Param returns one parameter of the call ("" when absent).
func (c Call) Param(key string) string { return c.Params[key] }

// Channel returns the call's channel parameter.
func (c Call) Channel() string { return c.Params["channel"] }

// OK reports whether the call was answered with "ok": true.
func (c Call) OK() bool { return c.Status == http.StatusOK && c.Error == "" }

// Message is a message in a channel as it shows now: posted by the bot, or typed by a person
// (UserPosts and its friends in socket.go).
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // the thread parent's ts for a reply; "" for a top-level message
	Text     string // the latest text, after edits
	Username string // the username override, if any
	User     string // the person who typed it (UserPosts and friends); "" for the bot's posts
	BotID    string // the bot that posted it; "" for a person's message
	IconURL  string
	Edited   bool // changed by chat.update at least once
	Deleted  bool // removed by chat.delete or DeleteMessage
	PostedAt time.Time
}

// Fault is how a call fails instead of being served.
type Fault struct {
	Status     int    // HTTP status; 0 means 200
	RetryAfter string // Retry-After header, raw
	Error      string // the ok:false error code
	Body       string // a raw body instead of JSON
	Hang       bool   // never answer (until the client gives up or the server closes)
}

// Server is a fake Slack Web API. It is safe for concurrent use.
type Server struct {
	ts        *httptest.Server
	token     string
	scopes    string
	pageSize  int
	tolerance time.Duration
	release   chan struct{} // closed by Close: frees hanging handlers
	closeOnce sync.Once

	mu        sync.Mutex
	calls     []Call
	seq       int
	messages  map[string]*Message // channel + " " + ts
	order     []string            // message keys in posting order
	channels  []Channel
	users     map[string]User // lower-case email → user
	next      map[string][]Fault
	always    []channelFault
	limits    map[string]*gcra         // chat.postMessage pacing per channel
	pausedTil map[string]time.Time     // RateLimitOnce: the channel answers 429 until then
	pauseNext map[string]time.Duration // RateLimitOnce armed: the next write starts a pause
	limited   map[string]int           // 429s answered per channel
	rate      float64
	burst     int

	socket socketMode // Socket Mode: see socket.go
	wg     sync.WaitGroup
}

type channelFault struct {
	method, channel, code string
}

// NewServer starts a fake on 127.0.0.1. Close it when done.
func NewServer(opts Options) *Server {
	s := &Server{
		token:     opts.Token,
		pageSize:  opts.PageSize,
		tolerance: opts.RateTolerance,
		release:   make(chan struct{}),
		messages:  map[string]*Message{},
		channels:  slices.Clone(opts.Channels),
		users:     map[string]User{},
		next:      map[string][]Fault{},
		limits:    map[string]*gcra{},
		pausedTil: map[string]time.Time{},
		pauseNext: map[string]time.Duration{},
		limited:   map[string]int{},
	}
	if s.token == "" {
		s.token = DefaultToken
	}
	if opts.Scopes == nil {
		opts.Scopes = DefaultScopes
	}
	s.scopes = strings.Join(opts.Scopes, ",")
	if s.pageSize <= 0 {
		s.pageSize = 100
	}
	if s.tolerance <= 0 {
		s.tolerance = 100 * time.Millisecond
	}
	s.socket.init(opts)
	for _, u := range opts.Users {
		s.users[strings.ToLower(u.Email)] = u
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve)) // binds 127.0.0.1
	return s
}

// URL is the Web API base, ending in "/": the sink's api_url, or slack.OptionAPIURL.
func (s *Server) URL() string { return s.ts.URL + "/api/" }

// Token is the bot token the server accepts.
func (s *Server) Token() string { return s.token }

// Close answers hanging calls and stops the server. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.release)
		s.closeSockets()
		s.ts.Close()
		s.wg.Wait()
	})
}

// AddChannel adds a channel, or replaces the one with the same id (to archive it, or to
// invite or remove the bot).
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.channels, func(o Channel) bool { return o.ID == c.ID }); i >= 0 {
		s.channels[i] = c
		return
	}
	s.channels = append(s.channels, c)
}

// AddUser adds a person users.lookupByEmail finds.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(u.Email)] = u
}

// Calls returns every call received so far, in order of arrival.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = c
		out[i].Params = cloneMap(c.Params)
	}
	return out
}

// CallsOf returns the calls of one method, in order of arrival.
func (s *Server) CallsOf(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the messages a channel shows now, in posting order: thread parents and
// replies (tell them apart by ThreadTS), with edits applied and deleted ones left out.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, k := range s.order {
		if m := s.messages[k]; m.Channel == channel && !m.Deleted {
			out = append(out, *m)
		}
	}
	return out
}

// Message returns a message by channel and ts, deleted or not.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[channel+" "+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// DeleteMessage deletes a message as a person would in Slack; it reports whether there was
// one to delete.
func (s *Server) DeleteMessage(channel, ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[channel+" "+ts]
	if !ok || m.Deleted {
		return false
	}
	m.Deleted = true
	return true
}

// FailNext makes the next call of method answer {"ok":false,"error":errorCode}.
func (s *Server) FailNext(method, errorCode string) {
	s.FailNextWith(method, Fault{Error: errorCode})
}

// FailNextWith queues faults for the next calls of method, one call each, before anything
// else (the token is not even checked).
func (s *Server) FailNextWith(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next[method] = append(s.next[method], faults...)
}

// FailAlways makes every call of method ("" for any method) on channel ("" for any channel)
// answer {"ok":false,"error":errorCode} until ClearFaults: a permanent error.
func (s *Server) FailAlways(method, channel, errorCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = append(s.always, channelFault{method: method, channel: channel, code: errorCode})
}

// ClearFaults removes every queued and permanent fault and every rate-limit episode; rate
// enforcement stays.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.next)
	s.always = nil
	clear(s.pausedTil)
	clear(s.pauseNext)
}

// EnforceRate makes chat.postMessage to each channel conform to a token bucket of perSecond
// posts with bursts of burst, as Slack's special limit for that method does: a post beyond it
// is answered 429 with the Retry-After (whole seconds, at least 1) after which it would pass,
// and counted in RateLimited. Refused posts do not use up the bucket. perSecond <= 0 turns
// enforcement off.
func (s *Server) EnforceRate(perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate, s.burst = perSecond, max(burst, 1)
	clear(s.limits)
}

// RateLimitOnce makes the next write to channel (chat.postMessage, chat.update or
// chat.delete) answer 429 with Retry-After = retryAfter in whole seconds (at least 1), and
// every further write to it until that time has passed: a client that does not honour
// Retry-After meets more 429s, which RateLimited counts.
func (s *Server) RateLimitOnce(channel string, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauseNext[channel] = retryAfter
}

// RateLimited returns how many 429s the server answered for writes to channel.
func (s *Server) RateLimited(channel string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limited[channel]
}

// answer is what the server sends back for a call.
type answer struct {
	status     int
	retryAfter string
	body       map[string]any // JSON
	raw        string         // instead of body
	hang       bool
}

func okAnswer(fields map[string]any) answer {
	body := map[string]any{"ok": true}
	for k, v := range fields {
		body[k] = v
	}
	return answer{body: body}
}

func errAnswer(code string) answer {
	return answer{body: map[string]any{"ok": false, "error": code}}
}

func rateLimitedAnswer(wait time.Duration) answer {
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	return answer{status: http.StatusTooManyRequests, retryAfter: strconv.Itoa(secs),
		body: map[string]any{"ok": false, "error": "ratelimited"}}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == socketPath {
		s.serveSocket(w, r)
		return
	}
	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	if !ok || method == "" || (r.Method != http.MethodPost && r.Method != http.MethodGet) {
		http.NotFound(w, r)
		return
	}
	params, token, err := readParams(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Params: params, At: now})
	idx := len(s.calls) - 1
	a := s.handle(method, params, token, now)
	c := &s.calls[idx]
	c.RetryAfter = a.retryAfter
	if !a.hang {
		c.Status = orDefault(a.status, http.StatusOK)
		if a.body != nil {
			if ok, _ := a.body["ok"].(bool); !ok {
				c.Error, _ = a.body["error"].(string)
			}
			if ts, _ := a.body["ts"].(string); ts != "" && method == "chat.postMessage" {
				c.TS = ts
			}
		} else if c.Status == http.StatusOK {
			c.Error = "invalid_response"
		}
	}
	s.mu.Unlock()

	if a.hang {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	if token == s.token {
		w.Header().Set("X-OAuth-Scopes", s.scopes)
	}
	if a.body != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(orDefault(a.status, http.StatusOK))
	if a.body != nil {
		_ = json.NewEncoder(w).Encode(a.body)
	} else {
		_, _ = fmt.Fprint(w, a.raw)
	}
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// readParams reads a call's parameters from a JSON body, a form body or the query, and the
// token from the Authorization header or the `token` parameter.
func readParams(w http.ResponseWriter, r *http.Request) (params map[string]string, token string, err error) {
	params = map[string]string{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && ct == "application/json" {
		var body map[string]any
		// An empty body is no parameters (slack-go sends apps.connections.open so).
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return nil, "", fmt.Errorf("body is not a JSON object: %w", err)
		}
		for k, v := range body {
			params[k] = jsonParam(v)
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<20)
		if err := r.ParseForm(); err != nil {
			return nil, "", err
		}
		for k, v := range r.Form {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
	}
	token = params["token"]
	delete(params, "token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = h
	}
	return params, token, nil
}

// jsonParam turns a JSON value into the string a form would have carried.
func jsonParam(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64, bool:
		return fmt.Sprint(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// writes are the methods that write to a channel: RateLimitOnce and per-channel faults
// concern them.
var writes = []string{"chat.postMessage", "chat.update", "chat.delete"}

// handle decides the answer of a call; s.mu is held.
func (s *Server) handle(method string, p map[string]string, token string, now time.Time) answer {
	if q := s.next[method]; len(q) > 0 {
		f := q[0]
		s.next[method] = q[1:]
		a := answer{status: f.Status, retryAfter: f.RetryAfter, hang: f.Hang, raw: f.Body}
		if f.Body == "" && f.Error != "" {
			a.body = map[string]any{"ok": false, "error": f.Error}
		}
		if a.status == http.StatusTooManyRequests {
			s.limited[p["channel"]]++
		}
		return a
	}
	ch := p["channel"]
	for _, f := range s.always {
		if (f.method == "" || f.method == method) && (f.channel == "" || f.channel == ch) {
			return errAnswer(f.code)
		}
	}
	switch {
	case token == "":
		return errAnswer("not_authed")
	case method == "apps.connections.open":
		return s.connectionsOpen(token)
	case token == s.socket.appToken:
		return errAnswer("not_allowed_token_type")
	case token != s.token:
		return errAnswer("invalid_auth")
	}
	if slices.Contains(writes, method) {
		if d, ok := s.pauseNext[ch]; ok {
			delete(s.pauseNext, ch)
			s.pausedTil[ch] = now.Add(time.Duration(max(math.Ceil(d.Seconds()), 1)) * time.Second)
		}
		if until, ok := s.pausedTil[ch]; ok {
			if now.Before(until) {
				s.limited[ch]++
				return rateLimitedAnswer(until.Sub(now))
			}
			delete(s.pausedTil, ch)
		}
	}
	if method == "chat.postMessage" && s.rate > 0 {
		g := s.limits[ch]
		if g == nil {
			g = &gcra{}
			s.limits[ch] = g
		}
		if wait, ok := g.allow(now, s.rate, s.burst, s.tolerance); !ok {
			s.limited[ch]++
			return rateLimitedAnswer(wait)
		}
	}
	switch method {
	case "auth.test":
		return okAnswer(map[string]any{"url": "https://kdbridge-test.slack.com/", "team": "kdbridge test",
			"user": "kdbridge", "team_id": TeamID, "user_id": BotUID, "bot_id": BotID})
	case "chat.postMessage":
		return s.postMessage(p, now)
	case "chat.update":
		return s.update(p)
	case "chat.delete":
		return s.delete(p)
	case "conversations.list":
		return s.list(p)
	case "conversations.info":
		c, ok := s.visible(ch)
		if !ok {
			return errAnswer("channel_not_found")
		}
		return okAnswer(map[string]any{"channel": channelJSON(c)})
	case "users.info":
		return s.userInfo(p["user"])
	case "users.lookupByEmail":
		u, ok := s.users[strings.ToLower(strings.TrimSpace(p["email"]))]
		if !ok {
			return errAnswer("users_not_found")
		}
		return okAnswer(map[string]any{"user": map[string]any{"id": u.ID, "name": u.Name, "real_name": u.Name,
			"profile": map[string]any{"email": u.Email, "real_name": u.Name}}})
	}
	return errAnswer("unknown_method")
}

// visible returns the channel with this id if the bot can see it.
func (s *Server) visible(id string) (Channel, bool) {
	i := slices.IndexFunc(s.channels, func(c Channel) bool { return c.ID == id })
	if i < 0 || (s.channels[i].Private && s.channels[i].NotMember) {
		return Channel{}, false
	}
	return s.channels[i], true
}

// writable is "" when the bot may write to the channel, else the error code.
func (s *Server) writable(id string) string {
	c, ok := s.visible(id)
	switch {
	case !ok:
		return "channel_not_found"
	case c.Archived:
		return "is_archived"
	case c.NotMember:
		return "not_in_channel"
	}
	return ""
}

func checkText(p map[string]string) string {
	text := p["text"]
	switch {
	case strings.TrimSpace(text) == "" && p["blocks"] == "" && p["attachments"] == "":
		return "no_text"
	case len([]rune(text)) > MaxTextLength:
		return "msg_too_long"
	}
	return ""
}

func (s *Server) postMessage(p map[string]string, now time.Time) answer {
	ch := p["channel"]
	if code := s.writable(ch); code != "" {
		return errAnswer(code)
	}
	if code := checkText(p); code != "" {
		return errAnswer(code)
	}
	thread := p["thread_ts"]
	if thread != "" {
		// Slack threads have one level: the parent must be a top-level message.
		if m, ok := s.messages[ch+" "+thread]; !ok || m.ThreadTS != "" {
			return errAnswer("thread_not_found")
		}
	}
	s.seq++
	ts := fmt.Sprintf("1700000000.%06d", s.seq)
	m := &Message{Channel: ch, TS: ts, ThreadTS: thread, Text: p["text"], Username: p["username"],
		IconURL: p["icon_url"], PostedAt: now, BotID: BotID}
	key := ch + " " + ts
	s.messages[key] = m
	s.order = append(s.order, key)
	s.messageEventLocked(m)
	msg := map[string]any{"type": "message", "subtype": "bot_message", "text": m.Text, "ts": ts, "bot_id": BotID}
	if thread != "" {
		msg["thread_ts"] = thread
	}
	if m.Username != "" {
		msg["username"] = m.Username
	}
	return okAnswer(map[string]any{"channel": ch, "ts": ts, "message": msg})
}

// message finds a live message for chat.update and chat.delete.
func (s *Server) message(p map[string]string) (*Message, string) {
	ch := p["channel"]
	if code := s.writable(ch); code != "" {
		return nil, code
	}
	m, ok := s.messages[ch+" "+p["ts"]]
	if !ok || m.Deleted {
		return nil, "message_not_found"
	}
	return m, ""
}

func (s *Server) update(p map[string]string) answer {
	m, code := s.message(p)
	if code == "" {
		code = checkText(p)
	}
	if code != "" {
		return errAnswer(code)
	}
	prev := *m
	m.Text, m.Edited = p["text"], true
	s.changedEventLocked(prev, m)
	return okAnswer(map[string]any{"channel": m.Channel, "ts": m.TS, "text": m.Text})
}

func (s *Server) delete(p map[string]string) answer {
	m, code := s.message(p)
	if code != "" {
		return errAnswer(code)
	}
	m.Deleted = true
	s.deletedEventLocked(m)
	return okAnswer(map[string]any{"channel": m.Channel, "ts": m.TS})
}

// list serves conversations.list: the channels the bot can see of the asked types, a page at
// a time. The cursor is the offset, opaque to clients as Slack's is.
func (s *Server) list(p map[string]string) answer {
	types := p["types"]
	if types == "" {
		types = "public_channel"
	}
	want := map[string]bool{}
	for _, t := range strings.Split(types, ",") {
		switch t = strings.TrimSpace(t); t {
		case "public_channel", "private_channel", "mpim", "im":
			want[t] = true
		default:
			return errAnswer("invalid_types")
		}
	}
	var all []Channel
	for _, c := range s.channels {
		kind := "public_channel"
		if c.Private {
			kind = "private_channel"
		}
		if _, ok := s.visible(c.ID); ok && want[kind] && !(c.Archived && p["exclude_archived"] == "true") {
			all = append(all, c)
		}
	}
	limit := s.pageSize
	if l, err := strconv.Atoi(p["limit"]); err == nil && l > 0 && l < limit {
		limit = l
	}
	start := 0
	if cur := p["cursor"]; cur != "" {
		n, ok := strings.CutPrefix(cur, "offset:")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i > len(all) {
			return errAnswer("invalid_cursor")
		}
		start = i
	}
	end := min(start+limit, len(all))
	page := []map[string]any{}
	for _, c := range all[start:end] {
		page = append(page, channelJSON(c))
	}
	next := ""
	if end < len(all) {
		next = "offset:" + strconv.Itoa(end)
	}
	return okAnswer(map[string]any{"channels": page, "response_metadata": map[string]any{"next_cursor": next}})
}

func channelJSON(c Channel) map[string]any {
	return map[string]any{"id": c.ID, "name": c.Name, "is_channel": true, "is_private": c.Private,
		"is_archived": c.Archived, "is_member": !c.NotMember}
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// gcra is a token bucket kept as the theoretical arrival time of the next conforming post
// (the generic cell rate algorithm), so that a tolerance for jitter is one comparison.
type gcra struct{ tat time.Time }

// allow admits a post at now, or says how long until one would be admitted.
func (g *gcra) allow(now time.Time, perSecond float64, burst int, tolerance time.Duration) (time.Duration, bool) {
	interval := time.Duration(float64(time.Second) / perSecond)
	tat := g.tat
	if tat.Before(now) {
		tat = now
	}
	ahead := tat.Sub(now) - time.Duration(burst-1)*interval
	if ahead > tolerance {
		return ahead, false
	}
	g.tat = tat.Add(interval)
	return 0, true
}
