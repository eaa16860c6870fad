package kinetictest

import (
	"fmt"
	"net/http"
	"slices"
)

// This file serves participants, invitations and related items (§4.1). Each change
// broadcasts its event; participant and invitation changes also add the system message
// the reference lists for them (§5.4).

// resolveUser completes a user reference from the registered users; unknown usernames are
// accepted as they are (the simulator has no user directory beyond AddUser).
func (s *Server) resolveUser(u User) User {
	s.usersMu.RLock()
	a, ok := s.users[u.Username]
	s.usersMu.RUnlock()
	if ok {
		return a.user
	}
	if u.DisplayName == "" {
		u.DisplayName = u.Username
	}
	return u
}

func (s *Server) listParticipants(r *http.Request, a actor) (any, error) {
	var out []Participant
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		out = slices.Clone(d.meta.Participants)
		return nil
	})
	return map[string]any{"participants": out}, err
}

// createParticipantREST accepts both bodies seen in clients: {"username"} (Ruby SDK) and
// {"user":{"username"},"isMuted"} (routines) (§9.9).
func (s *Server) createParticipantREST(r *http.Request, a actor) (any, error) {
	var in struct {
		Username string `json:"username"`
		User     *User  `json:"user"`
		IsMuted  bool   `json:"isMuted"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	u := User{Username: in.Username}
	if in.User != nil {
		u = *in.User
	}
	if u.Username == "" {
		return nil, fmt.Errorf("username is required: %w", ErrBadRequest)
	}
	u = s.resolveUser(u)
	var out Participant
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.addParticipantLocked(d, a.user, u, in.IsMuted)
		return err
	})
	return map[string]any{"participant": out}, err
}

func (s *Server) getParticipant(r *http.Request, a actor) (any, error) {
	var out Participant
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		i := d.participantLocked(r.PathValue("username"))
		if i < 0 {
			return fmt.Errorf("participant %q: %w", r.PathValue("username"), ErrNotFound)
		}
		out = d.meta.Participants[i]
		return nil
	})
	return map[string]any{"participant": out}, err
}

func (s *Server) updateParticipantREST(r *http.Request, a actor) (any, error) {
	var in struct {
		IsMuted *bool `json:"isMuted"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	var out Participant
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.updateParticipantLocked(d, r.PathValue("username"), in.IsMuted)
		return err
	})
	return map[string]any{"participant": out}, err
}

func (s *Server) deleteParticipantREST(r *http.Request, a actor) (any, error) {
	var out Participant
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.removeParticipantLocked(d, a.user, r.PathValue("username"))
		return err
	})
	return map[string]any{"participant": out}, err
}

func (s *Server) listInvitations(r *http.Request, a actor) (any, error) {
	var out []Invitation
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		out = slices.Clone(d.meta.Invitations)
		return nil
	})
	return map[string]any{"invitations": out}, err
}

func (s *Server) createInvitationREST(r *http.Request, a actor) (any, error) {
	var in struct {
		Email   string `json:"email"`
		User    *User  `json:"user"`
		Message string `json:"message"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	inv := Invitation{Email: in.Email, Message: in.Message}
	if in.User != nil && in.User.Username != "" {
		u := s.resolveUser(*in.User)
		inv = Invitation{User: &u, Message: in.Message}
	}
	var out Invitation
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.addInvitationLocked(d, a.user, inv)
		return err
	})
	return map[string]any{"invitation": out}, err
}

// Invitation path keys are matched against both usernames and e-mail addresses, so every
// client's spelling of the `email` query flag works (§9.8).
func (s *Server) getInvitation(r *http.Request, a actor) (any, error) {
	var out Invitation
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		i := d.invitationLocked(r.PathValue("key"))
		if i < 0 {
			return fmt.Errorf("invitation %q: %w", r.PathValue("key"), ErrNotFound)
		}
		out = d.meta.Invitations[i]
		return nil
	})
	return map[string]any{"invitation": out}, err
}

func (s *Server) resendInvitationREST(r *http.Request, a actor) (any, error) {
	var in struct {
		Message *string `json:"message"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	var out Invitation
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.resendInvitationLocked(d, a.user, r.PathValue("key"), in.Message)
		return err
	})
	return map[string]any{"invitation": out}, err
}

func (s *Server) deleteInvitationREST(r *http.Request, a actor) (any, error) {
	var out Invitation
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.removeInvitationLocked(d, a.user, r.PathValue("key"))
		return err
	})
	return map[string]any{"invitation": out}, err
}

func (s *Server) listRelatedItems(r *http.Request, a actor) (any, error) {
	var out []RelatedItemRecord
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		out = slices.Clone(d.meta.RelatedItems)
		return nil
	})
	return map[string]any{"relatedItems": out}, err
}

func (s *Server) createRelatedItemREST(r *http.Request, a actor) (any, error) {
	var in RelatedItem
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	var out RelatedItemRecord
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.addRelatedItemLocked(d, a.user, in)
		return err
	})
	return map[string]any{"relatedItem": out}, err
}

// pathItem reads {type}/{key}; the mux unescapes each segment, so a Form key sent as
// "kapp%2Fform" arrives as "kapp/form".
func pathItem(r *http.Request) RelatedItem {
	return RelatedItem{Type: r.PathValue("type"), Key: r.PathValue("key")}
}

func (s *Server) getRelatedItem(r *http.Request, a actor) (any, error) {
	var out RelatedItemRecord
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		i := d.relatedLocked(pathItem(r))
		if i < 0 {
			return fmt.Errorf("related item: %w", ErrNotFound)
		}
		out = d.meta.RelatedItems[i]
		return nil
	})
	return map[string]any{"relatedItem": out}, err
}

func (s *Server) deleteRelatedItemREST(r *http.Request, a actor) (any, error) {
	var out RelatedItemRecord
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.removeRelatedItemLocked(d, pathItem(r))
		return err
	})
	return map[string]any{"relatedItem": out}, err
}
