package kinetictest

import (
	"encoding/json"
	"slices"
)

// DiscussionSpec describes a discussion for CreateDiscussion.
type DiscussionSpec struct {
	ID                    string // optional: a fixed id (the samples use fixed ids so configs can name them)
	Title, Description    string
	IsArchived, IsPrivate bool
	Related               []RelatedItem
}

// CreateDiscussion creates a discussion owned and created by the integration user, with the
// "Authenticated Users" join policy unless private. Nobody is subscribed to a new
// discussion, so nothing is broadcast.
func (s *Server) CreateDiscussion(spec DiscussionSpec) Discussion {
	a := s.integration()
	in := Discussion{
		ID: spec.ID, Title: spec.Title, Description: spec.Description,
		IsArchived: spec.IsArchived, IsPrivate: spec.IsPrivate,
		OwningUsers: []OwningUser{{Username: a.user.Username}},
	}
	if !spec.IsPrivate {
		in.JoinPolicy = &JoinPolicy{Name: "Authenticated Users"}
	}
	for _, r := range spec.Related {
		in.RelatedItems = append(in.RelatedItems, RelatedItemRecord{RelatedItem: r})
	}
	return s.createDiscussion(a, in)
}

// Discussion returns a discussion as GET /discussions/{id} would, messagesPage included.
func (s *Server) Discussion(id string) (Discussion, error) {
	var out Discussion
	err := s.readDiscussion(id, nil, func(d *discussion) error {
		out = d.renderDiscussionLocked(true)
		return nil
	})
	return out, err
}

// Discussions returns every discussion, oldest first, without messagesPage.
func (s *Server) Discussions() []Discussion {
	var out []Discussion
	for _, d := range s.store.all() {
		d.mu.RLock()
		if !d.deleted {
			out = append(out, d.renderDiscussionLocked(false))
		}
		d.mu.RUnlock()
	}
	return out
}

// PostMessage posts a User message with one text token and broadcasts message:created.
// It fails with ErrArchived in an archived discussion, ErrNotFound for an unknown one.
func (s *Server) PostMessage(discussionID string, author User, text string) (Message, error) {
	return s.PostContent(discussionID, author, "", TextToken(text))
}

// PostReply posts a reply to parentID; see PostMessage.
func (s *Server) PostReply(discussionID, parentID string, author User, text string) (Message, error) {
	return s.PostContent(discussionID, author, parentID, TextToken(text))
}

// PostContent posts a User message with arbitrary content tokens, as a reply when parentID
// is not empty; see PostMessage.
func (s *Server) PostContent(discussionID string, author User, parentID string, content ...ContentToken) (Message, error) {
	var out Message
	content = slices.Clone(content)
	err := s.withDiscussion(discussionID, nil, func(d *discussion) error {
		var err error
		out, err = s.postLocked(d, author, content, parentID)
		return err
	})
	return cloneMessage(out), err
}

// UpdateMessage replaces a message's content with one text token, as its author: a new
// versionId and updatedAt, message:updated, then the "Message Updated" system message.
func (s *Server) UpdateMessage(discussionID, messageID, text string) (Message, error) {
	var out Message
	err := s.withDiscussion(discussionID, nil, func(d *discussion) error {
		m, err := d.liveMessageLocked(messageID)
		if err != nil {
			return err
		}
		out, err = s.updateMessageLocked(d, messageID, m.current().CreatedBy, []ContentToken{TextToken(text)})
		return err
	})
	return cloneMessage(out), err
}

// DeleteMessage deletes a message and broadcasts message:deleted.
func (s *Server) DeleteMessage(discussionID, messageID string) error {
	return s.withDiscussion(discussionID, nil, func(d *discussion) error {
		_, err := s.deleteMessageLocked(d, messageID)
		return err
	})
}

// Messages returns the discussion's live messages, oldest first (nil for an unknown
// discussion).
func (s *Server) Messages(discussionID string) []Message {
	var out []Message
	_ = s.readDiscussion(discussionID, nil, func(d *discussion) error {
		out = d.allMessagesLocked()
		return nil
	})
	for i := range out {
		out[i] = cloneMessage(out[i])
	}
	return out
}

// ArchiveDiscussion archives a discussion as the integration user: discussion:updated and
// the "Discussion Updated" system message.
func (s *Server) ArchiveDiscussion(id string) error {
	by := s.integration().user
	return s.withDiscussion(id, nil, func(d *discussion) error {
		_, err := s.updateDiscussionLocked(d, by, discussionPatch{"isArchived": json.RawMessage("true")})
		return err
	})
}

// UpdateDiscussion applies fields of the PUT /discussions/{id} body (title, description,
// isArchived, isPrivate, joinPolicy, owningUsers, owningTeams) as the integration user.
func (s *Server) UpdateDiscussion(id string, fields map[string]any) (Discussion, error) {
	by := s.integration().user
	patch := discussionPatch{}
	for k, v := range fields {
		patch[k] = mustJSON(v)
	}
	var out Discussion
	err := s.withDiscussion(id, nil, func(d *discussion) error {
		var err error
		out, err = s.updateDiscussionLocked(d, by, patch)
		return err
	})
	return out, err
}

// DeleteDiscussion deletes a discussion: discussion:deleted, then `unsubscribed` to every
// subscriber.
func (s *Server) DeleteDiscussion(id string) error {
	var gone *discussion
	err := s.withDiscussion(id, nil, func(d *discussion) error {
		s.deleteDiscussionLocked(d)
		gone = d
		return nil
	})
	if gone != nil {
		s.store.remove(gone)
	}
	return err
}

// AddParticipant makes u a participant, as the integration user: participant:created and
// the "Participant Created" system message.
func (s *Server) AddParticipant(discussionID string, u User) error {
	by := s.integration().user
	return s.withDiscussion(discussionID, nil, func(d *discussion) error {
		_, err := s.addParticipantLocked(d, by, u, false)
		return err
	})
}

// RemoveParticipant removes a participant, as the integration user: participant:deleted,
// the "Participant Removed" system message, and `unsubscribed` to that user's connections.
func (s *Server) RemoveParticipant(discussionID, username string) error {
	by := s.integration().user
	return s.withDiscussion(discussionID, nil, func(d *discussion) error {
		_, err := s.removeParticipantLocked(d, by, username)
		return err
	})
}

// AddRelatedItem relates the discussion to a platform object: relatedItem:created.
func (s *Server) AddRelatedItem(discussionID string, ri RelatedItem) error {
	by := s.integration().user
	return s.withDiscussion(discussionID, nil, func(d *discussion) error {
		_, err := s.addRelatedItemLocked(d, by, ri)
		return err
	})
}

// cloneMessage copies the slices a caller could mutate, so the store stays private.
func cloneMessage(m Message) Message {
	m.Content = slices.Clone(m.Content)
	if m.Parent != nil {
		p := *m.Parent
		p.Content = slices.Clone(p.Content)
		m.Parent = &p
	}
	return m
}
