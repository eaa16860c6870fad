package kinetictest

import (
	"encoding/json"
	"fmt"
	"slices"
)

// This file holds the operations on discussions, shared by the REST handlers and the Go
// API. Each runs under the discussion's lock and emits its events there, in the order a
// client must see them.

// withDiscussion runs fn under d's write lock. When a is not nil the actor's access is
// checked first (REST); the Go API passes nil.
func (s *Server) withDiscussion(id string, a *actor, fn func(d *discussion) error) error {
	return s.lockDiscussion(id, a, false, fn)
}

// readDiscussion runs fn under d's read lock; fn must not mutate or emit.
func (s *Server) readDiscussion(id string, a *actor, fn func(d *discussion) error) error {
	return s.lockDiscussion(id, a, true, fn)
}

func (s *Server) lockDiscussion(id string, a *actor, read bool, fn func(d *discussion) error) error {
	d, err := s.store.get(id)
	if err != nil {
		return err
	}
	forbidden := a != nil && s.faults.isForbidden(a.user.Username, id)
	if read {
		d.mu.RLock()
		defer d.mu.RUnlock()
	} else {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	if d.deleted {
		return fmt.Errorf("discussion %q: %w", id, ErrNotFound)
	}
	if a != nil && !d.canAccessLocked(*a, forbidden) {
		return fmt.Errorf("discussion %q: %w", id, ErrForbidden)
	}
	return fn(d)
}

// createDiscussion stores a new discussion; nobody can be subscribed yet, so nothing is
// broadcast.
func (s *Server) createDiscussion(by actor, in Discussion) Discussion {
	now := s.nowString()
	if in.ID == "" {
		in.ID = newUUID()
	}
	in.VersionID = newUUID()
	in.CreatedAt, in.UpdatedAt = now, now
	in.CreatedBy, in.UpdatedBy = by.user, by.user
	if in.OwningUsers == nil {
		in.OwningUsers = []OwningUser{}
	}
	if in.OwningTeams == nil {
		in.OwningTeams = []OwningTeam{}
	}
	in.Participants = []Participant{}
	in.Invitations = []Invitation{}
	related := in.RelatedItems
	in.RelatedItems = []RelatedItemRecord{}
	for _, r := range related {
		if !slices.ContainsFunc(in.RelatedItems, func(x RelatedItemRecord) bool { return x.RelatedItem == r.RelatedItem }) {
			in.RelatedItems = append(in.RelatedItems, RelatedItemRecord{RelatedItem: r.RelatedItem, CreatedAt: now, CreatedBy: by.user})
		}
	}
	in.MessagesPage = nil
	d := s.store.add(in)
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.renderDiscussionLocked(true)
}

// appendMessageLocked stores a new message and broadcasts message:created.
func (s *Server) appendMessageLocked(d *discussion, m Message) Message {
	d.msgSeq++
	mm := &message{seq: d.msgSeq, versions: []Message{m}}
	d.msgs = append(d.msgs, mm)
	d.byMsg[m.ID] = mm
	s.stats.messages.Add(1)
	out := d.renderLocked(mm)
	s.emitLocked(d, "message:created", out)
	return out
}

func (s *Server) newMessage(typ, action string, by User, content []ContentToken, parentID string) Message {
	now := s.nowString()
	return Message{
		ID: newUUID(), VersionID: newUUID(), Type: typ, Action: action,
		Content: content, CreatedBy: by, CreatedAt: now, UpdatedAt: now, UpdatedBy: by,
		ParentID: parentID,
	}
}

// systemMessageLocked creates a System message, the side effect of a REST call or a
// subscribe (§3.6, §5.4); system messages are allowed in archived discussions.
func (s *Server) systemMessageLocked(d *discussion, action string, by User, content ...ContentToken) {
	s.appendMessageLocked(d, s.newMessage(MessageTypeSystem, action, by, content, ""))
}

func (s *Server) postLocked(d *discussion, by User, content []ContentToken, parentID string) (Message, error) {
	if d.meta.IsArchived {
		return Message{}, fmt.Errorf("discussion %q: %w", d.id, ErrArchived)
	}
	if len(content) == 0 {
		return Message{}, fmt.Errorf("message content is empty: %w", ErrBadRequest)
	}
	if parentID != "" {
		if p := d.byMsg[parentID]; p == nil || p.deleted {
			return Message{}, fmt.Errorf("parent message %q not found: %w", parentID, ErrBadRequest)
		}
	}
	return s.appendMessageLocked(d, s.newMessage(MessageTypeUser, "", by, content, parentID)), nil
}

func (d *discussion) liveMessageLocked(mid string) (*message, error) {
	m := d.byMsg[mid]
	if m == nil || m.deleted {
		return nil, fmt.Errorf("message %q: %w", mid, ErrNotFound)
	}
	return m, nil
}

// updateMessageLocked stores a new version, broadcasts message:updated and then the
// "Message Updated" system message that edits produce (§5.4 triggers).
func (s *Server) updateMessageLocked(d *discussion, mid string, by User, content []ContentToken) (Message, error) {
	m, err := d.liveMessageLocked(mid)
	if err != nil {
		return Message{}, err
	}
	if d.meta.IsArchived {
		return Message{}, fmt.Errorf("discussion %q: %w", d.id, ErrArchived)
	}
	prev := m.current()
	if prev.Type != MessageTypeUser {
		return Message{}, fmt.Errorf("system messages cannot be edited: %w", ErrBadRequest)
	}
	if len(content) == 0 {
		return Message{}, fmt.Errorf("message content is empty: %w", ErrBadRequest)
	}
	next := prev
	next.VersionID = newUUID()
	next.Content = content
	next.UpdatedAt = s.nowString()
	next.UpdatedBy = by
	m.versions = append(m.versions, next)
	out := d.renderLocked(m)
	s.emitLocked(d, "message:updated", out)
	s.systemMessageLocked(d, "Message Updated", by,
		UserToken("updatedBy", by), messageToken("previousMessage", prev), messageToken("message", next))
	return out, nil
}

// deleteMessageLocked removes a message and broadcasts message:deleted with the full
// message (the reference assumes full objects, §9.5). Replies keep pointing at it and
// render their parent as {"id","unknown":true}.
func (s *Server) deleteMessageLocked(d *discussion, mid string) (Message, error) {
	m, err := d.liveMessageLocked(mid)
	if err != nil {
		return Message{}, err
	}
	out := d.renderLocked(m)
	m.deleted = true
	s.emitLocked(d, "message:deleted", out)
	return out, nil
}

// discussionPatch is the body of PUT /discussions/{id}: any subset of the create fields.
type discussionPatch map[string]json.RawMessage

// updateDiscussionLocked applies a patch, broadcasts discussion:updated (full discussion
// with messagesPage, §3.6) and adds the "Discussion Updated" system message.
func (s *Server) updateDiscussionLocked(d *discussion, by User, patch discussionPatch) (Discussion, error) {
	prev, vals := map[string]any{}, map[string]any{}
	m := &d.meta
	next := *m
	for k, raw := range patch {
		var err error
		switch k {
		case "title":
			err = json.Unmarshal(raw, &next.Title)
		case "description":
			err = json.Unmarshal(raw, &next.Description)
		case "isArchived":
			err = json.Unmarshal(raw, &next.IsArchived)
		case "isPrivate":
			err = json.Unmarshal(raw, &next.IsPrivate)
		case "joinPolicy":
			next.JoinPolicy = nil
			err = json.Unmarshal(raw, &next.JoinPolicy)
		case "owningUsers":
			next.OwningUsers = nil
			err = json.Unmarshal(raw, &next.OwningUsers)
		case "owningTeams":
			next.OwningTeams = nil
			err = json.Unmarshal(raw, &next.OwningTeams)
		default:
			continue // read-only or unknown fields are ignored
		}
		if err != nil {
			return Discussion{}, fmt.Errorf("field %s: %w", k, ErrBadRequest)
		}
	}
	record := func(name string, before, after any) {
		if string(mustJSON(before)) != string(mustJSON(after)) {
			prev[name], vals[name] = before, after
		}
	}
	record("title", m.Title, next.Title)
	record("description", m.Description, next.Description)
	record("isArchived", m.IsArchived, next.IsArchived)
	record("isPrivate", m.IsPrivate, next.IsPrivate)
	record("joinPolicy", m.JoinPolicy, next.JoinPolicy)
	record("owningUsers", m.OwningUsers, next.OwningUsers)
	record("owningTeams", m.OwningTeams, next.OwningTeams)
	if len(vals) == 0 {
		return d.renderDiscussionLocked(true), nil
	}
	if next.OwningUsers == nil {
		next.OwningUsers = []OwningUser{}
	}
	if next.OwningTeams == nil {
		next.OwningTeams = []OwningTeam{}
	}
	next.VersionID = newUUID()
	next.UpdatedAt = s.nowString()
	next.UpdatedBy = by
	*m = next
	out := d.renderDiscussionLocked(true)
	s.emitLocked(d, "discussion:updated", out)
	s.systemMessageLocked(d, "Discussion Updated", by,
		UserToken("updatedBy", by), jsonToken("previousValues", prev), jsonToken("values", vals))
	return out, nil
}

// deleteDiscussionLocked marks d deleted, broadcasts discussion:deleted and evicts every
// subscriber with `unsubscribed`: a deleted discussion has no topic left to follow. The
// caller removes d from the store index after unlocking.
func (s *Server) deleteDiscussionLocked(d *discussion) Discussion {
	out := d.renderDiscussionLocked(false)
	d.deleted = true
	s.emitLocked(d, "discussion:deleted", out)
	s.evictLocked(d, nil)
	return out
}

// joinLocked is the join side effect of subscribe (§3.6): a user who is not a participant
// becomes one (participant:created, then a "Participant Joined" system message); a
// participant who was offline comes back online (lastSeenAt null, participant:updated).
func (s *Server) joinLocked(d *discussion, a actor) {
	i := d.participantLocked(a.user.Username)
	if i >= 0 {
		if d.meta.Participants[i].LastSeenAt != nil {
			d.meta.Participants[i].LastSeenAt = nil
			s.emitLocked(d, "participant:updated", d.meta.Participants[i])
		}
		return
	}
	p := Participant{User: a.user, JoinedAt: s.nowString()}
	d.meta.Participants = append(d.meta.Participants, p)
	s.emitLocked(d, "participant:created", p)
	content := []ContentToken{UserToken("user", a.user)}
	if a.admin {
		content = append(content, jsonToken("joinedAsAdmin", true))
	}
	if slices.ContainsFunc(d.meta.OwningUsers, func(o OwningUser) bool { return o.Username == a.user.Username }) {
		content = append(content, jsonToken("joinedAsOwner", true))
	}
	s.systemMessageLocked(d, "Participant Joined", a.user, content...)
}

func (s *Server) addParticipantLocked(d *discussion, by User, u User, muted bool) (Participant, error) {
	if d.participantLocked(u.Username) >= 0 {
		return Participant{}, fmt.Errorf("participant %q: %w", u.Username, ErrConflict)
	}
	p := Participant{User: u, IsMuted: muted, JoinedAt: s.nowString()}
	now := s.nowString()
	p.LastSeenAt = &now // not connected yet
	d.meta.Participants = append(d.meta.Participants, p)
	s.emitLocked(d, "participant:created", p)
	s.systemMessageLocked(d, "Participant Created", by, UserToken("user", u), UserToken("createdBy", by))
	return p, nil
}

func (s *Server) updateParticipantLocked(d *discussion, username string, muted *bool) (Participant, error) {
	i := d.participantLocked(username)
	if i < 0 {
		return Participant{}, fmt.Errorf("participant %q: %w", username, ErrNotFound)
	}
	if muted != nil && *muted != d.meta.Participants[i].IsMuted {
		d.meta.Participants[i].IsMuted = *muted
		s.emitLocked(d, "participant:updated", d.meta.Participants[i])
	}
	return d.meta.Participants[i], nil
}

// removeParticipantLocked broadcasts participant:deleted and the "Participant Removed" (or
// "Participant Left" when users remove themselves) system message, then evicts the user's
// connections with `unsubscribed`, which is how the browser learns it was removed (§3.4).
func (s *Server) removeParticipantLocked(d *discussion, by User, username string) (Participant, error) {
	i := d.participantLocked(username)
	if i < 0 {
		return Participant{}, fmt.Errorf("participant %q: %w", username, ErrNotFound)
	}
	p := d.meta.Participants[i]
	d.meta.Participants = slices.Delete(d.meta.Participants, i, i+1)
	s.emitLocked(d, "participant:deleted", p)
	if by.Username == username {
		s.systemMessageLocked(d, "Participant Left", by, UserToken("user", p.User))
	} else {
		s.systemMessageLocked(d, "Participant Removed", by, UserToken("user", p.User), UserToken("removedBy", by))
	}
	s.evictLocked(d, func(u string) bool { return u == username })
	return p, nil
}

func invitee(in Invitation) ContentToken {
	if in.User != nil {
		return UserToken("user", *in.User)
	}
	return ContentToken{Type: "text", Name: "invitationEmail", Value: mustJSON(in.Email)}
}

func (s *Server) addInvitationLocked(d *discussion, by User, in Invitation) (Invitation, error) {
	key := in.Email
	if in.User != nil {
		key = in.User.Username
	}
	if key == "" {
		return Invitation{}, fmt.Errorf("invitation needs an email or a user: %w", ErrBadRequest)
	}
	if d.invitationLocked(key) >= 0 {
		return Invitation{}, fmt.Errorf("invitation %q: %w", key, ErrConflict)
	}
	now := s.nowString()
	in.InvitedAt, in.LastInvitedAt = now, now
	in.InvitedBy, in.LastInvitedBy = by, by
	d.meta.Invitations = append(d.meta.Invitations, in)
	s.emitLocked(d, "invitation:created", in)
	s.systemMessageLocked(d, "Invitation Sent", by, invitee(in), UserToken("invitedBy", by))
	return in, nil
}

func (s *Server) resendInvitationLocked(d *discussion, by User, key string, msg *string) (Invitation, error) {
	i := d.invitationLocked(key)
	if i < 0 {
		return Invitation{}, fmt.Errorf("invitation %q: %w", key, ErrNotFound)
	}
	in := &d.meta.Invitations[i]
	in.LastInvitedAt, in.LastInvitedBy = s.nowString(), by
	if msg != nil {
		in.Message = *msg
	}
	s.emitLocked(d, "invitation:updated", *in)
	s.systemMessageLocked(d, "Invitation Resent", by, invitee(*in), UserToken("invitedBy", by))
	return *in, nil
}

func (s *Server) removeInvitationLocked(d *discussion, by User, key string) (Invitation, error) {
	i := d.invitationLocked(key)
	if i < 0 {
		return Invitation{}, fmt.Errorf("invitation %q: %w", key, ErrNotFound)
	}
	in := d.meta.Invitations[i]
	d.meta.Invitations = slices.Delete(d.meta.Invitations, i, i+1)
	s.emitLocked(d, "invitation:deleted", in)
	s.systemMessageLocked(d, "Invitation Removed", by, invitee(in), UserToken("removedBy", by))
	return in, nil
}

func (s *Server) addRelatedItemLocked(d *discussion, by User, ri RelatedItem) (RelatedItemRecord, error) {
	if ri.Type == "" || ri.Key == "" {
		return RelatedItemRecord{}, fmt.Errorf("related item needs a type and a key: %w", ErrBadRequest)
	}
	if d.relatedLocked(ri) >= 0 {
		return RelatedItemRecord{}, fmt.Errorf("related item %s/%s: %w", ri.Type, ri.Key, ErrConflict)
	}
	r := RelatedItemRecord{RelatedItem: ri, CreatedAt: s.nowString(), CreatedBy: by}
	d.meta.RelatedItems = append(d.meta.RelatedItems, r)
	s.emitLocked(d, "relatedItem:created", r)
	return r, nil
}

func (s *Server) removeRelatedItemLocked(d *discussion, ri RelatedItem) (RelatedItemRecord, error) {
	i := d.relatedLocked(ri)
	if i < 0 {
		return RelatedItemRecord{}, fmt.Errorf("related item %s/%s: %w", ri.Type, ri.Key, ErrNotFound)
	}
	r := d.meta.RelatedItems[i]
	d.meta.RelatedItems = slices.Delete(d.meta.RelatedItems, i, i+1)
	s.emitLocked(d, "relatedItem:deleted", r)
	return r, nil
}

// allMessagesLocked returns the live messages oldest first.
func (d *discussion) allMessagesLocked() []Message {
	out := make([]Message, 0, len(d.msgs))
	for _, m := range d.msgs {
		if !m.deleted {
			out = append(out, d.renderLocked(m))
		}
	}
	return out
}
