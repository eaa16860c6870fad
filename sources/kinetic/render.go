package kinetic

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/jsonscan"
)

// maxRenderDepth bounds the nesting of message tokens (a "Message Updated" system message
// quotes messages that may quote messages); deeper levels are left out.
const maxRenderDepth = 4

// renderContent renders content tokens as plain text: text as is, users and teams as
// "@Name", attachments as "[file: name (size)]", quoted messages in double quotes, json
// tokens as their string, unknown users and teams as "@unknown", and tokens of unknown types
// as their string value (or not at all).
func renderContent(tokens []bridge.Token) string {
	return renderTokens(tokens, 0)
}

func renderTokens(tokens []bridge.Token, depth int) string {
	return bridge.JoinTokens(tokens, func(t bridge.Token) string { return renderToken(t, depth) })
}

func renderToken(t bridge.Token, depth int) string {
	switch t.Type {
	case "text":
		s, _ := jsonString(t.Value)
		return s
	case "user":
		var u wireUser
		if json.Unmarshal(t.Value, &u) != nil {
			if s, ok := jsonString(t.Value); ok && s != "" {
				return "@" + s
			}
			return "@unknown"
		}
		if n := u.user().Name(); n != "" {
			return "@" + n
		}
		return "@unknown"
	case "team":
		var team struct {
			Name lenientString `json:"name"`
		}
		if json.Unmarshal(t.Value, &team) == nil && team.Name != "" {
			return "@" + string(team.Name)
		}
		if s, ok := jsonString(t.Value); ok && s != "" {
			return "@" + s
		}
		return "@unknown"
	case "unknownUser", "unknownTeam":
		return "@unknown"
	case "attachment":
		a, ok := decodeAttachment(t.Value)
		if !ok {
			return "[file]"
		}
		return fmt.Sprintf("[file: %s (%s)]", a.Filename, formatSize(a.Size))
	case "message":
		if depth >= maxRenderDepth {
			return `"…"`
		}
		var m struct {
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(t.Value, &m) != nil {
			return ""
		}
		return `"` + renderTokens(decodeTokens(m.Content), depth+1) + `"`
	case "json":
		if s, ok := jsonString(t.Value); ok {
			return s
		}
		return compactJSON(t.Value)
	default:
		s, _ := jsonString(t.Value)
		return s
	}
}

// renderSystem renders a system message as a sentence when its action is known and carries
// the named tokens it should; ok is false otherwise and the caller falls back to the tokens.
func renderSystem(action string, tokens []bridge.Token) (string, bool) {
	named := map[string]string{}
	for _, t := range tokens {
		if t.Name != "" {
			named[t.Name] = renderToken(t, 1)
		}
	}
	who := func(keys ...string) string {
		for _, k := range keys {
			if v := named[k]; v != "" {
				return v
			}
		}
		return ""
	}
	subject := who("user", "invitationEmail")
	var s string
	switch action {
	case "Invitation Sent":
		s = join(who("invitedBy"), "invited", subject)
	case "Invitation Resent":
		s = join(who("invitedBy"), "re-sent the invitation to", subject)
	case "Invitation Removed":
		s = join(who("removedBy"), "removed the invitation for", subject)
	case "Participant Created":
		s = join(who("createdBy"), "added", who("user"))
	case "Participant Joined":
		if u := who("user"); u != "" {
			s = u + " joined the discussion"
			if by := who("invitedBy"); by != "" {
				s += " (invited by " + by + ")"
			}
		}
	case "Participant Left":
		if u := who("user"); u != "" {
			s = u + " left the discussion"
		}
	case "Participant Removed":
		s = join(who("removedBy"), "removed", who("user"))
	case "Message Updated":
		if by := who("updatedBy"); by != "" {
			s = by + " edited a message"
			if m := who("message"); m != "" {
				s += ": " + m
			}
		}
	case "Discussion Updated":
		if by := who("updatedBy"); by != "" {
			s = by + " updated the discussion"
		}
	}
	return s, s != ""
}

// join makes "a verb b", or "" when a or b is missing.
func join(a, verb, b string) string {
	if a == "" || b == "" {
		return ""
	}
	return a + " " + verb + " " + b
}

// formatSize renders a byte count for humans: 999 B, 1.5 KB, 12 MB.
func formatSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"KB", "MB", "GB", "TB"} {
		f /= 1024
		if f < 1024 || unit == "TB" {
			if f < 10 {
				return fmt.Sprintf("%.1f %s", f, unit)
			}
			return fmt.Sprintf("%.0f %s", f, unit)
		}
	}
	return fmt.Sprintf("%d B", n) // unreachable
}

// jsonString returns the value of a JSON string, or the literal text of a number or bool.
func jsonString(raw json.RawMessage) (string, bool) {
	// Most values are strings without escapes: their bytes between the quotes are the
	// string, without encoding/json's reflection (2 % of a burst's CPU went there).
	sc := jsonscan.Scanner{B: raw}
	if inner, plain, ok := sc.Str(); ok && plain && sc.End() {
		return string(inner), true
	}
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

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return ""
	}
	return b.String()
}
