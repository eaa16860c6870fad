package kinetictest

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// store holds every discussion. Its own lock guards only the index (map and creation
// order); each discussion has its own lock, so traffic on one discussion never waits for
// another and 10,000 discussions cost no more per operation than one.
type store struct {
	mu      sync.RWMutex
	byID    map[string]*discussion
	order   []*discussion // creation order, oldest first
	nextSeq int64
}

// discussion is one discussion's state. mu guards everything below it, including the
// subscriber set: an operation mutates state and enqueues its broadcast frames under the
// same lock, which is what makes the per-discussion order on the wire equal the order of
// the operations. Enqueueing never blocks (see conn.enqueue), so the lock is never held
// across a socket write.
type discussion struct {
	id    string // immutable
	topic string // immutable: "discussions/discussion/<id>"
	seq   int64  // immutable: creation order

	mu      sync.RWMutex
	deleted bool
	meta    Discussion // MessagesPage always nil here
	msgs    []*message // creation order, oldest first, deleted ones kept as tombstones
	byMsg   map[string]*message
	msgSeq  int64
	subs    map[*conn]string // subscribed connections → username they identified as
	files   map[string]attachment
}

// message is one message with its edit history.
type message struct {
	seq      int64 // position in discussion.msgs order; page tokens anchor on it
	deleted  bool
	versions []Message // oldest first; Parent is filled only when rendering
}

type attachment struct {
	filename, contentType string
	data                  []byte
}

func (m *message) current() Message { return m.versions[len(m.versions)-1] }

func newStore() *store { return &store{byID: make(map[string]*discussion)} }

func topicOf(id string) string { return "discussions/discussion/" + id }

// add indexes a new discussion built from meta.
func (st *store) add(meta Discussion) *discussion {
	d := &discussion{
		id:    meta.ID,
		topic: topicOf(meta.ID),
		meta:  meta,
		byMsg: make(map[string]*message),
		subs:  make(map[*conn]string),
		files: make(map[string]attachment),
	}
	st.mu.Lock()
	st.nextSeq++
	d.seq = st.nextSeq
	st.byID[d.id] = d
	st.order = append(st.order, d)
	st.mu.Unlock()
	return d
}

func (st *store) get(id string) (*discussion, error) {
	st.mu.RLock()
	d := st.byID[id]
	st.mu.RUnlock()
	if d == nil {
		return nil, fmt.Errorf("discussion %q: %w", id, ErrNotFound)
	}
	return d, nil
}

// remove drops a discussion from the index; the caller marks it deleted under its lock.
func (st *store) remove(d *discussion) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID[d.id] != d {
		return
	}
	delete(st.byID, d.id)
	if i := slices.Index(st.order, d); i >= 0 {
		st.order = slices.Delete(st.order, i, i+1)
	}
}

// snapshot returns the discussions newest first, starting strictly before the anchor seq
// (math.MaxInt64 for the first page).
func (st *store) snapshotBefore(anchor int64) []*discussion {
	st.mu.RLock()
	defer st.mu.RUnlock()
	i := sort.Search(len(st.order), func(i int) bool { return st.order[i].seq >= anchor })
	out := make([]*discussion, i)
	for j := range i {
		out[j] = st.order[i-1-j]
	}
	return out
}

func (st *store) all() []*discussion {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return slices.Clone(st.order)
}

// Page tokens are opaque to clients: base64 of a kind letter and the sequence number of
// the last item returned. Anchoring on an item rather than an offset from the head keeps
// paging exact while new messages arrive (they get higher sequence numbers).
func encodePageToken(kind byte, seq int64) *string {
	s := base64.RawURLEncoding.EncodeToString([]byte(string(kind) + strconv.FormatInt(seq, 10)))
	return &s
}

