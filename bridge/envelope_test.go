package bridge

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// designEnvelope is the webhook body example of DESIGN §4, verbatim: the contract that
// receivers were promised.
const designEnvelope = `{
  "type": "message.created",
  "timestamp": "2026-11-26T17:00:00Z",
  "data": {
    "source": "acme",
    "discussion": {"id": "…", "title": "…", "url": "…"},
    "message": {
      "id": "…", "version_id": "…", "parent_id": "…", "kind": "user",
      "text": "plain text rendering of the content tokens",
      "content": [{"type": "text", "value": "…"}],
      "author": {"username": "…", "display_name": "…", "email": "…"},
      "created_at": "…", "updated_at": "…",
      "attachments": [{"filename": "…", "content_type": "…", "size": 123, "url": "…"}]
    },
    "raw": {}
  }
}`

// fullEvent sets every field an envelope can carry.
func fullEvent() Event {
	at := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	return Event{
		ID:         "evt_abc",
		Type:       MessageCreated,
		Source:     "acme",
		Time:       at,
		Discussion: Discussion{ID: "d1", Title: "Incident 42", URL: "https://acme.kinops.io/d/d1"},
		Message: &Message{
			ID: "m1", VersionID: "v1", ParentID: "p1", Kind: KindUser, Action: "edit",
			Text:      "hello",
			Content:   []Token{{Type: "text", Name: "n", Value: json.RawMessage(`"hello"`)}},
			Author:    User{Username: "alice", DisplayName: "Alice", Email: "alice@example.com"},
			CreatedAt: at, UpdatedAt: at,
			Attachments: []Attachment{{Filename: "a.txt", ContentType: "text/plain", Size: 3, URL: "https://x/a.txt"}},
		},
		Raw: json.RawMessage(`{"k": 1}`),
	}
}

// keyPaths lists every object key of a JSON document as a dotted path, arrays as "[]".
func keyPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, doc)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				out = append(out, p)
				walk(p, c)
			}
		case []any:
			for _, c := range v {
				walk(prefix+"[]", c)
			}
		}
	}
	walk("", v)
	sort.Strings(out)
	return slices.Compact(out)
}

func TestEnvelopeMatchesDesign(t *testing.T) {
	got, err := MarshalEnvelope(fullEvent())
	if err != nil {
		t.Fatal(err)
	}
	want := keyPaths(t, []byte(designEnvelope))
	// Extensions beyond the DESIGN example, each documented on the bridge types: a system
	// message's action and a token's name.
	extra := map[string]bool{"data.message.action": true, "data.message.content[].name": true}
	have := keyPaths(t, got)
	for _, p := range want {
		if !slices.Contains(have, p) {
			t.Errorf("DESIGN §4 field %s missing from the envelope", p)
		}
	}
	for _, p := range have {
		if strings.HasPrefix(p, "data.raw.") {
			continue // Kinetic's object, passed through as received
		}
		if !slices.Contains(want, p) && !extra[p] {
			t.Errorf("envelope field %s is not in DESIGN §4", p)
		}
	}
}

