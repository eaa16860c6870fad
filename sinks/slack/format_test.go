package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
)

// controlSeq finds every Slack control sequence in posted text.
var controlSeq = regexp.MustCompile(`<[^>]*>`)

// assertInert fails when text holds a control sequence other than the allowed ones, or a
// broadcast word that is not defused.
func assertInert(t *testing.T, text string, allowed ...string) {
	t.Helper()
	for _, seq := range controlSeq.FindAllString(text, -1) {
		ok := false
		for _, a := range allowed {
			ok = ok || seq == a
		}
		if !ok {
			t.Errorf("control sequence %q in %q", seq, text)
		}
	}
	if regexp.MustCompile(`(?i)@(here|channel|everyone)`).MatchString(text) {
		t.Errorf("live broadcast word in %q", text)
	}
}

func TestEscaping(t *testing.T) {
	const wj = wordJoiner
	tests := []struct{ in, want string }{
		{"<!channel>", "&lt;!channel&gt;"},
		{"<!here|here>", "&lt;!here|here&gt;"},
		{"<!everyone>", "&lt;!everyone&gt;"},
		{"<@U123>", "&lt;@U123&gt;"},
		{"<#C123|general>", "&lt;#C123|general&gt;"},
		{"<!subteam^S123|@oncall>", "&lt;!subteam^S123|@oncall&gt;"},
		{"<https://evil.example|https://good.example>", "&lt;https://evil.example|https://good.example&gt;"},
		{"&amp; &lt;", "&amp;amp; &amp;lt;"},
		{"a > b & c < d", "a &gt; b &amp; c &lt; d"},
		{"@here", "@" + wj + "here"},
		{"@everyone please", "@" + wj + "everyone please"},
		{"hey @Channel!", "hey @" + wj + "Channel!"},
		{"@HERE @group", "@" + wj + "HERE @" + wj + "group"},
		{"mail me@hereford.example", "mail me@" + wj + "hereford.example"}, // harmless over-matching
		{"@alice", "@alice"},
		{"*bold* _it_ ~s~ `code`", "*bold* _it_ ~s~ `code`"},
		{"ünïcödé 🚨 日本語", "ünïcödé 🚨 日本語"},
		{"bad \xff byte", "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		got := escapeText(tt.in)
		if got != tt.want {
			t.Errorf("escapeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		assertInert(t, got)
		if escapeText(got) != escaper.Replace(got) {
			t.Errorf("defuse is not idempotent on %q", got)
		}
	}
}

// TestPostedTextIsInert sends hostile content through the whole sink and checks what
// reached the (fake) Slack API.
func TestPostedTextIsInert(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())

	tok := func(typ string, v any) bridge.Token {
		raw, _ := json.Marshal(v)
		return bridge.Token{Type: typ, Value: raw}
	}
	e := event(bridge.MessageCreated, "d1", "m1", "", "")
	e.Message.Content = []bridge.Token{
		tok("text", "<!channel> <@U123> <https://evil|https://good> @here"),
		tok("user", map[string]string{"username": "x", "displayName": "<!everyone>"}),
		tok("user", map[string]string{"displayName": "here"}),
		tok("team", map[string]string{"name": "everyone"}),
		tok("unknownUser", nil),
		{Type: "json", Value: json.RawMessage(`{"k": "<!here>"}`)},
		tok("attachment", map[string]string{"filename": "ignored: rendered from Attachments"}),
	}
	e.Message.Attachments = []bridge.Attachment{
		{Filename: "a|b>c<!here>.txt", Size: 1536, URL: "https://acme.kinops.io/files/a|b>c?x=1&y=<2>"},
		{Filename: "evil.js", Size: 10, URL: "javascript:alert(1)"},
	}
	deliver(t, s, e, "")
	text := f.CallsOf("chat.postMessage")[0].Param("text")
	wj := wordJoiner
	want := "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|https://good&gt; @" + wj + "here " +
		"@&lt;!everyone&gt; @" + wj + "here @" + wj + "everyone @unknown {\"k\":\"&lt;!here&gt;\"}\n" +
		"📎 <https://acme.kinops.io/files/a%7Cb%3Ec?x=1&amp;y=%3C2%3E|a¦b&gt;c&lt;!here&gt;.txt (1.5 KB)>\n" +
		"📎 evil.js (10 B)"
	if text != want {
		t.Errorf("posted\n %q\nwant\n %q", text, want)
	}
	assertInert(t, text, "<https://acme.kinops.io/files/a%7Cb%3Ec?x=1&amp;y=%3C2%3E|a¦b&gt;c&lt;!here&gt;.txt (1.5 KB)>")
}

func TestSystemMessage(t *testing.T) {
	m := &bridge.Message{ID: "s", Kind: bridge.KindSystem, Text: "@Bob joined the discussion <!here>",
		Content: []bridge.Token{{Type: "user", Name: "user", Value: json.RawMessage(`{"displayName":"Bob"}`)}}}
	text, files := messageParts(context.Background(), m, nil)
	if got := joinLines(text, files); got != "_@Bob joined the discussion &lt;!here&gt;_" {
		t.Errorf("system message = %q", got)
	}
}

func TestTruncation(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name, in string
	}{
		{"entities", escapeText(long("&", 50_000))},
		{"emoji", escapeText(long("🚨", 45_000))},
		{"mixed", escapeText(long("a<b", 20_000))},
		{"link at the cut", long("x", maxText-20) + "\n" + attachmentLine(bridge.Attachment{Filename: "file.txt", URL: "https://example.com/" + long("p", 100)})},
	}
	for _, tt := range tests {
		got := truncateText(tt.in, maxText)
		n := utf8.RuneCountInString(got)
		if n > maxText || n < maxText-200 || !utf8.ValidString(got) || !strings.HasSuffix(got, truncMarker) {
			t.Errorf("%s: %d runes, suffix %q", tt.name, n, got[max(len(got)-40, 0):])
		}
		head := strings.TrimSuffix(got, truncMarker)
		if i := strings.LastIndexByte(head, '&'); i >= 0 && !strings.Contains(head[i:], ";") {
			t.Errorf("%s: cut inside an entity: %q", tt.name, head[i:])
		}
		if i := strings.LastIndexByte(head, '<'); i >= 0 && !strings.Contains(head[i:], ">") {
			t.Errorf("%s: cut inside a link: %q", tt.name, head[i:])
		}
	}
	if got := truncateText("short", maxText); got != "short" {
		t.Errorf("short text changed: %q", got)
	}
	// Small limits, exactly.
	m := utf8.RuneCountInString(truncMarker)
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc&amp;defghijklmnopqrstuvwxyz", m + 4, "abc" + truncMarker},
		{"abc&amp;defghijklmnopqrstuvwxyz", m + 8, "abc&amp;" + truncMarker},
		{"ab <https://x.example|x> cd", m + 10, "ab" + truncMarker},
		{strings.Repeat("日本語", 20), m + 2, "日本" + truncMarker},
	} {
		if got := truncateText(tt.in, tt.n); got != tt.want {
			t.Errorf("truncateText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestLongMessageIsTruncatedWhenPosted(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	s := newSink(t, cfg, newMemKV())
	deliver(t, s, event(bridge.MessageCreated, "d1", "m1", "", strings.Repeat("<!here> ", 10_000)), "")
	text := f.CallsOf("chat.postMessage")[0].Param("text")
	if n := utf8.RuneCountInString(text); n > 40_000 || !strings.HasSuffix(text, truncMarker) {
		t.Errorf("posted %d characters", n)
	}
	assertInert(t, text)
}

func TestTemplate(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	cfg.Template = `{{if .Edited}}(edited) {{end}}*{{.Author.Name}}* in {{link .Discussion.URL .Discussion.Title}}: {{.Message.Text}}` +
		`{{range .Message.Attachments}}` + "\n" + `> {{.}}{{end}}`
	s := newSink(t, cfg, newMemKV())

	e := event(bridge.MessageCreated, "d1", "m1", "", "<!here> hi @everyone <@U1>")
	e.Message.Author.DisplayName = "Eve <!channel>"
	e.Discussion.Title = "Title <@U2|x> & co"
	e.Discussion.URL = "https://acme.kinops.io/#/discussions/d1?a=1&b=2"
	e.Message.Attachments = []bridge.Attachment{{Filename: "x.png", Size: 3, URL: "https://acme.kinops.io/x.png"}}
	deliver(t, s, e, "")
	got := f.CallsOf("chat.postMessage")[0].Param("text")
	link := "<https://acme.kinops.io/#/discussions/d1?a=1&amp;b=2|Title &lt;@U2¦x&gt; &amp; co>"
	file := "<https://acme.kinops.io/x.png|x.png (3 B)>"
	want := "*Eve &lt;!channel&gt;* in " + link + ": &lt;!here&gt; hi @" + wordJoiner + "everyone &lt;@U1&gt;\n> 📎 " + file
	if got != want {
		t.Errorf("templated\n %q\nwant\n %q", got, want)
	}
	assertInert(t, got, link, file)

	up := event(bridge.MessageUpdated, "d1", "m1", "", "fixed")
	deliver(t, s, up, "")
	if upd := f.CallsOf("chat.update"); len(upd) != 1 || !strings.HasPrefix(upd[0].Param("text"), "(edited) *Alice Doe* in <") {
		t.Errorf("edited: %v", upd)
	}

	// A template that renders nothing skips the message.
	cfg.Template = `{{if ne .Message.Kind "user"}}{{.Text}}{{end}}`
	quiet := newSink(t, cfg, newMemKV())
	deliver(t, quiet, event(bridge.MessageCreated, "d1", "m2", "", "hi"), "")
	if n := len(f.CallsOf("chat.postMessage")); n != 1 {
		t.Errorf("skipped message was posted: %d posts", n)
	}
}

func TestTemplateFuncs(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{`{{truncate 5 "abc&amp;def"}}`, "abc…"},
		{`{{truncate 20 "abc"}}`, "abc"},
		{`{{default "none" ""}}`, "none"},
		{`{{link "javascript:x" "label"}}`, "label"},
		{`{{link "https://a.example/x?y=1&amp;z=2" "L|M"}}`, "<https://a.example/x?y=1&amp;z=2|L¦M>"},
		{`{{"bob"}}@{{"here"}}`, "bob@" + wordJoiner + "here"},
	} {
		tmpl, err := parseTextTemplate(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := executeText(tmpl, textData{})
		if err != nil || got != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1536: "1.5 KB", 12 << 20: "12 MB", 3 << 40: "3.0 TB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRouteTemplates(t *testing.T) {
	f := newFake(t)
	cfg := baseConfig(f)
	cfg.Threads = ThreadsNone
	cfg.Template = `sink: {{.Text}}`
	s := newSinkWith(t, cfg, Options{KV: newMemKV(), RouteTemplates: map[string]string{
		"incidents": `{{if .Edited}}(edited) {{end}}*{{.Author.Name}}* in {{link .Discussion.URL .Discussion.Title}}: {{.Text}}`,
		"quiet":     `{{if ne .Message.Kind "user"}}{{.Text}}{{end}}`,
		"plain":     "", // no override
	}})
	e := event(bridge.MessageCreated, "d1", "m1", "", "<!here> & co")
	e.Message.Author.DisplayName = "Eve <!channel>"
	deliverRoute(t, s, e, "incidents", "")
	deliverRoute(t, s, event(bridge.MessageCreated, "d1", "m2", "", "<b>hi</b>"), "other", "")
	deliverRoute(t, s, event(bridge.MessageCreated, "d1", "m3", "", "hi"), "plain", "")
	deliverRoute(t, s, event(bridge.MessageCreated, "d1", "m4", "", "hi"), "quiet", "")
	deliverRoute(t, s, event(bridge.MessageUpdated, "d1", "m1", "", "fixed @channel"), "incidents", "")

	var got []string
	for _, c := range f.CallsOf("chat.postMessage") {
		got = append(got, c.Param("text"))
	}
	want := []string{
		"*Eve &lt;!channel&gt;* in <https://acme.kinops.io/#/discussions/d1|Incident d1>: &lt;!here&gt; &amp; co",
		"sink: &lt;b&gt;hi&lt;/b&gt;",
		"sink: hi",
		// the quiet route's template rendered nothing: skipped
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("posted\n %q\nwant\n %q", got, want)
	}
	upd := f.CallsOf("chat.update")
	if len(upd) != 1 || upd[0].Param("text") != "(edited) *Alice Doe* in <https://acme.kinops.io/#/discussions/d1|Incident d1>: fixed @"+wordJoiner+"channel" {
		t.Errorf("edit through the route: %v", upd)
	}
	for _, text := range got {
		assertInert(t, text, "<https://acme.kinops.io/#/discussions/d1|Incident d1>")
	}

	// Without a sink template, routes without one get the default rendering.
	cfg.Template = ""
	plain := newSinkWith(t, cfg, Options{KV: newMemKV(), RouteTemplates: map[string]string{"incidents": "!{{.Text}}"}})
	deliverRoute(t, plain, event(bridge.MessageCreated, "d2", "m1", "", "a"), "incidents", "")
	deliverRoute(t, plain, event(bridge.MessageCreated, "d2", "m2", "", "b"), "other", "")
	posts := f.CallsOf("chat.postMessage")
	if n := len(posts); n != 5 || posts[3].Param("text") != "!a" || posts[4].Param("text") != "b" {
		t.Errorf("posts %v", posts[3:])
	}
}

func TestRouteTemplatesAreChecked(t *testing.T) {
	f := newFake(t)
	_, err := New("ops-slack", baseConfig(f), Options{KV: newMemKV(), RouteTemplates: map[string]string{
		"good": "{{.Text}}",
		"typo": "ok\n{{.Message.Nope}}",
		"evil": "<!{{.Author.Name}}>",
	}})
	for _, want := range []string{
		`slack: route "typo": template: template line 2, column 10: at <.Message.Nope>: can't evaluate field Nope`,
		`slack: route "evil": template: template line 1: a field right after "<"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v\nwant %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), `"good"`) {
		t.Errorf("a good template reported: %v", err)
	}
}
