package slack

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/kdbridge/kdbridge/bridge"
)

// Channel names are resolved to ids, and emails to user ids, once and then served from
// memory: conversations.list is a Tier 2 method (about 20 calls a minute) and
// users.lookupByEmail Tier 3, while the sink may post every second.

// channelID matches a Slack conversation id. Names are lower case, ids upper case, so a
// name can never look like one.
var channelID = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

// userID matches a Slack user id; an answer that does not is not used as a mention.
var userID = regexp.MustCompile(`^[UW][A-Z0-9]{6,}$`)

const (
	listPageSize   = 999 // conversations.list takes at most 999 per page
	maxListPages   = 1000
	unknownNameTTL = time.Minute // a channel created or joined later is found within this
	userHitTTL     = 24 * time.Hour
	userMissTTL    = 10 * time.Minute // users_not_found: the person may join Slack later
	userFailTTL    = time.Minute      // other failures (scope, rate limit): do not hammer
	maxUserEntries = 10_000
)

// channels resolves channel names to ids.
type channels struct {
	mu       sync.Mutex // held during a listing, so concurrent deliveries wait for one
	ids      map[string]string
	listedAt time.Time // when the last listing ended; zero: never
}

// resolve returns the channel id for a configured channel: an id as is, a name (with or
// without '#') from conversations.list.
func (s *Sink) resolve(ctx context.Context, ch string) (string, error) {
	if channelID.MatchString(ch) {
		return ch, nil
	}
	name := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(ch), "#"))
	c := &s.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.ids[name]; ok {
		return id, nil
	}
	// Unknown: list again, unless a listing just ended (it would not know the name either).
	if c.listedAt.IsZero() || time.Since(c.listedAt) > unknownNameTTL {
		ids, err := s.listChannels(ctx)
		if err != nil {
			return "", err
		}
		c.ids, c.listedAt = ids, time.Now()
		if id, ok := ids[name]; ok {
			return id, nil
		}
	}
	return "", bridge.Permanent(&apiError{Method: "conversations.list", Channel: ch,
		Err: fmt.Errorf("%w: no channel of that name is visible to the bot (invite it to a private channel first)",
			slackgo.SlackErrorResponse{Err: "channel_not_found"})})
}

// listChannels lists every public and private channel the token can see, page by page.
func (s *Sink) listChannels(ctx context.Context) (map[string]string, error) {
	ids := map[string]string{}
	params := &slackgo.GetConversationsParameters{
		Types: []string{"public_channel", "private_channel"},
		Limit: listPageSize,
	}
	for range maxListPages {
		callCtx, cancel := s.callContext(ctx)
		list, next, err := s.api.GetConversationsContext(callCtx, params)
		cancel()
		if err != nil {
			return nil, s.classify(ctx, "conversations.list", "", err)
		}
		for _, ch := range list {
			if ch.Name != "" && ch.ID != "" {
				ids[strings.ToLower(ch.Name)] = ch.ID
			}
		}
		if next == "" {
			return ids, nil
		}
		params.Cursor = next
	}
	s.log.Warn("conversations.list did not end; using the channels seen so far", "pages", maxListPages)
	return ids, nil
}

// users maps emails to Slack user ids for mention_users: email.
type users struct {
	mu sync.Mutex
	m  map[string]*userEntry
}

// userEntry is one lookup, finished when ready is closed.
type userEntry struct {
	ready   chan struct{}
	id      string // "" when not found or failed
	expires time.Time
}

// mention returns "<@U…>" for the user's email, or "" to fall back to the name. It never
// fails a delivery: a lookup that fails costs the mention, not the message.
func (s *Sink) mention(ctx context.Context, u bridge.User) string {
	email := strings.ToLower(strings.TrimSpace(u.Email))
	if email == "" || !strings.Contains(email, "@") {
		return ""
	}
	c := &s.users
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[email]
	if ok && (!isClosed(e.ready) || now.Before(e.expires)) {
		c.mu.Unlock()
		select {
		case <-e.ready:
			return mentionOf(e.id)
		case <-ctx.Done():
			return ""
		}
	}
	if len(c.m) >= maxUserEntries {
		for k, old := range c.m {
			if isClosed(old.ready) && now.After(old.expires) {
				delete(c.m, k)
			}
		}
	}
	e = &userEntry{ready: make(chan struct{})}
	c.m[email] = e
	c.mu.Unlock()

	id, ttl := s.lookupEmail(ctx, email)
	c.mu.Lock()
	e.id, e.expires = id, time.Now().Add(ttl)
	close(e.ready)
	c.mu.Unlock()
	return mentionOf(id)
}

func (s *Sink) lookupEmail(ctx context.Context, email string) (id string, ttl time.Duration) {
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	user, err := s.api.GetUserByEmailContext(callCtx, email)
	switch {
	case err == nil && user != nil && userID.MatchString(user.ID):
		return user.ID, userHitTTL
	case err == nil || errorCode(err) == "users_not_found":
		return "", userMissTTL
	case ctx.Err() != nil:
		return "", 0 // the delivery was cancelled: try again next time
	}
	if _, seen := s.lookupFailures.LoadOrStore(errorKind(err), true); !seen {
		s.log.Warn("cannot look up Slack users by email; writing names instead of mentions",
			"error", &redactedError{err: &apiError{Method: "users.lookupByEmail", Err: err}, redact: s.redact})
	}
	return "", userFailTTL
}

// errorKind groups lookup failures for logging once per kind.
func errorKind(err error) string {
	if code := errorCode(err); code != "" {
		return code
	}
	var rl *slackgo.RateLimitedError
	if errors.As(err, &rl) {
		return "ratelimited"
	}
	return "other"
}

func mentionOf(id string) string {
	if id == "" {
		return ""
	}
	return "<@" + id + ">"
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