func TestMarshalEnvelope(t *testing.T) {
	at := time.Date(2026, 11, 26, 18, 0, 0, 500, time.FixedZone("CET", 3600))
	base := Event{ID: "evt_1", Source: "acme", Time: at, Discussion: Discussion{ID: "d1", Title: "T"}}
	with := func(f func(e *Event)) Event {
		e := base
		f(&e)
		return e
	}
	tests := []struct {
		name string
		in   Event
		want string
	}{
		{
			name: "message with tricky text stays readable and UTC",
			in: with(func(e *Event) {
				e.Type = MessageCreated
				e.Message = &Message{ID: "m1", Kind: KindUser, Text: "<!channel> \"hi\" & ünï\n",
					Author: User{DisplayName: "Al"}}
			}),
			want: `{"type":"message.created","timestamp":"2026-11-26T17:00:00.0000005Z","data":{"source":"acme",` +
				`"discussion":{"id":"d1","title":"T"},"message":{"id":"m1","kind":"user","text":"<!channel> \"hi\" & ünï\n",` +
				`"content":[],"author":{"display_name":"Al"}}}}`,
		},
		{
			name: "deleted message keeps its id",
			in: with(func(e *Event) {
				e.Type = MessageDeleted
				e.Message = &Message{ID: "m1", Kind: KindUser, Content: []Token{}}
			}),
			want: `{"type":"message.deleted","timestamp":"2026-11-26T17:00:00.0000005Z","data":{"source":"acme",` +
				`"discussion":{"id":"d1","title":"T"},"message":{"id":"m1","kind":"user","text":"","content":[],"author":{}}}}`,
		},
		{
			name: "non-message event has no message, raw compacted",
			in: with(func(e *Event) {
				e.Type = ParticipantCreated
				e.Message = &Message{ID: "stray"}
				e.Raw = json.RawMessage("{ \"user\" : {\"username\": \"bob\"} }\n")
			}),
			want: `{"type":"participant.created","timestamp":"2026-11-26T17:00:00.0000005Z","data":{"source":"acme",` +
				`"discussion":{"id":"d1","title":"T"},"raw":{"user":{"username":"bob"}}}}`,
		},
		{
			name: "null raw is omitted",
			in:   with(func(e *Event) { e.Type = DiscussionUpdated; e.Raw = json.RawMessage(" null ") }),
			want: `{"type":"discussion.updated","timestamp":"2026-11-26T17:00:00.0000005Z","data":{"source":"acme",` +
				`"discussion":{"id":"d1","title":"T"}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalEnvelope(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			// The hand-written encoder must write encoding/json's bytes exactly.
			if ref := encodeEnvelopeReflect(t, tt.in); string(got) != ref {
				t.Errorf("MarshalEnvelope and encoding/json differ:\n%s\n%s", got, ref)
			}
		})
	}
}

func TestNewEnvelopeDoesNotAliasEvent(t *testing.T) {
	e := fullEvent()
	e.Message.Content = nil
	env := NewEnvelope(e)
	if env.ID != e.ID {
		t.Errorf("ID = %q, want %q (templates use it)", env.ID, e.ID)
	}
	if env.Data.Message == e.Message || e.Message.Content != nil {
		t.Error("NewEnvelope changed or shared the event's message")
	}
}

func TestMarshalEnvelopeInvalidRaw(t *testing.T) {
	e := fullEvent()
	e.Raw = json.RawMessage(`{"broken"`)
	if _, err := MarshalEnvelope(e); err == nil {
		t.Fatal("want an error for invalid raw JSON")
	}
}

func TestMarshalEnvelopeResultIsNotReused(t *testing.T) {
	a, err := MarshalEnvelope(fullEvent())
	if err != nil {
		t.Fatal(err)
	}
	keep := bytes.Clone(a)
	other := fullEvent()
	other.Message.Text = "something else entirely, and longer than before"
	for range 3 {
		if _, err := MarshalEnvelope(other); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a, keep) {
		t.Fatal("a later call overwrote an earlier result (pooled buffer leaked out)")
	}
}

// encodeEnvelopeReflect is what MarshalEnvelope wrote before it had its own encoder:
// encoding/json's Encoder without HTML escaping, less its newline.
func encodeEnvelopeReflect(t testing.TB, e Event) string {
	t.Helper()
	env := NewEnvelope(e)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&env); err != nil {
		return "error"
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// FuzzEnvelopeEncoder holds the hand-written encoder to encoding/json's bytes on every
// string (any bytes: invalid UTF-8, control characters, U+2028), raw JSON (valid or not,
// spaced or compact), time and number the envelope carries.
func FuzzEnvelopeEncoder(f *testing.F) {
	f.Add("message.created", "d1", "T", "m1", "hi \"there\"\n<&>", "Al", "a\u2028b", []byte(`{ "a" : [1, 2] }`), []byte(`"x"`), int64(1764180000), int64(5), int64(42))
	f.Add("participant.created", "", "", "", "\xff\x01", "", "", []byte("null"), []byte(""), int64(-62135596800), int64(0), int64(-1))
	f.Add("message.updated", "ü", "\t", "x", "", "\u2029", "e@x", []byte(`{"broken"`), []byte(`[1,`), int64(253402300800), int64(999999999), int64(0))
	f.Fuzz(func(t *testing.T, typ, disc, title, msg, text, name, email string, raw, value []byte, sec, nsec, size int64) {
		at := time.Unix(sec, nsec).In(time.FixedZone("X", int(size%100000)))
		e := Event{ID: "e", Type: typ, Source: name, Time: at, Raw: raw,
			Discussion: Discussion{ID: disc, Title: title, URL: text, Related: []RelatedItem{{Type: title, Key: email}}}}
		if msg != "" {
			e.Message = &Message{ID: msg, VersionID: title, ParentID: name, Kind: typ, Action: email, Text: text,
				Content:   []Token{{Type: name, Name: title, Value: value}, {Type: "text"}},
				Author:    User{Username: name, DisplayName: text, Email: email},
				CreatedAt: at, UpdatedAt: at.Add(time.Duration(nsec)),
				Attachments: []Attachment{{Filename: text, ContentType: typ, Size: size, URL: email}}}
		}
		got, err := MarshalEnvelope(e)
		ref := encodeEnvelopeReflect(t, e)
		if (err != nil) != (ref == "error") {
			t.Fatalf("MarshalEnvelope error %v, encoding/json gave %s", err, ref)
		}
		if err == nil && string(got) != ref {
			t.Fatalf("differ:\n%s\n%s", got, ref)
		}
	})
}

func BenchmarkMarshalEnvelope(b *testing.B) {
	e := fullEvent()
	e.Message.Text = "The database is down again; paging the on-call <@here> — “quotes” and ünïcödé."
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalEnvelope(e); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzMarshalEnvelope: whatever people type, the body is valid JSON that carries their text.
func FuzzMarshalEnvelope(f *testing.F) {
	for _, s := range []string{"", "<!channel> & \"x\"", "a\nb\tc\\", "\x00\x1f\u2028\u2029", "\xff\xfe", "\xe2\x80", "ünïcödé 🚨"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := fullEvent()
		e.Message.Text, e.Discussion.Title, e.Message.Author.DisplayName = s, s, s
		b, err := MarshalEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Data struct {
				Discussion Discussion `json:"discussion"`
				Message    Message    `json:"message"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		var valid strings.Builder
		for _, r := range s {
			valid.WriteRune(r) // as encoding/json does: U+FFFD for each invalid byte
		}
		want := valid.String()
		if got.Data.Message.Text != want || got.Data.Discussion.Title != want {
			t.Fatalf("text %q came back as %q", want, got.Data.Message.Text)
		}
	})
}
