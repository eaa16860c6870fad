package kinetictest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxRequestBody bounds REST request bodies (attachments included).
const maxRequestBody = 16 << 20

// restHandler handles one authenticated Discussions REST call and returns the response
// body (written as 200 JSON) or an error (written as the Kinetic error body).
type restHandler func(r *http.Request, a actor) (any, error)

// fileBody is a response written raw instead of as JSON (attachment downloads).
type fileBody struct {
	contentType string
	data        []byte
}

// rest wraps a handler with what every Discussions REST call gets: the FailREST fault,
// bearer authentication (401 for a missing, invalid or expired token) and error mapping.
func (s *Server) rest(h restHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.stats.restRequests.Add(1)
		if status, ok := s.faults.takeRESTFailure(); ok {
			writeError(w, status, "simulated_failure", "simulated failure: "+http.StatusText(status))
			return
		}
		cl, err := s.bearer(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "unauthorized", "Unauthorized: "+err.Error())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		body, err := h(r, actor{user: cl.user(), admin: cl.SpaceAdmin})
		if err != nil {
			writeOpError(w, err)
			return
		}
		if f, ok := body.(fileBody); ok {
			w.Header().Set("Content-Type", f.contentType)
			_, _ = w.Write(f.data)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}

func (s *Server) restVersion(*http.Request, actor) (any, error) { return newVersionBody(), nil }

// parseLimit reads the limit query parameter: def when absent, clamped to max.
func parseLimit(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid limit %q: %w", v, ErrBadRequest)
	}
	return min(n, max), nil
}

// decodeJSON decodes a request body; an empty body decodes as {}.
func decodeJSON(r *http.Request, v any) error {
	err := json.NewDecoder(r.Body).Decode(v)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("invalid JSON body: %w", ErrBadRequest)
	}
	return nil
}

type discussionList struct {
	Discussions   []Discussion `json:"discussions"`
	NextPageToken *string      `json:"nextPageToken"`
}

// listDiscussions serves GET /discussions: newest first, filtered by title (case-insensitive
// substring), related item type (and key), participant user and archived (only archived
// when "true", else only active). The start/end date filters are accepted and ignored.
func (s *Server) listDiscussions(r *http.Request, a actor) (any, error) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"), 10, 1000)
	if err != nil {
		return nil, err
	}
	anchor, err := decodePageToken('d', q.Get("pageToken"))
	if err != nil {
		return nil, err
	}
	title := strings.ToLower(q.Get("title"))
	typ, key, user := q.Get("type"), q.Get("key"), q.Get("user")
	archived := q.Get("archived") == "true"

	out := discussionList{Discussions: []Discussion{}}
	var last int64
	for _, d := range s.store.snapshotBefore(anchor) {
		forbidden := s.faults.isForbidden(a.user.Username, d.id)
		d.mu.RLock()
		ok := !d.deleted && d.meta.IsArchived == archived &&
			strings.Contains(strings.ToLower(d.meta.Title), title) &&
			(typ == "" || slices.ContainsFunc(d.meta.RelatedItems, func(ri RelatedItemRecord) bool {
				return ri.Type == typ && (key == "" || ri.Key == key)
			})) &&
			(user == "" || d.participantLocked(user) >= 0) &&
			d.canAccessLocked(a, forbidden)
		if ok && len(out.Discussions) == limit {
			d.mu.RUnlock()
			out.NextPageToken = encodePageToken('d', last)
			break
		}
		if ok {
			out.Discussions = append(out.Discussions, d.renderDiscussionLocked(true))
			last = d.seq
		}
		d.mu.RUnlock()
	}
	return out, nil
}

func (s *Server) createDiscussionREST(r *http.Request, a actor) (any, error) {
	var in Discussion
	if err := decodeJSON(r, &in); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Title) == "" {
		return nil, fmt.Errorf("title is required: %w", ErrBadRequest)
	}
	// Only the create fields of §4.1 are taken from the body.
	spec := Discussion{
		Title: in.Title, Description: in.Description, IsArchived: in.IsArchived, IsPrivate: in.IsPrivate,
		JoinPolicy: in.JoinPolicy, OwningUsers: in.OwningUsers, OwningTeams: in.OwningTeams,
	}
	return map[string]any{"discussion": s.createDiscussion(a, spec)}, nil
}

func (s *Server) getDiscussion(r *http.Request, a actor) (any, error) {
	var out Discussion
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		out = d.renderDiscussionLocked(true)
		return nil
	})
	return map[string]any{"discussion": out}, err
}

func (s *Server) updateDiscussionREST(r *http.Request, a actor) (any, error) {
	var patch discussionPatch
	if err := decodeJSON(r, &patch); err != nil {
		return nil, err
	}
	var out Discussion
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.updateDiscussionLocked(d, a.user, patch)
		return err
	})
	return map[string]any{"discussion": out}, err
}

func (s *Server) deleteDiscussionREST(r *http.Request, a actor) (any, error) {
	var out Discussion
	var gone *discussion
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		out = s.deleteDiscussionLocked(d)
		gone = d
		return nil
	})
	if gone != nil {
		s.store.remove(gone)
	}
	return map[string]any{"discussion": out}, err
}

// listMessages serves GET /discussions/{id}/messages: newest first, limit default 25
// (the browser's) and at most 1000, paged by opaque tokens anchored on a message.
func (s *Server) listMessages(r *http.Request, a actor) (any, error) {
	defer s.stats.listing()()
	if d := s.opts.ListDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, r.Context().Err()
		}
	}
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"), 25, 1000)
	if err != nil {
		return nil, err
	}
	anchor, err := decodePageToken('m', q.Get("pageToken"))
	if err != nil {
		return nil, err
	}
	var out MessagesPage
	err = s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		out = d.pageLocked(anchor, limit)
		return nil
	})
	return out, err
}

