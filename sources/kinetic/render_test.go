package kinetic

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
)

func tokens(t testing.TB, js string) []bridge.Token {
	t.Helper()
	return decodeTokens(json.RawMessage(js))
}

func TestRenderContent(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"text", `[{"type":"text","value":"Hello **world**"}]`, "Hello **world**"},
		{"split text", `[{"type":"text","value":"Hel"},{"type":"text","value":"lo"}]`, "Hello"},
		{"user", `[{"type":"text","value":"ping "},{"type":"user","value":{"username":"bob","displayName":"Bob"}}]`, "ping @Bob"},
		{"user without display name", `[{"type":"user","value":{"username":"bob"}}]`, "@bob"},
		{"unknown user", `[{"type":"user","value":{"unknown":true}}]`, "@unknown"},
		{"glued user", `[{"type":"text","value":"Hi"},{"type":"user","value":{"displayName":"Bob"}},{"type":"text","value":"!"}]`, "Hi @Bob!"},
		{"team", `[{"type":"team","value":{"name":"Ops"}}]`, "@Ops"},
		{"attachment", `[{"type":"attachment","value":{"documentId":"d","filename":"a b.png","size":12}}]`, "[file: a b.png (12 B)]"},
		{"big attachment", `[{"type":"attachment","value":{"documentId":"d","filename":"x.iso","size":3221225472}}]`, "[file: x.iso (3.0 GB)]"},
		{"size as string", `[{"type":"attachment","value":{"documentId":"d","filename":"x","size":"2048"}}]`, "[file: x (2.0 KB)]"},
		{"broken attachment", `[{"type":"attachment","value":7}]`, "[file]"},
		{"message", `[{"type":"message","value":{"content":[{"type":"text","value":"q"}]}}]`, `"q"`},
		{"nested messages stop", `[{"type":"message","value":{"content":[{"type":"message","value":{"content":[{"type":"message","value":{"content":[{"type":"message","value":{"content":[{"type":"message","value":{"content":[{"type":"text","value":"deep"}]}}]}}]}}]}}]}}]`, `"""""…"""""`},
		{"json string", `[{"type":"json","value":"true"}]`, "true"},
		{"json object", `[{"type":"json","value":{"a":[1, 2]}}]`, `{"a":[1,2]}`},
		{"unknownUser", `[{"type":"unknownUser"}]`, "@unknown"},
		{"unknownTeam", `[{"type":"unknownTeam","value":{}}]`, "@unknown"},
		{"unknown type with string", `[{"type":"sticker","value":"🎉"}]`, "🎉"},
		{"unknown type with object", `[{"type":"sticker","value":{"id":1}}]`, ""},
		{"empty", `[]`, ""},
		{"not tokens", `"nope"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renderContent(tokens(t, tt.content)); got != tt.want {
				t.Errorf("renderContent = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KB", 1536: "1.5 KB", 10 << 20: "10 MB", 5 << 40: "5.0 TB", 5000 << 40: "5000 TB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzRenderContent renders arbitrary content: never a panic, always valid UTF-8. Its seeds
// are the content arrays of the frame fixtures.
func FuzzRenderContent(f *testing.F) {
	for _, b := range fixtureFrames(f) {
		var fr struct {
			Payload struct {
				Content json.RawMessage `json:"content"`
			} `json:"payload"`
		}
		if json.Unmarshal(b, &fr) == nil && len(fr.Payload.Content) > 0 {
			f.Add([]byte(fr.Payload.Content), "")
			f.Add([]byte(fr.Payload.Content), "Participant Joined")
		}
	}
	f.Fuzz(func(t *testing.T, content []byte, action string) {
		toks := decodeTokens(content)
		text := renderContent(toks)
		if !utf8.ValidString(text) {
			t.Fatalf("invalid UTF-8: %q", text)
		}
		if s, ok := renderSystem(action, toks); ok && s == "" {
			t.Fatal("renderSystem reported ok with no text")
		}
	})
}

// FuzzJSONString holds jsonString's fast path to encoding/json: whatever value it gives for a
// string is the one json.Unmarshal gives, and it gives one whenever json.Unmarshal does.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{`"plain"`, ` "spaced" `, `"esc\"aped\u00e9"`, `"é ✓"`, "\"bad \xff utf8\"", `"ctl` + "\x01" + `"`,
		`12.5`, `true`, `null`, `"unterminated`, `"a" "b"`, `{"x":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := jsonString(raw)
		var want string
		if json.Unmarshal(raw, &want) == nil {
			if !ok || got != want {
				t.Fatalf("jsonString(%q) = %q, %v; encoding/json gives %q", raw, got, ok, want)
			}
		}
	})
}
