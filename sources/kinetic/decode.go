package kinetic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
)

// Kinds of bad input, the keys of Status.BadInput and of the rate-limited log lines.
const (
	badMalformed    = "malformed_json"     // not a JSON object
	badMissingField = "missing_field"      // a frame or payload lacks what identifies it
	badUnknownEvent = "unknown_event"      // an event name this source does not know
	badPayload      = "bad_payload"        // a payload of the wrong shape
	badDiscussion   = "unknown_discussion" // an event for a discussion not subscribed to
	badOversized    = "oversized_frame"    // a frame above read_limit (the connection is dropped)
	badREST         = "bad_rest_message"   // a message from the REST API that does not decode
)

// badInputError is a frame or payload that cannot be used. It is counted and logged, never
// fatal.
type badInputError struct {
	kind string
	msg  string
}

func (e *badInputError) Error() string { return e.kind + ": " + e.msg }

func bad(kind, format string, args ...any) error {
	return &badInputError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// badKind returns the kind of a bad-input error, or "" for any other error.
func badKind(err error) string {
	var b *badInputError
	if errors.As(err, &b) {
		return b.kind
	}
	return ""
}

// Topic Hub event names (server → client).
const (
	evAckOK        = "ack-ok"
	evAckError     = "ack-error"
	evPresence     = "presence"
	evUnsubscribed = "unsubscribed"
)

// topicEvents maps the per-topic events of protocol §3.6 to canonical event types;
// "unsubscribed", the fourteenth, is handled by the connection.
var topicEvents = map[string]string{
	"message:created":     bridge.MessageCreated,
	"message:updated":     bridge.MessageUpdated,
	"message:deleted":     bridge.MessageDeleted,
	"participant:created": bridge.ParticipantCreated,
	"participant:updated": bridge.ParticipantUpdated,
	"participant:deleted": bridge.ParticipantDeleted,
	"invitation:created":  bridge.InvitationCreated,
	"invitation:updated":  bridge.InvitationUpdated,
	"invitation:deleted":  bridge.InvitationDeleted,
	"relatedItem:created": bridge.RelatedItemCreated,
	"relatedItem:deleted": bridge.RelatedItemDeleted,
	"discussion:updated":  bridge.DiscussionUpdated,
	"discussion:deleted":  bridge.DiscussionDeleted,
}

const topicPrefix = "discussions/discussion/"

// discussionTopic is the Topic Hub topic of a discussion.
func discussionTopic(id string) string { return topicPrefix + id }

// topicDiscussion returns the discussion id of a discussion topic.
func topicDiscussion(topic string) (string, bool) {
	id, ok := strings.CutPrefix(topic, topicPrefix)
	return id, ok && id != ""
}

// frame is one Topic Hub envelope from the server.
type frame struct {
	Topic   string
	Event   string
	Ref     string
	Payload json.RawMessage // nil when absent or null; JSON-encoded strings already unwrapped
}

// decodeFrame parses a server frame. It checks the envelope only; payloads are checked by
// whoever consumes them. The frame is read in one pass (scanFrame) when it has the usual
// shape, else by encoding/json (decodeFrameJSON). Nothing of data is kept: the connection
// reuses its buffer.
func decodeFrame(data []byte) (frame, error) {
	if f, ok := scanFrame(data); ok {
		return f, nil
	}
	return decodeFrameJSON(data)
}

// decodeFrameJSON is decodeFrame by encoding/json.
func decodeFrameJSON(data []byte) (frame, error) {
	var w struct {
		Topic   json.RawMessage `json:"topic"`
		Event   json.RawMessage `json:"event"`
		Ref     json.RawMessage `json:"ref"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return frame{}, bad(badMalformed, "%v", err)
	}
	var f frame
	var ok bool
	if f.Event, ok = scalarString(w.Event); !ok || f.Event == "" {
		return frame{}, bad(badMissingField, "frame without event")
	}
	if f.Topic, ok = scalarString(w.Topic); !ok {
		return frame{}, bad(badMissingField, "frame %s: topic is not a string", f.Event)
	}
	if f.Ref, ok = scalarString(w.Ref); !ok {
		return frame{}, bad(badMissingField, "frame %s: ref is not a string", f.Event)
	}
	f.Payload = unwrapPayload(w.Payload)
	return f, nil
}

// scalarString reads a string (or, leniently, a number) field; absent and null are "".
func scalarString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if v, ok := plainString(raw); ok {
		return v, true
	}
	var s lenientString
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return string(s), true
}

// unwrapPayload returns the payload as a JSON value. Servers before 2018 sent object payloads
// as JSON-encoded strings (protocol §3.1); those are decoded once more. A string that does
// not hold an object or array ("Unauthorized") stays a string.
func unwrapPayload(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] != '"' {
		return raw
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return raw
	}
	inner := bytes.TrimSpace([]byte(s))
	if len(inner) > 0 && (inner[0] == '{' || inner[0] == '[') && json.Valid(inner) {
		return inner
	}
	return raw
}

// plainString returns the value of b if b is a JSON string without escapes (what ids, names
// and timestamps are), without another pass of encoding/json: the bytes between the quotes
// are then the value, as json.Unmarshal would return it. Anything else (escapes, invalid
// UTF-8, which encoding/json replaces) is for encoding/json.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	inner := b[1 : len(b)-1]
	ascii := true
	for _, c := range inner {
		switch {
		case c == '"' || c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

// lenientString accepts a JSON string, number or bool, so that an id sent as a number is
// still an id.
type lenientString string

func (s *lenientString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*s = ""
	case b[0] == '"':
		if v, ok := plainString(b); ok {
			*s = lenientString(v)
			return nil
		}
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = lenientString(v)
	case b[0] == '{' || b[0] == '[':
		return errors.New("not a scalar")
	default:
		*s = lenientString(b)
	}
	return nil
}

// wireUser is a user reference: {"username","displayName","email","unknown"}; a bare string
// is taken as a username.
type wireUser struct {
	Username    lenientString `json:"username"`
	DisplayName lenientString `json:"displayName"`
	Email       lenientString `json:"email"`
	Unknown     bool          `json:"unknown"`
}

func (u *wireUser) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		name, ok := plainString(b)
		if !ok {
			if err := json.Unmarshal(b, &name); err != nil {
				return err
			}
		}
		*u = wireUser{Username: lenientString(name)}
		return nil
	}
	type plain wireUser
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*u = wireUser(p)
	return nil
}

func (u wireUser) user() bridge.User {
	return bridge.User{Username: string(u.Username), DisplayName: string(u.DisplayName), Email: string(u.Email)}
}

// decodeUser decodes a user reference leniently; anything else gives the zero User.
func decodeUser(raw json.RawMessage) bridge.User {
	var u wireUser
	if len(raw) == 0 || json.Unmarshal(raw, &u) != nil {
		return bridge.User{}
	}
	return u.user()
}

// parseTime reads a timestamp leniently: RFC 3339 with or without fractional seconds, with or
// without a zone (UTC then), a space instead of the T, or a number of epoch milliseconds
// (seconds when small). Anything else is the zero time.
func parseTime(raw json.RawMessage) time.Time {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}
	}
	if raw[0] != '"' {
		n, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || n <= 0 || n > 1e15 {
			return time.Time{}
		}
		if n < 1e11 { // seconds: 1e11 s is the year 5138, 1e11 ms is 1973
			return time.UnixMilli(int64(n * 1000)).UTC()
		}
		return time.UnixMilli(int64(n)).UTC()
	}
	s, ok := plainString(raw)
	if !ok && json.Unmarshal(raw, &s) != nil {
		return time.Time{}
	}
	return parseTimeString(s)
}

var timeLayouts = []string{
	time.RFC3339Nano, // also accepts no fraction
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

func parseTimeString(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// decodeTokens reads content tokens leniently: an array of {"type","name","value"} objects,
// or that array JSON-encoded in a string. Elements that are not tokens are skipped.
func decodeTokens(raw json.RawMessage) []bridge.Token {
	raw = unwrapPayload(raw)
	if len(raw) > 0 && raw[0] == '{' {
		raw = append(append(json.RawMessage{'['}, raw...), ']') // one token without its array
	}
	var elems []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &elems) != nil {
		return nil
	}
	tokens := make([]bridge.Token, 0, len(elems))
	for _, e := range elems {
		var w struct {
			Type  lenientString   `json:"type"`
			Name  lenientString   `json:"name"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(e, &w) != nil || w.Type == "" {
			continue
		}
		t := bridge.Token{Type: string(w.Type), Name: string(w.Name)}
		if v := bytes.TrimSpace(w.Value); len(v) > 0 && string(v) != "null" {
			t.Value = append(json.RawMessage(nil), v...)
		}
		tokens = append(tokens, t)
	}
	return tokens
}

// wireAttachment is the value of an attachment token.
type wireAttachment struct {
	DocumentID  lenientString `json:"documentId"`
	ThumbnailID lenientString `json:"thumbnailId"`
	Filename    lenientString `json:"filename"`
	ContentType lenientString `json:"contentType"`
	Size        lenientString `json:"size"`
}

func decodeAttachment(raw json.RawMessage) (wireAttachmentInfo, bool) {
	var w wireAttachment
	if json.Unmarshal(raw, &w) != nil || (w.Filename == "" && w.DocumentID == "") {
		return wireAttachmentInfo{}, false
	}
	size, _ := strconv.ParseFloat(string(w.Size), 64)
	if size < 0 || size > 1<<62 {
		size = 0
	}
	name := string(w.Filename)
	if name == "" {
		name = string(w.DocumentID)
	}
	return wireAttachmentInfo{
		DocumentID:  string(w.DocumentID),
		Filename:    name,
		ContentType: string(w.ContentType),
		Size:        int64(size),
	}, true
}

type wireAttachmentInfo struct {
	DocumentID, Filename, ContentType string
	Size                              int64
}

// wireMessage is a Message (protocol §5.3). Sub-objects stay raw so that one field of the
// wrong type costs that field, not the message. A field that can fail the message (the
// lenientStrings) must also be checked by readMessageKeys: FuzzMessageKeys holds them to it.
type wireMessage struct {
	ID        lenientString   `json:"id"`
	VersionID lenientString   `json:"versionId"`
	Type      lenientString   `json:"type"`
	Action    lenientString   `json:"action"`
	Content   json.RawMessage `json:"content"`
	CreatedBy json.RawMessage `json:"createdBy"`
	CreatedAt json.RawMessage `json:"createdAt"`
	UpdatedAt json.RawMessage `json:"updatedAt"`
	Parent    json.RawMessage `json:"parent"`
	ParentID  json.RawMessage `json:"parentId"`
}

// decoder turns Kinetic payloads into bridge events for one source.
type decoder struct {
	source string
	space  string // the space URL, without a trailing slash

	// deferEvents makes classify leave an event's payload undecoded (lazy): the worker of
	// its discussion decodes it when it hands the event over (resolve). Live events can
	// arrive faster than the store takes them and wait in their discussions' queues; a
	// queued payload costs a third of a decoded event. And the goroutine reading the
	// connection (which also paces the subscribes) only sorts frames: at start-up every
	// subscribe brings a participant event and a "joined" message, whose decoding (a
	// participant's version is a hash of its canonical payload) would otherwise hold up the
	// acks behind it.
	deferEvents bool
}

// discussionURL is where a person opens the discussion. Best guess: the kinops bundle routes
// discussions as #/discussions/<id>; nothing in the protocol names a canonical link.
func (d decoder) discussionURL(id string) string {
	return d.space + "/#/discussions/" + url.PathEscape(id)
}

// fileURL is the download URL of an attachment (protocol §4.1): the filename with spaces
// replaced by underscores, URL-escaped, as the browser client builds it.
func (d decoder) fileURL(discussion, message, document, filename string) string {
	return d.space + "/app/discussions/api/v1/discussions/" + url.PathEscape(discussion) +
		"/messages/" + url.PathEscape(message) + "/files/" + url.PathEscape(document) + "/" +
		url.PathEscape(strings.ReplaceAll(filename, " ", "_"))
}

// message decodes a Message payload. The payload is decoded in one pass into typed fields
// (typedMessage); only when that fails (a field of an unexpected shape: content as a string,
// a user as a bare name, an id as an object…) is it decoded again field by field
// (wireMessage), where one field of the wrong type costs that field, not the message. Both
// give the same message whenever the typed pass succeeds.
func (d decoder) message(discussion string, raw json.RawMessage) (bridge.Message, error) {
	p, err := parseMessage(raw)
	if err != nil {
		return bridge.Message{}, err
	}
	if p.id == "" {
		return bridge.Message{}, bad(badMissingField, "message without id")
	}
	m := bridge.Message{
		ID:        p.id,
		VersionID: p.versionID,
		ParentID:  p.parentID,
		Action:    p.action,
		Content:   p.content,
		Author:    p.author,
		CreatedAt: p.createdAt,
		UpdatedAt: p.updatedAt,
		Kind:      bridge.KindUser,
	}
	if strings.EqualFold(p.typ, "System") || (p.typ == "" && p.action != "") {
		m.Kind = bridge.KindSystem
	}
	if m.Content == nil {
		m.Content = []bridge.Token{}
	}
	if m.Kind == bridge.KindSystem {
		if s, ok := renderSystem(m.Action, m.Content); ok {
			m.Text = s
		}
	}
	if m.Text == "" {
		m.Text = renderContent(m.Content)
	}
	for _, t := range m.Content {
		if t.Type != "attachment" {
			continue
		}
		a, ok := decodeAttachment(t.Value)
		if !ok {
			continue
		}
		att := bridge.Attachment{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size}
		if a.DocumentID != "" {
			att.URL = d.fileURL(discussion, m.ID, a.DocumentID, a.Filename)
		}
		m.Attachments = append(m.Attachments, att)
	}
	return m, nil
}

// parseMessage reads a Message payload: in one pass (scanMessage) when it has the usual
// shape, else by the typed pass of encoding/json, else by the lenient one.
func parseMessage(raw json.RawMessage) (parsedMessage, error) {
	if p, ok := scanMessage(raw); ok {
		return p, nil
	}
	var t typedMessage
	if json.Unmarshal(raw, &t) == nil {
		return t.parsed(), nil
	}
	return lenientMessage(raw)
}

// parsedMessage is what message reads from a payload, by either path.
type parsedMessage struct {
	id, versionID, typ, action, parentID string
	content                              []bridge.Token
	author                               bridge.User
	createdAt, updatedAt                 time.Time
}

// lenientMessage reads a Message payload field by field (see wireMessage).
func lenientMessage(raw json.RawMessage) (parsedMessage, error) {
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return parsedMessage{}, bad(badPayload, "message: %v", err)
	}
	p := parsedMessage{
		id:        string(w.ID),
		versionID: string(w.VersionID),
		typ:       string(w.Type),
		action:    string(w.Action),
		content:   decodeTokens(w.Content),
		author:    decodeUser(w.CreatedBy),
		createdAt: parseTime(w.CreatedAt),
		updatedAt: parseTime(w.UpdatedAt),
	}
	p.parentID, _ = scalarString(w.ParentID)
	if p.parentID == "" && len(w.Parent) > 0 {
		var pr struct {
			ID lenientString `json:"id"`
		}
		if json.Unmarshal(w.Parent, &pr) == nil {
			p.parentID = string(pr.ID)
		} else if s, ok := scalarString(w.Parent); ok {
			p.parentID = s
		}
	}
	return p, nil
}