// messageInput is the JSON body of a message create or update (§4.1).
type messageInput struct {
	Content []ContentToken `json:"content"`
	Parent  *struct {
		ID string `json:"id"`
	} `json:"parent"`
	ParentID string `json:"parentId"`
}

func (in messageInput) parentID() string {
	if in.Parent != nil && in.Parent.ID != "" {
		return in.Parent.ID
	}
	return in.ParentID
}

// readMessageBody decodes a message body: JSON, or multipart with a `message` part holding
// the same JSON and one `attachments` part per file (§4.1).
func readMessageBody(r *http.Request) (messageInput, []attachment, error) {
	var in messageInput
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		if err := decodeJSON(r, &in); err != nil {
			return in, nil, err
		}
		return in, nil, validTokens(in.Content)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return in, nil, fmt.Errorf("invalid multipart body: %w", ErrBadRequest)
	}
	var files []attachment
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return in, nil, fmt.Errorf("invalid multipart body: %w", ErrBadRequest)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return in, nil, fmt.Errorf("reading part %q: %w", p.FormName(), ErrBadRequest)
		}
		switch p.FormName() {
		case "message":
			if err := json.Unmarshal(data, &in); err != nil {
				return in, nil, fmt.Errorf("invalid message part: %w", ErrBadRequest)
			}
		case "attachments":
			ct := p.Header.Get("Content-Type")
			if ct == "" {
				ct = "application/octet-stream"
			}
			files = append(files, attachment{filename: p.FileName(), contentType: ct, data: data})
		}
	}
	return in, files, validTokens(in.Content)
}

func validTokens(ts []ContentToken) error {
	for _, t := range ts {
		if t.Type == "" {
			return fmt.Errorf("content token without type: %w", ErrBadRequest)
		}
	}
	return nil
}

// attachmentValue is the value of an "attachment" token (§5.4).
type attachmentValue struct {
	DocumentID  string  `json:"documentId"`
	ThumbnailID *string `json:"thumbnailId"`
	Filename    string  `json:"filename"`
	ContentType string  `json:"contentType"`
	Size        int     `json:"size"`
}

// storeFilesLocked keeps uploaded files and returns their attachment tokens.
func storeFilesLocked(d *discussion, files []attachment) []ContentToken {
	var out []ContentToken
	for _, f := range files {
		id := newUUID()
		d.files[id] = f
		out = append(out, ContentToken{Type: "attachment", Value: mustJSON(attachmentValue{
			DocumentID: id, Filename: f.filename, ContentType: f.contentType, Size: len(f.data),
		})})
	}
	return out
}

func (s *Server) createMessageREST(r *http.Request, a actor) (any, error) {
	in, files, err := readMessageBody(r)
	if err != nil {
		return nil, err
	}
	var out Message
	err = s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		if d.meta.IsArchived {
			return fmt.Errorf("discussion %q: %w", d.id, ErrArchived)
		}
		content := append(slices.Clone(in.Content), storeFilesLocked(d, files)...)
		var err error
		out, err = s.postLocked(d, a.user, content, in.parentID())
		return err
	})
	return map[string]any{"message": out}, err
}

func (s *Server) getMessage(r *http.Request, a actor) (any, error) {
	var out Message
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		m, err := d.liveMessageLocked(r.PathValue("mid"))
		if err == nil {
			out = d.renderLocked(m)
		}
		return err
	})
	return map[string]any{"message": out}, err
}

func (s *Server) updateMessageREST(r *http.Request, a actor) (any, error) {
	in, files, err := readMessageBody(r)
	if err != nil {
		return nil, err
	}
	var out Message
	err = s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		if _, err := d.liveMessageLocked(r.PathValue("mid")); err != nil {
			return err
		}
		if d.meta.IsArchived {
			return fmt.Errorf("discussion %q: %w", d.id, ErrArchived)
		}
		content := append(slices.Clone(in.Content), storeFilesLocked(d, files)...)
		var err error
		out, err = s.updateMessageLocked(d, r.PathValue("mid"), a.user, content)
		return err
	})
	return map[string]any{"message": out}, err
}

func (s *Server) deleteMessageREST(r *http.Request, a actor) (any, error) {
	var out Message
	err := s.withDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		var err error
		out, err = s.deleteMessageLocked(d, r.PathValue("mid"))
		return err
	})
	return map[string]any{"message": out}, err
}

// messageVersions serves GET …/messages/{mid}/versions, newest version first (§4.2).
func (s *Server) messageVersions(r *http.Request, a actor) (any, error) {
	var out []Message
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		m, err := d.liveMessageLocked(r.PathValue("mid"))
		if err != nil {
			return err
		}
		out = slices.Clone(m.versions)
		slices.Reverse(out)
		return nil
	})
	return map[string]any{"messages": out}, err
}

// downloadFile serves an attachment by document id; the filename segment is not checked
// because the browser rewrites it (spaces → "_").
func (s *Server) downloadFile(r *http.Request, a actor) (any, error) {
	var out fileBody
	err := s.readDiscussion(r.PathValue("id"), &a, func(d *discussion) error {
		if _, err := d.liveMessageLocked(r.PathValue("mid")); err != nil {
			return err
		}
		f, ok := d.files[r.PathValue("doc")]
		if !ok {
			return fmt.Errorf("file %q: %w", r.PathValue("doc"), ErrNotFound)
		}
		out = fileBody{contentType: f.contentType, data: f.data}
		return nil
	})
	return out, err
}
