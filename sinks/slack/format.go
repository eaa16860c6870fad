package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
)

// Slack reads "<…>" as a control sequence (<!channel>, <@U123>, <#C123>, <!subteam^ID>,
// <url|label>) and "&…;" as an entity. Everything from a discussion goes through escapeText,
// so none of it can open one; the sink writes the only control sequences of a message itself
// (links it builds, <@U…> mentions it looked up).

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// wordJoiner is written after the '@' of @here, @channel, @everyone and @group. It is
// invisible and, unlike a space, does not change how the word wraps or copies; it keeps the
// word from ever being read as a broadcast. Slack does not parse these words in bot messages
// sent with link_names off and parse none (which the sink always sends), so this is defence in
// depth against a change of either.
const wordJoiner = "\u2060"

var broadcasts = []string{"here", "channel", "everyone", "group"}

// escapeText makes untrusted text inert: &, < and > become entities, broadcast words are
// defused, and invalid UTF-8 becomes U+FFFD.
func escapeText(s string) string {
	return defuse(escaper.Replace(strings.ToValidUTF8(s, "\uFFFD")))
}

// defuse puts a word joiner after every '@' that starts a broadcast word, in any case. It is
// idempotent: a defused '@' is followed by the joiner, not by the word.
func defuse(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for {
		i := strings.IndexByte(s, '@')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+1])
		s = s[i+1:]
		for _, w := range broadcasts {
			if len(s) >= len(w) && strings.EqualFold(s[:len(w)], w) {
				b.WriteString(wordJoiner)
				break
			}
		}
	}
}

// oneLine makes escaped text fit in a link label or a username: control characters become
// spaces and the label separator '|' becomes a broken bar.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '|':
			return '¦'
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// plainHTTPURL returns raw normalised when it is an absolute http(s) URL without user info,
// for use as a parameter (icon_url); ok is false for anything else (javascript:, relative).
func plainHTTPURL(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", false
	}
	return u.String(), true
}

// httpURL returns an http(s) URL as Slack should see it inside <…>: the characters that
// would end the link ('|', '>') or open one ('<') percent-encoded, and '&' escaped as Slack
// asks. ok is false for anything that is not an absolute http(s) URL.
func httpURL(raw string) (string, bool) {
	u, ok := plainHTTPURL(raw)
	if !ok {
		return "", false
	}
	u = strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C", " ", "%20", "\"", "%22").Replace(u)
	return strings.ReplaceAll(u, "&", "&amp;"), true
}

// link returns "<url|label>" when url is an http(s) URL, or just the label otherwise. label
// must already be escaped (it is inserted as is, made one line).
func link(rawURL, label string) string {
	// A stray '<' or '>' (from a template's literal label) must not end or open a sequence.
	label = oneLine(strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(label))
	u, ok := httpURL(rawURL)
	switch {
	case !ok:
		return label
	case label == "":
		return "<" + u + ">"
	default:
		return "<" + u + "|" + label + ">"
	}
}

// maxText is the longest text the sink sends, in characters. Slack truncates text over 40,000
// characters; the margin covers Slack counting in UTF-16 units where a rune takes two.
const maxText = 39_000

const truncMarker = "… (truncated)"

// truncateText cuts s to at most n characters including the marker "… (truncated)".
func truncateText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	head := cutRunes(s, max(n-utf8.RuneCountInString(truncMarker), 0))
	return strings.TrimRightFunc(head, unicode.IsSpace) + truncMarker
}

// cutRunes returns at most the first keep characters of s. It never cuts inside a
// character, an entity (&amp;) or a control sequence the sink wrote (<url|label>): escaped
// text has no other '&' or '<', so the last one before the cut tells whether it is inside.
func cutRunes(s string, keep int) string {
	count := 0
	for i := range s {
		if count == keep {
			s = s[:i]
			break
		}
		count++
	}
	if i := strings.LastIndexByte(s, '&'); i >= 0 && !strings.Contains(s[i:], ";") {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 && !strings.Contains(s[i:], ">") {
		s = s[:i]
	}
	return s
}

// formatSize renders a byte count for humans: 999 B, 1.5 KB, 12 MB.
func formatSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", max(n, 0))
	}
	f := float64(n)
	unit := ""
	for _, u := range []string{"KB", "MB", "GB", "TB"} {
		f /= 1024
		unit = u
		if f < 1024 {
			break
		}
	}
	if f < 10 {
		return fmt.Sprintf("%.1f %s", f, unit)
	}
	return fmt.Sprintf("%.0f %s", f, unit)
}

// attachmentLine renders an attachment as "📎 <url|filename (size)>".
func attachmentLine(a bridge.Attachment) string {
	name := a.Filename
	if name == "" {
		name = "file"
	}
	label := oneLine(escapeText(name))
	if a.Size > 0 {
		label += " (" + formatSize(a.Size) + ")"
	}
	return "📎 " + link(a.URL, label)
}

// mentioner returns the <@U…> mention of a user, or "" to write the name instead.
type mentioner func(ctx context.Context, u bridge.User) string

// maxDepth bounds the nesting of quoted message tokens.
const maxDepth = 4

// renderTokens renders Kinetic content tokens as Slack text: text escaped, users as their
// name (or a looked-up mention), teams as "@Team", quoted messages in quotes. Attachment
// tokens are left out: the message's Attachments, which carry URLs, are rendered instead.
func renderTokens(ctx context.Context, tokens []bridge.Token, mention mentioner, depth int) string {
	return bridge.JoinTokens(tokens, func(t bridge.Token) string { return renderToken(ctx, t, mention, depth) })
}

