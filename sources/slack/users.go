package slack

import (
	"context"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
)

// maxUsers bounds the name cache; a workspace larger than this just asks again.
const maxUsers = 10_000

// users resolves Slack user ids to display names with users.info, remembering them for an
// hour (names change rarely; a failed lookup is remembered for a minute, so that a missing
// users:read scope costs one call a minute, not one per mention).
type users struct {
	api     *slackgo.Client
	timeout time.Duration

	mu sync.Mutex
	m  map[string]userName
}

type userName struct {
	name    string
	expires time.Time
}

func newUsers(api *slackgo.Client, timeout time.Duration) *users {
	return &users{api: api, timeout: timeout, m: map[string]userName{}}
}

// name returns the user's display name, or "" when Slack does not say.
func (u *users) name(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	u.mu.Lock()
	e, ok := u.m[id]
	u.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.name
	}
	callCtx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	name, ttl := "", time.Minute
	if info, err := u.api.GetUserInfoContext(callCtx, id); err == nil {
		ttl = time.Hour
		for _, n := range []string{info.Profile.DisplayName, info.Profile.RealName, info.RealName, info.Name} {
			if n != "" {
				name = n
				break
			}
		}
	}
	u.mu.Lock()
	if len(u.m) >= maxUsers {
		clear(u.m)
	}
	u.m[id] = userName{name: PlainText(name, nil), expires: time.Now().Add(ttl)}
	u.mu.Unlock()
	return name
}