// typedMessage is a Message payload in the shape servers send it, decoded in one pass. Each
// field decodes as the lenient path reads it, or fails (and the lenient path runs). Every
// UnmarshalJSON below replaces its value, so a key given twice means its last value, as in
// wireMessage.
type typedMessage struct {
	ID        lenientString `json:"id"`
	VersionID lenientString `json:"versionId"`
	Type      lenientString `json:"type"`
	Action    lenientString `json:"action"`
	Content   typedTokens   `json:"content"`
	CreatedBy wireUser      `json:"createdBy"`
	CreatedAt typedTime     `json:"createdAt"`
	UpdatedAt typedTime     `json:"updatedAt"`
	Parent    typedParent   `json:"parent"`
	ParentID  lenientString `json:"parentId"`
}

func (t *typedMessage) parsed() parsedMessage {
	p := parsedMessage{
		id:        string(t.ID),
		versionID: string(t.VersionID),
		typ:       string(t.Type),
		action:    string(t.Action),
		parentID:  string(t.ParentID),
		content:   t.Content,
		author:    t.CreatedBy.user(),
		createdAt: time.Time(t.CreatedAt),
		updatedAt: time.Time(t.UpdatedAt),
	}
	if p.parentID == "" {
		p.parentID = string(t.Parent)
	}
	return p
}

