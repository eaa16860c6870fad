package slack

import (
	"strings"
	"unicode"
)

// PlainText turns Slack message text (mrkdwn with control sequences in angle brackets) into
// plain text that cannot mention, broadcast or link by itself anywhere else:
//
//   - <@U123> and <@U123|bob> become "@" and the user's name (name(U123), else the label,
//     else the id);
//   - <#C123|general> becomes "#general" (the id without a label);
//   - <!here>, <!channel>, <!everyone> become the plain words "@here", "@channel",
//     "@everyone"; <!subteam^S1|@team> its label; <!date^…|fallback> its fallback;
//   - <https://x|label> becomes "label (https://x)", <https://x> and <mailto:a@b|a@b> the
//     address alone;
//   - the entities Slack escapes (&lt; &gt; &amp;) are unescaped, once;
//   - control characters other than newline and tab are dropped, invalid UTF-8 replaced.
//
// name may be nil. A '<' without its '>' is kept as text.
func PlainText(text string, name func(userID string) string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var b strings.Builder
	b.Grow(len(text))
	for {
		i := strings.IndexByte(text, '<')
		if i < 0 {
			b.WriteString(unescape(text))
			break
		}
		j := strings.IndexByte(text[i+1:], '>')
		if j < 0 {
			b.WriteString(unescape(text))
			break
		}
		b.WriteString(unescape(text[:i]))
		b.WriteString(control(text[i+1:i+1+j], name))
		text = text[i+2+j:]
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, b.String())
}

var entities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescape(s string) string { return entities.Replace(s) }

// control renders the inside of one <…> sequence.
func control(seq string, name func(string) string) string {
	target, label, _ := strings.Cut(seq, "|")
	label = unescape(label)
	switch {
	case strings.HasPrefix(target, "@"):
		id := target[1:]
		if name != nil {
			if n := name(id); n != "" {
				return "@" + n
			}
		}
		if label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return "@" + id
	case strings.HasPrefix(target, "#"):
		if label != "" {
			return "#" + label
		}
		return target
	case strings.HasPrefix(target, "!"):
		word := target[1:]
		switch {
		case word == "here" || word == "channel" || word == "everyone":
			return "@" + word
		case label != "":
			return label
		}
		word, _, _ = strings.Cut(word, "^")
		return word
	}
	url := unescape(target)
	if label == "" || label == url || label == strings.TrimPrefix(url, "mailto:") {
		return strings.TrimPrefix(url, "mailto:")
	}
	return label + " (" + url + ")"
}
