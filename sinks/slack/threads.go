package slack

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/kvjson"
)

// What the sink remembers lives in the KV, so that edits, deletes and threads keep working
// after a restart: for each mirrored Kinetic message, where its Slack copy is; for each
// discussion, the ts of its thread parent in each channel. Keys carry the channel id because
// routes may mirror one discussion into several channels, and the source because message ids
// are only unique within a Kinetic space.

// posted is where a Kinetic message was mirrored.
type posted struct {
	Channel  string `json:"channel"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts,omitempty"` // the thread root it was posted under; "" top-level
	Deleted  bool   `json:"deleted,omitempty"`   // deleted in Slack: later edits are ignored
}

// root is the ts a reply to this message must name: Slack threads have one level, so a reply
// to a reply goes under the same root.
func (p posted) root() string {
	if p.ThreadTS != "" {
		return p.ThreadTS
	}
	return p.TS
}

// parent is the thread parent of a discussion in a channel.
type parent struct {
	TS    string `json:"ts"`
	Title string `json:"title,omitempty"` // the title it shows, to notice a rename
}

func messageKey(channel, source, message string) string {
	return "msg/" + channel + "/" + source + "/" + message
}

func parentKey(channel, source, discussion string) string {
	return "thread/" + channel + "/" + source + "/" + discussion
}

// load reads a JSON record; ok is false when there is none (or it does not decode: a record
// we cannot read is as good as none, and posting anew beats failing for ever).
func (s *Sink) load(ctx context.Context, key string, v any) (bool, error) {
	ok, err := s.records().Load(ctx, key, v)
	if err != nil {
		return false, fmt.Errorf("slack: %w", err)
	}
	return ok, nil
}

func (s *Sink) save(ctx context.Context, key string, v any) error {
	if err := s.records().Save(ctx, key, v); err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	return nil
}

func (s *Sink) records() kvjson.Records {
	return kvjson.Records{KV: s.kv, Namespace: s.namespace, Log: s.log}
}

// threadFor returns the thread_ts a message or notice of e goes under in channel ch, posting
// the discussion's thread parent first when the mode asks for one and it does not exist yet.
func (s *Sink) threadFor(ctx context.Context, ch, route string, e bridge.Event) (string, error) {
	switch s.cfg.Threads {
	case ThreadsDiscussion:
		return s.threadParent(ctx, ch, route, e)
	case ThreadsReplies:
		if e.Message == nil || e.Message.ParentID == "" {
			return "", nil
		}
		var p posted
		ok, err := s.load(ctx, messageKey(ch, e.Source, e.Message.ParentID), &p)
		if err != nil {
			return "", err
		}
		if !ok {
			// The parent was never mirrored here (routed elsewhere, or older than the
			// route): the reply stands on its own.
			s.log.Debug("reply to a message not mirrored in this channel; posting it top-level",
				"channel", ch, "discussion", e.Discussion.ID, "parent", e.Message.ParentID)
			return "", nil
		}
		return p.root(), nil
	default:
		return "", nil
	}
}

// threadParent returns the ts of the discussion's thread parent in ch, posting it the first
// time. The caller holds the (channel, discussion) lock, so it is posted once.
func (s *Sink) threadParent(ctx context.Context, ch, route string, e bridge.Event) (string, error) {
	key := parentKey(ch, e.Source, e.Discussion.ID)
	var p parent
	ok, err := s.load(ctx, key, &p)
	if err != nil || ok {
		return p.TS, err
	}
	ts, err := s.post(ctx, ch, outgoing{text: threadHeader(e.Discussion)}, "")
	if err != nil {
		return "", err
	}
	if err := s.saveOrigin(ctx, ch, ts, Origin{Route: route, Source: e.Source, Discussion: e.Discussion.ID}); err != nil {
		return "", err
	}
	if err := s.save(ctx, key, parent{TS: ts, Title: e.Discussion.Title}); err != nil {
		return "", err
	}
	s.log.Debug("started the discussion's thread", "channel", ch, "discussion", e.Discussion.ID, "ts", ts)
	return ts, nil
}

// retitle updates the thread parent after a discussion.updated that changed the title.
func (s *Sink) retitle(ctx context.Context, ch string, e bridge.Event) error {
	key := parentKey(ch, e.Source, e.Discussion.ID)
	var p parent
	ok, err := s.load(ctx, key, &p)
	if err != nil || !ok || strings.TrimSpace(e.Discussion.Title) == "" || e.Discussion.Title == p.Title {
		return err
	}
	if err := s.update(ctx, ch, p.TS, outgoing{text: threadHeader(e.Discussion)}); err != nil {
		return err
	}
	p.Title = e.Discussion.Title
	return s.save(ctx, key, p)
}

// keyedMutex serialises work per key; waiting honours ctx. Deliveries of one discussion to
// one target never overlap, but two routes may send the same discussion to the same channel.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	sem  chan struct{}
	refs int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l, ok := k.m[key]
	if !ok {
		l = &keyedLock{sem: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