// typedTokens is content as an array of token objects (or null). Anything else — content
// JSON-encoded in a string, one token without its array, an element that is not an object —
// fails, for decodeTokens to read leniently.
type typedTokens []bridge.Token

func (ts *typedTokens) UnmarshalJSON(b []byte) error {
	*ts = nil
	if string(b) == "null" {
		return nil
	}
	var elems []struct {
		Type  lenientString   `json:"type"`
		Name  lenientString   `json:"name"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &elems); err != nil {
		return err
	}
	tokens := make([]bridge.Token, 0, len(elems))
	for _, e := range elems {
		if e.Type == "" {
			continue // as decodeTokens: not a token
		}
		t := bridge.Token{Type: string(e.Type), Name: string(e.Name)}
		if v := bytes.TrimSpace(e.Value); len(v) > 0 && string(v) != "null" {
			t.Value = v // encoding/json copied it already
		}
		tokens = append(tokens, t)
	}
	*ts = tokens
	return nil
}

// typedTime is a timestamp read as parseTime reads it; it never fails.
type typedTime time.Time

func (t *typedTime) UnmarshalJSON(b []byte) error {
	*t = typedTime(parseTime(b))
	return nil
}

// typedParent is the id of a parent given as {"id": …} (or null). A parent given as a bare id
// fails, for the lenient path.
type typedParent string

func (p *typedParent) UnmarshalJSON(b []byte) error {
	*p = ""
	if string(b) == "null" {
		return nil
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("parent is not an object")
	}
	var v struct {
		ID lenientString `json:"id"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = typedParent(v.ID)
	return nil
}

// decoded is a decoded per-topic event.
type decoded struct {
	event   bridge.Event
	title   string              // discussion events: the title in the payload
	related *bridge.RelatedItem // relatedItem events: the item

	// lazy, when its payload is set, is an event not decoded yet (event is empty): see
	// decoder.deferEvents.
	lazy lazyEvent
}

// lazyEvent is a live event as it waits in its discussion's queue: its payload (the frame's
// own copy) is a third of the decoded event's size. It is kept by value (64 bytes), in the
// queue and in the batch taken from it, so that a queued live event allocates nothing but
// its payload until it is decoded.
type lazyEvent struct {
	name     string // as Kinetic spells it
	payload  json.RawMessage
	received time.Time
}

// resolve decodes an event that classify left undecoded. An error is bad input, as classify
// would have reported it.
func (d decoder) resolve(discussion string, l lazyEvent) (decoded, error) {
	d.deferEvents = false
	return d.event(discussion, l.name, l.payload, l.received)
}

// event decodes the payload of a per-topic event (name as Kinetic spells it) in discussion,
// received at received. The event's Discussion carries the id and URL; the source adds the
// title it knows.
func (d decoder) event(discussion, name string, payload json.RawMessage, received time.Time) (decoded, error) {
	typ, ok := topicEvents[name]
	if !ok {
		return decoded{}, bad(badUnknownEvent, "event %q", name)
	}
	payload = unwrapPayload(payload)
	if len(payload) == 0 || payload[0] != '{' {
		return decoded{}, bad(badPayload, "%s: payload is not an object", name)
	}
	if d.deferEvents {
		return decoded{lazy: lazyEvent{name: name, payload: payload, received: received}}, nil
	}
	out := decoded{}
	switch typ {
	case bridge.MessageCreated, bridge.MessageUpdated, bridge.MessageDeleted:
		// Decoded as a message only: the fields map below would be a second parse of the
		// payload for nothing.
		m, err := d.message(discussion, payload)
		if err != nil {
			return decoded{}, err
		}
		out.event = d.messageEvent(discussion, typ, m, payload, received)
		return out, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return decoded{}, bad(badPayload, "%s: %v", name, err)
	}
	ev := bridge.Event{
		Type:       typ,
		Source:     d.source,
		Discussion: bridge.Discussion{ID: discussion, URL: d.discussionURL(discussion)},
		Raw:        append(json.RawMessage(nil), payload...),
	}
	var object, version string
	switch typ {
	case bridge.ParticipantCreated, bridge.ParticipantUpdated, bridge.ParticipantDeleted:
		object = decodeUser(fields["user"]).Username
		if object == "" {
			object, _ = scalarString(fields["username"])
		}
	case bridge.InvitationCreated, bridge.InvitationUpdated, bridge.InvitationDeleted:
		object = decodeUser(fields["user"]).Username
		if object == "" {
			object, _ = scalarString(fields["email"])
		}
	case bridge.RelatedItemCreated, bridge.RelatedItemDeleted:
		t, _ := scalarString(fields["type"])
		k, _ := scalarString(fields["key"])
		if t != "" && k != "" {
			object = t + "/" + k
			out.related = &bridge.RelatedItem{Type: t, Key: k}
		}
	case bridge.DiscussionUpdated, bridge.DiscussionDeleted:
		object, _ = scalarString(fields["id"])
		if object == "" {
			object = discussion
		}
		out.title, _ = scalarString(fields["title"])
		version, _ = scalarString(fields["versionId"])
		if version == "" {
			version, _ = scalarString(fields["updatedAt"])
		}
	}
	if object == "" {
		return decoded{}, bad(badMissingField, "%s: payload does not identify its object", name)
	}
	if version == "" {
		version = payloadHash(payload)
	}
	ev.Time = firstTime(parseTime(fields["updatedAt"]), parseTime(fields["createdAt"]), received)
	ev.ID = bridge.EventID(d.source, discussion, object, version, typ)
	out.event = ev
	return out, nil
}

// messageEvent makes the event of type typ for message m, whose payload is raw. The event
// keeps raw as its Raw: callers pass bytes of their own (a frame's payload and a REST page's
// messages are copies already), which nothing changes afterwards.
func (d decoder) messageEvent(discussion, typ string, m bridge.Message, raw json.RawMessage, received time.Time) bridge.Event {
	return bridge.Event{
		ID:         bridge.EventID(d.source, discussion, m.ID, messageVersion(typ, m, raw), typ),
		Type:       typ,
		Source:     d.source,
		Time:       firstTime(m.UpdatedAt, m.CreatedAt, received),
		Discussion: bridge.Discussion{ID: discussion, URL: d.discussionURL(discussion)},
		Message:    &m,
		Raw:        raw,
	}
}

// messageVersion is the version part of a message event's id. A message is created once, so
// message.created is keyed by the message alone: the live event and a catch-up of an edited
// message then carry the same id. Edits are keyed by versionId; a delete by its versionId or,
// lacking one, by its payload.
func messageVersion(typ string, m bridge.Message, payload json.RawMessage) string {
	switch {
	case typ == bridge.MessageCreated:
		return ""
	case m.VersionID != "":
		return m.VersionID
	case typ == bridge.MessageUpdated && !m.UpdatedAt.IsZero():
		return m.UpdatedAt.Format(time.RFC3339Nano)
	default:
		return payloadHash(payload)
	}
}

// payloadHash is a short hash of the canonical form of a JSON payload (object keys sorted,
// insignificant space removed), for events whose objects carry no version.
func payloadHash(payload json.RawMessage) string {
	var v any
	canonical := []byte(payload)
	if json.Unmarshal(payload, &v) == nil {
		if b, err := json.Marshal(v); err == nil {
			canonical = b
		}
	}
	sum := sha256.Sum256(canonical)
	return "h" + hex.EncodeToString(sum[:8])
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// Kinds of server frames, as classify sorts them.
const (
	frameAck          = "ack"          // ack-ok / ack-error
	framePresence     = "presence"     // who is looking; of no interest to a mirror
	frameUnsubscribed = "unsubscribed" // the server ended a subscription
	frameEvent        = "event"        // one of the 13 per-topic events
)

// hubFrame is a classified server frame.
type hubFrame struct {
	kind       string
	discussion string  // unsubscribed and event frames
	decoded    decoded // event frames
}

// classify sorts a decoded frame and, for per-topic events, decodes the payload.
func (d decoder) classify(f frame, received time.Time) (hubFrame, error) {
	switch f.Event {
	case evAckOK, evAckError:
		return hubFrame{kind: frameAck}, nil
	case evPresence:
		return hubFrame{kind: framePresence}, nil
	case evUnsubscribed:
		// The discussion is named by payload.topic; the frame's own topic is "topichub".
		var topic string
		if len(f.Payload) > 0 && f.Payload[0] == '{' {
			var p struct {
				Topic lenientString `json:"topic"`
			}
			if json.Unmarshal(f.Payload, &p) == nil {
				topic = string(p.Topic)
			}
		}
		id, ok := topicDiscussion(topic)
		if !ok {
			id, ok = topicDiscussion(f.Topic)
		}
		if !ok {
			return hubFrame{}, bad(badMissingField, "unsubscribed without a discussion topic")
		}
		return hubFrame{kind: frameUnsubscribed, discussion: id}, nil
	}
	if _, known := topicEvents[f.Event]; !known {
		return hubFrame{}, bad(badUnknownEvent, "event %q (topic %q)", truncate(f.Event, 100), truncate(f.Topic, 100))
	}
	id, ok := topicDiscussion(f.Topic)
	if !ok {
		return hubFrame{}, bad(badMissingField, "%s without a discussion topic", f.Event)
	}
	ev, err := d.event(id, f.Event, f.Payload, received)
	if err != nil {
		return hubFrame{}, err
	}
	return hubFrame{kind: frameEvent, discussion: id, decoded: ev}, nil
}

// messageKeys is what a catch-up needs of a message while it pages back: which message, and
// when it was created and edited.
type messageKeys struct {
	id, versionID        string
	createdAt, updatedAt time.Time
}

// readMessageKeys reads a message payload's keys as message reads them, without decoding
// its content, author or parent. It fails (ok false) where message's typed pass would need
// its lenient one for these fields, or the message has no id: message then decides. It
// accepts only what message accepts (FuzzMessageKeys): message fails on a payload that is
// not an object, without an id, or with id, versionId, type or action not a scalar (see
// wireMessage), so type and action are checked here too, though their values are not
// needed. A catch-up judges each message once, when it reads the page: one it cannot hand
// over is never collected, nor taken as the newest.
func readMessageKeys(raw json.RawMessage) (messageKeys, bool) {
	if k, ok := scanMessageKeys(raw); ok {
		return k, k.id != ""
	}
	var t struct {
		ID        lenientString `json:"id"`
		VersionID lenientString `json:"versionId"`
		CreatedAt typedTime     `json:"createdAt"`
		UpdatedAt typedTime     `json:"updatedAt"`
		Type      lenientString `json:"type"`   // checked only: message rejects a non-scalar
		Action    lenientString `json:"action"` // checked only: message rejects a non-scalar
	}
	if json.Unmarshal(raw, &t) != nil || t.ID == "" {
		return messageKeys{}, false
	}
	return messageKeys{id: string(t.ID), versionID: string(t.VersionID), createdAt: time.Time(t.CreatedAt), updatedAt: time.Time(t.UpdatedAt)}, true
}