func renderToken(ctx context.Context, t bridge.Token, mention mentioner, depth int) string {
	switch t.Type {
	case "text":
		s, _ := scalar(t.Value)
		return escapeText(s)
	case "user":
		u, ok := tokenUser(t.Value)
		if !ok {
			return "@unknown"
		}
		if mention != nil {
			if m := mention(ctx, u); m != "" {
				return m
			}
		}
		return atName(u.Name())
	case "team":
		var team struct {
			Name string `json:"name"`
		}
		name, _ := scalar(t.Value)
		if json.Unmarshal(t.Value, &team) == nil && team.Name != "" {
			name = team.Name
		}
		if name == "" {
			return "@unknown"
		}
		return atName(name)
	case "unknownUser", "unknownTeam":
		return "@unknown"
	case "attachment":
		return ""
	case "message":
		if depth >= maxDepth {
			return "“…”"
		}
		var m struct {
			Content []bridge.Token `json:"content"`
		}
		if json.Unmarshal(t.Value, &m) != nil {
			return ""
		}
		return "“" + renderTokens(ctx, m.Content, mention, depth+1) + "”"
	default: // json and anything newer: its text, or its compact JSON
		if s, ok := scalar(t.Value); ok {
			return escapeText(s)
		}
		var c bytes.Buffer
		if json.Compact(&c, t.Value) != nil {
			return ""
		}
		return escapeText(c.String())
	}
}

// atName writes a user or team as plain "@Name". It is defused after the '@' is added: a
// user named "here" must not become "@here".
func atName(name string) string {
	return defuse("@" + oneLine(escapeText(name)))
}

// tokenUser decodes a user token: Kinetic's {"username","displayName","email","unknown"}, the
// canonical display_name spelling, or a bare username.
func tokenUser(raw json.RawMessage) (bridge.User, bool) {
	if s, ok := scalar(raw); ok {
		return bridge.User{Username: s}, s != ""
	}
	var w struct {
		Username     string `json:"username"`
		DisplayName  string `json:"displayName"`
		DisplayName2 string `json:"display_name"`
		Email        string `json:"email"`
		Unknown      bool   `json:"unknown"`
	}
	if json.Unmarshal(raw, &w) != nil || w.Unknown {
		return bridge.User{}, false
	}
	u := bridge.User{Username: w.Username, DisplayName: w.DisplayName, Email: w.Email}
	if u.DisplayName == "" {
		u.DisplayName = w.DisplayName2
	}
	return u, u.Name() != ""
}

// scalar returns the text of a JSON string, number or bool.
func scalar(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return fmt.Sprint(b), true
	}
	return "", false
}

// messageParts renders a message: a user message from its tokens (or its plain text when it
// has none), a system message as an italic line; and one line per attachment.
func messageParts(ctx context.Context, m *bridge.Message, mention mentioner) (text string, files []string) {
	switch {
	case m.Kind == bridge.KindSystem:
		if t := strings.TrimSpace(m.Text); t != "" {
			text = italic(escapeText(t))
		}
	case hasText(m.Content):
		text = renderTokens(ctx, m.Content, mention, 0)
	default:
		text = escapeText(m.Text)
	}
	for _, a := range m.Attachments {
		files = append(files, attachmentLine(a))
	}
	return text, files
}

// joinLines joins the non-blank parts of a message, one per line.
func joinLines(text string, files []string) string {
	lines := make([]string, 0, 1+len(files))
	if strings.TrimSpace(text) != "" {
		lines = append(lines, text)
	}
	return strings.Join(append(lines, files...), "\n")
}

func hasText(tokens []bridge.Token) bool {
	for _, t := range tokens {
		if t.Type != "attachment" {
			return true
		}
	}
	return false
}

// italic wraps each non-empty line of escaped text in underscores; mrkdwn italics do not
// span lines.
func italic(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); t != "" {
			lines[i] = "_" + t + "_"
		}
	}
	return strings.Join(lines, "\n")
}

// threadHeader is the parent message of a discussion's thread: "*<url|title>*".
func threadHeader(d bridge.Discussion) string {
	title := strings.TrimSpace(d.Title)
	if title == "" {
		title = "Discussion " + d.ID
	}
	return "*" + link(d.URL, escapeText(title)) + "*"
}

// noticeFor is the short line for an event that is not about a message, and whether the
// event has one. Participants joining or leaving, invitations and the deletion of the
// discussion are worth a line in the thread; the others (participant updates, invitation
// changes, related items) are bookkeeping that would only be noise in a channel.
func noticeFor(e bridge.Event) (string, bool) {
	who := eventUser(e.Raw)
	var s string
	switch e.Type {
	case bridge.ParticipantCreated:
		if who != "" {
			s = who + " joined the discussion"
		}
	case bridge.ParticipantDeleted:
		if who != "" {
			s = who + " left the discussion"
		}
	case bridge.InvitationCreated:
		if who != "" {
			s = who + " was invited to the discussion"
		}
	case bridge.DiscussionDeleted:
		s = "The discussion was deleted"
	}
	if s == "" {
		return "", false
	}
	return italic(escapeText(s)), true
}

// eventUser finds who a participant or invitation event is about in its Kinetic payload:
// "user" (a user reference), else "username", else "email".
func eventUser(raw json.RawMessage) string {
	var p struct {
		User     json.RawMessage `json:"user"`
		Username json.RawMessage `json:"username"`
		Email    json.RawMessage `json:"email"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil {
		return ""
	}
	if u, ok := tokenUser(p.User); ok {
		return u.Name()
	}
	for _, f := range []json.RawMessage{p.Username, p.Email} {
		if s, ok := scalar(f); ok && s != "" {
			return s
		}
	}
	return ""
}
