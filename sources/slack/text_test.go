package slack

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var textCases = []struct {
	name, in, want string
}{
	{"plain", "hello world", "hello world"},
	{"entities once", "a &lt;b&gt; &amp;lt; c", "a <b> &lt; c"},
	{"user mention known", "ask <@U1>", "ask @Alice"},
	{"user mention with label", "ask <@U2|bob>", "ask @bob"},
	{"user mention unknown", "ask <@U3>", "ask @U3"},
	{"channel with name", "see <#C1|general>", "see #general"},
	{"channel without name", "see <#C1>", "see #C1"},
	{"broadcasts", "<!channel> <!here> <!everyone>", "@channel @here @everyone"},
	{"broadcast with label", "<!here|here>", "@here"},
	{"user group", "<!subteam^S1|@oncall> help", "@oncall help"},
	{"date", "<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"},
	{"unknown special", "<!foo^bar>", "foo"},
	{"link", "<https://example.com/a?b=1&amp;c=2>", "https://example.com/a?b=1&c=2"},
	{"link with label", "<https://example.com|the docs>", "the docs (https://example.com)"},
	{"link label same as url", "<https://example.com|https://example.com>", "https://example.com"},
	{"mailto", "<mailto:a@b.example|a@b.example>", "a@b.example"},
	{"unclosed", "1 < 2 and <oops", "1 < 2 and <oops"},
	{"escaped angle is text", "&lt;!channel&gt;", "<!channel>"},
	{"control characters", "a\x00b\x1bc\nd\te", "abc\nd\te"},
	{"invalid utf8", "a\xffb", "a\uFFFDb"},
	{"mrkdwn kept as written", "*bold* _it_ ~s~ `code`", "*bold* _it_ ~s~ `code`"},
}

func TestPlainText(t *testing.T) {
	names := map[string]string{"U1": "Alice"}
	for _, c := range textCases {
		t.Run(c.name, func(t *testing.T) {
			if got := PlainText(c.in, func(id string) string { return names[id] }); got != c.want {
				t.Errorf("PlainText(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// FuzzPlainText: whatever Slack sends, the result is valid UTF-8 without control characters
// other than newline and tab, and holds no Slack control sequence that was not in the
// input as escaped text.
func FuzzPlainText(f *testing.F) {
	for _, c := range textCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := PlainText(in, func(id string) string { return "N" })
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q", in)
		}
		for _, r := range out {
			if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
				t.Fatalf("control character %U from %q", r, in)
			}
		}
		// A broadcast in the output can only come from an escaped one in the input.
		if strings.Contains(out, "<!channel>") && !strings.Contains(in, "&lt;!channel&gt;") && !strings.Contains(in, "&lt;!channel>") {
			t.Fatalf("%q became a broadcast: %q", in, out)
		}
	})
}
