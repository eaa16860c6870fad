package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// templateFuncs are what a body or header template may call beyond text/template's builtins.
// They exist so that a user can build a JSON body (a Teams card, a Discord message) from
// free text without ever writing a quote of their own:
//
//	json v          the JSON encoding of v: a quoted, escaped string for text
//	jsonstr v       v as text, escaped for use inside a JSON string literal (no quotes)
//	truncate n v    v as text, cut to at most n characters, ending in "…" when cut
//	default d v     v, or d when v is empty (nil, "", 0, empty list)
//
// Example (Discord):
//
//	{"content": {{with .Data.Message}}{{printf "**%s**: %s" .Author.DisplayName .Text | truncate 2000 | json}}{{else}}{{json .Type}}{{end}},
//	 "allowed_mentions": {"parse": []}}
var templateFuncs = template.FuncMap{
	"json":     toJSON,
	"jsonstr":  jsonString,
	"truncate": truncate,
	"default":  defaultValue,
}

func toJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// The body is not HTML; escaping "<" would only make "<!channel>" unreadable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func jsonString(v any) (string, error) {
	s, err := toJSON(text(v))
	if err != nil {
		return "", err
	}
	return s[1 : len(s)-1], nil
}

func truncate(n int, v any) string {
	s := text(v)
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut, i := 0, 0
	for i = range s {
		if cut == n-1 {
			break
		}
		cut++
	}
	return s[:i] + "…"
}

func defaultValue(def, v any) any {
	if v == nil {
		return def
	}
	if rv := reflect.ValueOf(v); rv.IsZero() || (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0 {
		return def
	}
	return v
}

// text renders a template value as plain text.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// parseTemplate parses src with the helper functions, reporting errors by template line.
func parseTemplate(name, src string) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, config.TemplateError(err)
	}
	return t, nil
}

// execute renders t for one envelope.
func execute(t *template.Template, env bridge.Envelope) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, env); err != nil {
		return nil, config.TemplateError(err)
	}
	return b.Bytes(), nil
}

// sampleEnvelope is what Validate runs templates against: every field set, and text with
// everything that breaks naive JSON templating.
func sampleEnvelope() bridge.Envelope {
	at := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	return bridge.NewEnvelope(bridge.Event{
		ID:         "evt_sample",
		Type:       bridge.MessageCreated,
		Source:     "sample",
		Time:       at,
		Discussion: bridge.Discussion{ID: "d-sample", Title: `Incident "42" <!channel>`, URL: "https://example.com/d?x=1&y=2"},
		Message: &bridge.Message{
			ID: "m-sample", VersionID: "v1", Kind: bridge.KindUser,
			Text:      "Line one \"quoted\" \\ back\nline two\ttab <!here> @everyone ünïcödé 🚨",
			Content:   []bridge.Token{{Type: "text", Value: json.RawMessage(`"Line one"`)}},
			Author:    bridge.User{Username: "sample.user", DisplayName: "Sample \"User\"", Email: "sample@example.com"},
			CreatedAt: at, UpdatedAt: at,
			Attachments: []bridge.Attachment{{Filename: "a.txt", ContentType: "text/plain", Size: 1, URL: "https://example.com/a.txt"}},
		},
		Raw: json.RawMessage(`{}`),
	})
}
