// Package bridge holds the types and the small contracts shared by sources, sinks and the
// delivery machinery: what an event is, how a source hands events over, how a sink delivers
// one, and how a sink says whether a failure is worth retrying. It imports no adapter.
package bridge

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"time"
)

// Canonical event types. Kinetic's "message:created" becomes "message.created", and so on.
const (
	MessageCreated     = "message.created"
	MessageUpdated     = "message.updated"
	MessageDeleted     = "message.deleted"
	ParticipantCreated = "participant.created"
	ParticipantUpdated = "participant.updated"
	ParticipantDeleted = "participant.deleted"
	InvitationCreated  = "invitation.created"
	InvitationUpdated  = "invitation.updated"
	InvitationDeleted  = "invitation.deleted"
	RelatedItemCreated = "relatedItem.created"
	RelatedItemDeleted = "relatedItem.deleted"
	DiscussionUpdated  = "discussion.updated"
	DiscussionDeleted  = "discussion.deleted"
)

// EventTypes lists every canonical event type, in a stable order.
var EventTypes = []string{
	MessageCreated, MessageUpdated, MessageDeleted,
	ParticipantCreated, ParticipantUpdated, ParticipantDeleted,
	InvitationCreated, InvitationUpdated, InvitationDeleted,
	RelatedItemCreated, RelatedItemDeleted,
	DiscussionUpdated, DiscussionDeleted,
}

// DefaultRouteEvents are the event types a route selects when it names none.
var DefaultRouteEvents = []string{MessageCreated, MessageUpdated, MessageDeleted}

// Message kinds.
const (
	KindUser   = "user"
	KindSystem = "system"
)

// Event is one thing that happened in a Kinetic discussion, in the canonical form that every
// sink receives. Its ID is stable across retries, reconnects, catch-up and restarts.
type Event struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Source     string          `json:"source"`
	Time       time.Time       `json:"timestamp"`
	Discussion Discussion      `json:"discussion"`
	Message    *Message        `json:"message,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty"`
	// Inbound is set on events that come from a chat into Kinetic (two-way Slack): where
	// they were typed, and which Kinetic source the discussion belongs to. Such events are
	// routed only by routes that name their source (see Router).
	Inbound *Inbound `json:"inbound,omitempty"`
}

// Inbound says where an event typed in a chat came from and where in Kinetic it goes.
type Inbound struct {
	Kinetic  string `json:"kinetic_source"`      // the Kinetic source the discussion belongs to
	Sink     string `json:"sink"`                // the Slack sink whose mirrored thread it is in
	Channel  string `json:"channel"`             // the Slack channel id
	TS       string `json:"ts"`                  // the Slack message's ts: its id in the channel
	ThreadTS string `json:"thread_ts,omitempty"` // the thread it was typed in
}

// Discussion identifies the discussion an event belongs to.
type Discussion struct {
	ID    string `json:"id"`
	Title string `json:"title,omitempty"`
	URL   string `json:"url,omitempty"`
	// Related lists what the discussion is about (a Submission, a Form, a Team…), as the
	// source last read it.
	Related []RelatedItem `json:"related_items,omitempty"`
}

// Message is a Kinetic discussion message in canonical form.
type Message struct {
	ID          string       `json:"id"`
	VersionID   string       `json:"version_id,omitempty"`
	ParentID    string       `json:"parent_id,omitempty"`
	Kind        string       `json:"kind"`
	Action      string       `json:"action,omitempty"`
	Text        string       `json:"text"`
	Content     []Token      `json:"content"`
	Author      User         `json:"author"`
	CreatedAt   time.Time    `json:"created_at,omitzero"`
	UpdatedAt   time.Time    `json:"updated_at,omitzero"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Token is one content token of a message, kept as Kinetic sent it.
type Token struct {
	Type  string          `json:"type"`
	Name  string          `json:"name,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// User is a Kinetic user reference.
type User struct {
	Username    string `json:"username,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
}

// Name is the best human-readable name of the user.
func (u User) Name() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Username
}

// Attachment is a file attached to a message.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size"`
	URL         string `json:"url,omitempty"`
}

// Author is the user who caused the event: the message author for message events.
func (e *Event) Author() User {
	if e.Message != nil {
		return e.Message.Author
	}
	return User{}
}

// EventID derives the stable id of an event from what identifies it. The same inputs give the
// same id in every process, so a redelivery carries the same idempotency key. The id contains
// no '.', as Standard Webhooks requires of webhook-id.
func EventID(source, discussion, object, version, typ string) string {
	var buf [256]byte // the parts of a Kinetic message event fit: no allocation
	b := buf[:0]
	for _, part := range []string{source, discussion, object, version, typ} {
		b = append(append(b, part...), 0)
	}
	sum := sha256.Sum256(b)
	var id [4 + 32]byte // base32 of 20 bytes is 32 characters
	copy(id[:], "evt_")
	eventIDEncoding.Encode(id[4:], sum[:20])
	return string(id[:])
}

// eventIDEncoding is base32 (RFC 4648) in lower case without padding: ids were made with the
// standard alphabet and lowered, which gives the same characters.
var eventIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
