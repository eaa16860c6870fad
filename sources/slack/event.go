package slack

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	slacksink "github.com/kdbridge/kdbridge/sinks/slack"
)

// callback is the part of an Events API payload the source reads.
type callback struct {
	Type    string       `json:"type"`
	EventID string       `json:"event_id"`
	Event   messageEvent `json:"event"`
}

type messageEvent struct {
	Type      string        `json:"type"`
	Subtype   string        `json:"subtype"`
	Channel   string        `json:"channel"`
	EventTS   string        `json:"event_ts"`
	DeletedTS string        `json:"deleted_ts"`
	Message   *slackMessage `json:"message"`
	Previous  *slackMessage `json:"previous_message"`
	Inline    slackMessage  `json:"-"` // the message itself, for the subtypes that are one
}

func (m *messageEvent) UnmarshalJSON(b []byte) error {
	type plain messageEvent
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	return json.Unmarshal(b, &m.Inline)
}

type slackMessage struct {
	Subtype  string `json:"subtype"`
	User     string `json:"user"`
	BotID    string `json:"bot_id"`
	AppID    string `json:"app_id"`
	Username string `json:"username"`
	Text     string `json:"text"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts"`
	Files    []file `json:"files"`
}

type file struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	Size      int64  `json:"size"`
	Permalink string `json:"permalink"`
}

func (m *slackMessage) own(me *identity) bool {
	return (m.BotID != "" && m.BotID == me.botID) || (m.AppID != "" && m.AppID == me.appID) ||
		(m.User != "" && m.User == me.userID)
}

// bridgedSubtypes are the message subtypes that are something a person (or another app)
// said; joins, topic changes and the like are not bridged.
var bridgedSubtypes = []string{"", "thread_broadcast", "file_share", "bot_message", "me_message"}

// convert decides what a message event is and builds its bridge event.
func (s *Source) convert(ctx context.Context, me *identity, p callback) (bridge.Event, string, error) {
	e := p.Event
	typ := bridge.MessageCreated
	m := &e.Inline
	switch e.Subtype {
	case "message_changed":
		if e.Message == nil {
			return bridge.Event{}, OutcomeMalformed, nil
		}
		typ, m = bridge.MessageUpdated, e.Message
		if e.Previous != nil && e.Previous.Text == m.Text && len(e.Previous.Files) == len(m.Files) {
			if m.own(me) {
				return bridge.Event{}, OutcomeOwn, nil
			}
			return bridge.Event{}, OutcomeUnchanged, nil // an unfurl, a reply count
		}
	case "message_deleted":
		typ, m = bridge.MessageDeleted, e.Previous
		if m == nil {
			m = &slackMessage{TS: e.DeletedTS}
		}
		if m.TS == "" {
			m.TS = e.DeletedTS
		}
	default:
		if !slices.Contains(bridgedSubtypes, e.Subtype) {
			return bridge.Event{}, OutcomeUnsupported, nil
		}
	}
	if m.own(me) {
		if typ == bridge.MessageCreated && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
			s.roots.add(e.Channel + "/" + m.TS)
		}
		return bridge.Event{}, OutcomeOwn, nil
	}
	if m.TS == "" || e.Channel == "" {
		return bridge.Event{}, OutcomeMalformed, nil
	}
	if m.ThreadTS == "" || m.ThreadTS == m.TS {
		return bridge.Event{}, OutcomeUnmirrored, nil // top-level: no discussion to go to
	}
	o, ok, err := s.origin(ctx, e.Channel, m.ThreadTS)
	if err != nil {
		return bridge.Event{}, "", err
	}
	if !ok {
		return bridge.Event{}, OutcomeUnmirrored, nil
	}
	if !s.routes[o.Route] {
		return bridge.Event{}, OutcomeOneWay, nil
	}

	author := bridge.User{Username: m.User}
	switch {
	case m.User != "":
		author.DisplayName = s.users.name(ctx, m.User)
	case m.Username != "":
		author.Username, author.DisplayName = m.BotID, m.Username
	default:
		author.Username, author.DisplayName = m.BotID, m.BotID
	}
	msg := &bridge.Message{ID: e.Channel + "/" + m.TS, ParentID: o.Message, Kind: bridge.KindUser, Author: author}
	if typ != bridge.MessageDeleted {
		msg.Text = PlainText(m.Text, func(id string) string { return s.users.name(ctx, id) })
		for _, f := range m.Files {
			name := f.Name
			if name == "" {
				name = f.Title
			}
			msg.Attachments = append(msg.Attachments, bridge.Attachment{Filename: PlainText(name, nil), Size: f.Size, URL: f.Permalink})
		}
		if s.cfg.MaxText > 0 && len(msg.Text) > s.cfg.MaxText {
			return bridge.Event{}, OutcomeTooLarge, nil
		}
	}
	eventID := p.EventID
	if eventID == "" {
		eventID = e.EventTS // never absent from Slack; a stable stand-in all the same
	}
	ev := bridge.Event{
		ID:         bridge.EventID(s.name, o.Discussion, msg.ID, eventID, typ),
		Type:       typ,
		Source:     s.name,
		Time:       slackTime(e.EventTS),
		Discussion: bridge.Discussion{ID: o.Discussion},
		Message:    msg,
		Inbound:    &bridge.Inbound{Kinetic: o.Source, Sink: s.cfg.Sink, Channel: e.Channel, TS: m.TS, ThreadTS: m.ThreadTS},
	}
	return ev, OutcomeBridged, nil
}

// origin finds what the thread root ts in channel mirrors. The Slack sink records it just
// after Slack answered its post, and the post's own event may overtake that: a root that
// kdbridge posted recently (its event was seen) but is not recorded yet is looked up again
// for a few seconds before the reply counts as unmirrored.
func (s *Source) origin(ctx context.Context, channel, ts string) (slacksink.Origin, bool, error) {
	o, ok, err := slacksink.LookupOrigin(ctx, s.kv, s.cfg.Sink, channel, ts)
	if err != nil || ok || !s.roots.has(channel+"/"+ts) {
		return o, ok, err
	}
	deadline := time.Now().Add(rootWait)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return o, false, ctx.Err()
		case <-t.C:
		}
		if o, ok, err = slacksink.LookupOrigin(ctx, s.kv, s.cfg.Sink, channel, ts); err != nil || ok {
			return o, ok, err
		}
	}
	return o, false, nil
}

// rootWait bounds the wait for the Slack sink to record a root it just posted.
const rootWait = 10 * time.Second

// recent is a bounded set of the top-level messages kdbridge posted lately.
type recent struct {
	mu sync.Mutex
	m  map[string]bool
}

func (r *recent) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= 10_000 {
		r.m = map[string]bool{}
	}
	r.m[k] = true
}

func (r *recent) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[k]
}

// slackTime reads a ts ("1700000000.000100"); the zero time (now) when it cannot.
func slackTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Now()
	}
	us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return time.Unix(s, us*1000).UTC()
}