func decodePageToken(kind byte, tok string) (int64, error) {
	if tok == "" {
		return math.MaxInt64, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 2 || raw[0] != kind {
		return 0, fmt.Errorf("invalid pageToken: %w", ErrBadRequest)
	}
	seq, err := strconv.ParseInt(string(raw[1:]), 10, 64)
	if err != nil || seq <= 0 {
		return 0, fmt.Errorf("invalid pageToken: %w", ErrBadRequest)
	}
	return seq, nil
}

// pageLocked returns up to limit live messages older than the anchor, newest first.
func (d *discussion) pageLocked(anchor int64, limit int) MessagesPage {
	i := sort.Search(len(d.msgs), func(i int) bool { return d.msgs[i].seq >= anchor })
	page := MessagesPage{Messages: make([]Message, 0, min(limit, i))}
	var last int64
	for i--; i >= 0; i-- {
		m := d.msgs[i]
		if m.deleted {
			continue
		}
		if len(page.Messages) == limit {
			// Another live message exists beyond this page.
			page.NextPageToken = encodePageToken('m', last)
			break
		}
		page.Messages = append(page.Messages, d.renderLocked(m))
		last = m.seq
	}
	return page
}

// renderLocked returns the message's current version with its parent resolved.
func (d *discussion) renderLocked(m *message) Message {
	out := m.current()
	if out.ParentID == "" {
		return out
	}
	p := d.byMsg[out.ParentID]
	if p == nil || p.deleted {
		out.Parent = &MessageParent{ID: out.ParentID, Unknown: true}
		return out
	}
	cur := p.current()
	out.Parent = &MessageParent{
		ID: cur.ID, VersionID: cur.VersionID, Type: cur.Type, Content: cur.Content,
		CreatedBy: &cur.CreatedBy, CreatedAt: cur.CreatedAt, UpdatedAt: cur.UpdatedAt,
	}
	return out
}

// discussionPageSize is the size of the messagesPage embedded in discussions: the browser
// client's page size (§7).
const discussionPageSize = 25

// renderDiscussionLocked returns a copy of the discussion safe to use after unlocking.
func (d *discussion) renderDiscussionLocked(withPage bool) Discussion {
	out := d.meta
	out.OwningUsers = slices.Clone(d.meta.OwningUsers)
	out.OwningTeams = slices.Clone(d.meta.OwningTeams)
	out.Participants = slices.Clone(d.meta.Participants)
	out.Invitations = slices.Clone(d.meta.Invitations)
	out.RelatedItems = slices.Clone(d.meta.RelatedItems)
	if withPage {
		p := d.pageLocked(math.MaxInt64, discussionPageSize)
		out.MessagesPage = &p
	}
	return out
}

func (d *discussion) participantLocked(username string) int {
	return slices.IndexFunc(d.meta.Participants, func(p Participant) bool { return p.User.Username == username })
}

func (d *discussion) invitationLocked(key string) int {
	return slices.IndexFunc(d.meta.Invitations, func(in Invitation) bool {
		return (in.User != nil && in.User.Username == key) || (in.Email != "" && strings.EqualFold(in.Email, key))
	})
}

func (d *discussion) relatedLocked(ri RelatedItem) int {
	return slices.IndexFunc(d.meta.RelatedItems, func(r RelatedItemRecord) bool { return r.RelatedItem == ri })
}

// canAccessLocked applies the simulator's access rule: users barred with Forbid never have
// access; private discussions "only allow explicitly invited users to view" (§5.1), so
// there only space admins, owners, participants and invitees do; public ones are open to
// every authenticated user (as with the "Authenticated Users" join policy).
func (d *discussion) canAccessLocked(a actor, forbidden bool) bool {
	if forbidden {
		return false
	}
	if !d.meta.IsPrivate || a.admin {
		return true
	}
	u := a.user.Username
	return slices.ContainsFunc(d.meta.OwningUsers, func(o OwningUser) bool { return o.Username == u }) ||
		d.participantLocked(u) >= 0 || d.invitationLocked(u) >= 0 ||
		(a.user.Email != "" && d.invitationLocked(a.user.Email) >= 0)
}

// actor is who performs an operation: the token's user, or the integration user for the
// Go API.
type actor struct {
	user  User
	admin bool
}
