package bridge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// JoinTokens renders content tokens with render and joins the pieces as a person would read
// them: adjacent text tokens are one text split in pieces and join as they are; around a
// user, team or file token a space is added where words would otherwise glue together
// ("Hi@Bob"), but not after an opening bracket or before punctuation and closing brackets. Tokens rendered as
// "" are left out. Every renderer of message text (the plain text of events, Slack) shares it.
func JoinTokens(tokens []Token, render func(Token) string) string {
	var b strings.Builder
	prevText := true
	for _, t := range tokens {
		part := render(t)
		if part == "" {
			continue
		}
		isText := t.Type == "text"
		if b.Len() > 0 && (!isText || !prevText) && needSpace(b.String(), part) {
			b.WriteByte(' ')
		}
		b.WriteString(part)
		prevText = isText
	}
	return b.String()
}

func needSpace(before, after string) bool {
	last, _ := utf8.DecodeLastRuneInString(before)
	first, _ := utf8.DecodeRuneInString(after)
	return !unicode.IsSpace(last) && !unicode.IsSpace(first) &&
		!strings.ContainsRune("([{“", last) && !strings.ContainsRune(".,;:!?)]}”", first)
}
