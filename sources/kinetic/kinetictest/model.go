package kinetictest

import (
	"encoding/json"
	"time"
)

// timeLayout is the timestamp format of every object the simulator returns: UTC with
// milliseconds, as the reference's examples show.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// User is a user reference as it appears in createdBy, tokens and participants (§5.2).
type User struct {
	Username    string `json:"username"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email"`
}

// ContentToken is one element of a message's content (§5.4). Value is kept as raw JSON so
// that whatever a client posts is stored and echoed byte for byte.
type ContentToken struct {
	Type  string          `json:"type"`
	Name  string          `json:"name,omitempty"`
	Value json.RawMessage `json:"value"`
}

// TextToken returns a "text" token.
func TextToken(text string) ContentToken {
	return ContentToken{Type: "text", Value: mustJSON(text)}
}

// UserToken returns a "user" token, named when name is not empty (system messages).
func UserToken(name string, u User) ContentToken {
	return ContentToken{Type: "user", Name: name, Value: mustJSON(u)}
}

// jsonToken returns a "json" token whose value is a JSON-encoded string, as the system
// messages' joinedAsAdmin / previousValues tokens are.
func jsonToken(name string, v any) ContentToken {
	return ContentToken{Type: "json", Name: name, Value: mustJSON(string(mustJSON(v)))}
}

// messageToken returns a "message" token carrying a message-like object.
func messageToken(name string, m Message) ContentToken {
	return ContentToken{Type: "message", Name: name, Value: mustJSON(m)}
}

// Message types.
const (
	MessageTypeUser   = "User"
	MessageTypeSystem = "System"
)

// Message is a discussion message exactly as it appears on the wire (§5.3).
type Message struct {
	ID        string         `json:"id"`
	VersionID string         `json:"versionId"`
	Type      string         `json:"type"`
	Action    string         `json:"action,omitempty"` // system messages only
	Content   []ContentToken `json:"content"`
	CreatedBy User           `json:"createdBy"`
	CreatedAt string         `json:"createdAt"`
	UpdatedAt string         `json:"updatedAt"`
	UpdatedBy User           `json:"updatedBy"`
	// Parent is null for top-level messages; for replies it is the parent's current
	// version, or {"id":…, "unknown":true} once the parent is deleted.
	Parent   *MessageParent `json:"parent"`
	ParentID string         `json:"parentId,omitempty"`
}

// Text returns the concatenated values of the message's text tokens.
func (m Message) Text() string {
	var s string
	for _, t := range m.Content {
		if t.Type != "text" {
			continue
		}
		var v string
		if json.Unmarshal(t.Value, &v) == nil {
			s += v
		}
	}
	return s
}

// MessageParent is the parent embedded in a reply (§5.3).
type MessageParent struct {
	ID        string         `json:"id"`
	VersionID string         `json:"versionId,omitempty"`
	Type      string         `json:"type,omitempty"`
	Content   []ContentToken `json:"content,omitempty"`
	CreatedBy *User          `json:"createdBy,omitempty"`
	CreatedAt string         `json:"createdAt,omitempty"`
	UpdatedAt string         `json:"updatedAt,omitempty"`
	Unknown   bool           `json:"unknown,omitempty"`
}

// MessagesPage is one newest-first page of messages with the cursor for the next (older)
// page; NextPageToken is null on the last page (§4.2).
type MessagesPage struct {
	Messages      []Message `json:"messages"`
	NextPageToken *string   `json:"nextPageToken"`
}

// Discussion is a discussion exactly as it appears on the wire (§5.1).
type Discussion struct {
	ID           string              `json:"id"`
	VersionID    string              `json:"versionId"`
	Title        string              `json:"title"`
	Description  string              `json:"description"`
	IsArchived   bool                `json:"isArchived"`
	IsPrivate    bool                `json:"isPrivate"`
	JoinPolicy   *JoinPolicy         `json:"joinPolicy"`
	OwningUsers  []OwningUser        `json:"owningUsers"`
	OwningTeams  []OwningTeam        `json:"owningTeams"`
	Participants []Participant       `json:"participants"`
	Invitations  []Invitation        `json:"invitations"`
	RelatedItems []RelatedItemRecord `json:"relatedItems"`
	CreatedAt    string              `json:"createdAt"`
	CreatedBy    User                `json:"createdBy"`
	UpdatedAt    string              `json:"updatedAt"`
	UpdatedBy    User                `json:"updatedBy"`
	// MessagesPage holds the newest messages; present on every discussion the server
	// returns (the browser client builds every discussion with the same constructor).
	MessagesPage *MessagesPage `json:"messagesPage,omitempty"`
}

// JoinPolicy names the security policy that lets users join a discussion.
type JoinPolicy struct {
	Name string `json:"name"`
}

// OwningUser is an element of Discussion.OwningUsers.
type OwningUser struct {
	Username string `json:"username"`
}

// OwningTeam is an element of Discussion.OwningTeams.
type OwningTeam struct {
	Name string `json:"name"`
}

// Participant is a member of a discussion (§5.5). LastSeenAt is null while the user is
// subscribed ("Online Now").
type Participant struct {
	User           User    `json:"user"`
	IsMuted        bool    `json:"isMuted"`
	InvitedAt      *string `json:"invitedAt"`
	InvitedBy      *User   `json:"invitedBy"`
	JoinedAt       string  `json:"joinedAt"`
	LastInvitedAt  *string `json:"lastInvitedAt"`
	LastInvitedBy  *User   `json:"lastInvitedBy"`
	LastNotifiedAt *string `json:"lastNotifiedAt"`
	LastSeenAt     *string `json:"lastSeenAt"`
}

// Invitation invites a user (User set) or an e-mail address (Email set) (§5.6).
type Invitation struct {
	Email         string `json:"email,omitempty"`
	User          *User  `json:"user,omitempty"`
	Message       string `json:"message"`
	InvitedAt     string `json:"invitedAt"`
	InvitedBy     User   `json:"invitedBy"`
	LastInvitedAt string `json:"lastInvitedAt"`
	LastInvitedBy User   `json:"lastInvitedBy"`
}

// RelatedItem ties a discussion to a platform object (§6), e.g. {"Submission", "<uuid>"},
// {"Form", "<kappSlug>/<formSlug>"}, {"Team", "<slug>"}.
type RelatedItem struct {
	Type string `json:"type"`
	Key  string `json:"key"`
}

// RelatedItemRecord is a related item as the server returns it (§5.7).
type RelatedItemRecord struct {
	RelatedItem
	CreatedAt string `json:"createdAt"`
	CreatedBy User   `json:"createdBy"`
}

// errorBody is every REST error response: {"error","errorKey"} (§4).
type errorBody struct {
	Error    string `json:"error"`
	ErrorKey string `json:"errorKey"`
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("kinetictest: marshal: " + err.Error()) // only our own types reach here
	}
	return b
}
