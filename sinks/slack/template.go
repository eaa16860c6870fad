package slack

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/internal/config"
)

// textData is what a message template sees. Every string in it is escaped for Slack already,
// so a template can insert any of them anywhere without letting a discussion write a control
// sequence; that is why it is a separate type rather than the bridge.Event.
type textData struct {
	ID, Type, Source string
	Edited           bool // a message.updated event
	Text             string
	Discussion       textDiscussion
	Author           textUser
	Message          textMessage
}

type textDiscussion struct{ ID, Title, URL string }

type textUser struct{ Name, Username, DisplayName, Email string }

type textMessage struct {
	ID, ParentID, Kind, Text string
	Attachments              []string // rendered lines: 📎 <url|name (size)>
	Author                   textUser
}

// textFuncs are what a message template may call beyond text/template's builtins.
var textFuncs = template.FuncMap{
	// link URL LABEL: "<url|label>" for an http(s) URL, else the label. Both are fields.
	"link": func(u, label string) string { return link(unescapeURL(u), label) },
	// truncate N TEXT: at most N characters, not cutting an entity, ending in "…" when cut.
	"truncate": func(n int, s string) string {
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		if n <= 0 {
			return ""
		}
		return cutRunes(s, n-1) + "…"
	},
	// default DEF VALUE: VALUE, or DEF when VALUE is empty.
	"default": func(def, v any) any {
		if v == nil {
			return def
		}
		if rv := reflect.ValueOf(v); rv.IsZero() || (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0 {
			return def
		}
		return v
	},
}

// unescapeURL undoes the one entity httpURL writes into a URL field, so that link can parse
// and re-encode it.
func unescapeURL(s string) string { return strings.ReplaceAll(s, "&amp;", "&") }

// openerBeforeField finds a field written right after a literal "<" (optionally "<!", "<@",
// "<#"): whatever the field holds would then be read as a control sequence.
var openerBeforeField = regexp.MustCompile(`<[!@#]?\s*\{\{`)

func parseTextTemplate(src string) (*template.Template, error) {
	t, err := template.New("template").Funcs(textFuncs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, config.TemplateError(err)
	}
	if loc := openerBeforeField.FindStringIndex(src); loc != nil {
		line := 1 + strings.Count(src[:loc[0]], "\n")
		return nil, fmt.Errorf("template line %d: a field right after \"<\" could become a Slack control sequence "+
			"such as <!channel>; build links with {{link .Discussion.URL .Discussion.Title}}", line)
	}
	return t, nil
}

// ValidateTemplate checks a message template as Config.Template and Options.RouteTemplates
// take it: it must parse, must not write a field right after a literal "<", and must run
// against a sample message (so a misspelt field shows now). Errors start with the template's
// own line, "template line 2, column 10: …", ready to follow the YAML key that config.Locate
// or config.Problems puts in front of them. It makes no network calls.
func ValidateTemplate(src string) error {
	_, err := compileTextTemplate(src)
	return err
}

// compileTextTemplate parses a message template and runs it once against sample data.
func compileTextTemplate(src string) (*template.Template, error) {
	t, err := parseTextTemplate(src)
	if err != nil {
		return nil, err
	}
	if _, err := executeText(t, sampleTemplateData()); err != nil {
		return nil, err
	}
	return t, nil
}

func executeText(t *template.Template, d textData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", config.TemplateError(err)
	}
	// A template may join two fields into a broadcast word ("…@" + "here…").
	return defuse(b.String()), nil
}

// iconFuncs hash an email the way Gravatar wants (trimmed, lowercased).
var iconFuncs = template.FuncMap{
	"md5": func(s string) string {
		sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(s))))
		return hex.EncodeToString(sum[:])
	},
	"sha256": func(s string) string {
		sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(s))))
		return hex.EncodeToString(sum[:])
	},
	"lower": strings.ToLower,
}

func parseIconTemplate(src string) (*template.Template, error) {
	t, err := template.New("icon_url").Funcs(iconFuncs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, config.TemplateError(err)
	}
	return t, nil
}

// executeIcon renders the icon URL for an author (raw values: the result is a URL parameter,
// not message text).
func executeIcon(t *template.Template, u textUser) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, u); err != nil {
		return "", config.TemplateError(err)
	}
	return strings.TrimSpace(b.String()), nil
}

// sampleUser and sampleTemplateData are what Validate runs templates against.
func sampleUser() textUser {
	return textUser{Name: "Sample User", Username: "sample.user", DisplayName: "Sample User", Email: "Sample@Example.com"}
}

func sampleTemplateData() textData {
	u := sampleUser()
	return textData{
		ID: "evt_sample", Type: "message.created", Source: "sample",
		Text:       "Hello &lt;world&gt;\n📎 <https://example.com/a.txt|a.txt (1 B)>",
		Discussion: textDiscussion{ID: "d-sample", Title: "Incident 42", URL: "https://example.com/#/discussions/d-sample"},
		Author:     u,
		Message: textMessage{ID: "m-sample", ParentID: "m-parent", Kind: "user", Text: "Hello &lt;world&gt;",
			Attachments: []string{"📎 <https://example.com/a.txt|a.txt (1 B)>"}, Author: u},
	}
}
