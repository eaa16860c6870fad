package kinetic

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
)

const (
	fixtureDiscussion = "9fa2b330-fa5e-11e8-88ef-7bbe80231820"
	fixtureSpace      = "https://acme.kinops.io"
)

var fixtureDecoder = decoder{source: "acme", space: fixtureSpace}

// fixture reads testdata/frames/<name>.json.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "frames", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeFixture runs a frame through what the session does with it.
func decodeFixture(data []byte) (hubFrame, error) {
	f, err := decodeFrame(data)
	if err != nil {
		return hubFrame{}, err
	}
	return fixtureDecoder.classify(f, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
}

func TestDecodeFixtures(t *testing.T) {
	const hash = "#hash" // the version is a hash of the payload
	created := time.Date(2019, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		file    string
		kind    string // frame kind; "" when bad
		bad     string // bad-input kind
		typ     string
		object  string
		version string
		text    string
		msgKind string
		parent  string
		title   string
		check   func(t *testing.T, hf hubFrame)
	}{
		{file: "message_created", kind: frameEvent, typ: bridge.MessageCreated, object: "m1", text: "Hello team", msgKind: bridge.KindUser,
			check: func(t *testing.T, hf hubFrame) {
				m := hf.decoded.event.Message
				if m.VersionID != "v-m1" || !m.CreatedAt.Equal(created) || m.Author != (bridge.User{Username: "alice", DisplayName: "Alice Moreau", Email: "alice@example.com"}) {
					t.Errorf("message = %+v", m)
				}
				if !hf.decoded.event.Time.Equal(created) {
					t.Errorf("time = %v", hf.decoded.event.Time)
				}
				if hf.decoded.event.Discussion.URL != fixtureSpace+"/#/discussions/"+fixtureDiscussion {
					t.Errorf("url = %q", hf.decoded.event.Discussion.URL)
				}
				if len(m.Content) != 1 || m.Content[0].Type != "text" || string(m.Content[0].Value) != `"Hello team"` {
					t.Errorf("content = %+v", m.Content)
				}
			}},
		{file: "message_created_reply", kind: frameEvent, typ: bridge.MessageCreated, object: "m2", text: "me too", msgKind: bridge.KindUser, parent: "m1"},
		{file: "message_created_parent_only", kind: frameEvent, typ: bridge.MessageCreated, object: "m3", text: "orphan", msgKind: bridge.KindUser, parent: "m0"},
		{file: "message_updated", kind: frameEvent, typ: bridge.MessageUpdated, object: "m1", version: "v2-m1", text: "Hello team, edited", msgKind: bridge.KindUser,
			check: func(t *testing.T, hf hubFrame) {
				if want := created.Add(5 * time.Minute); !hf.decoded.event.Time.Equal(want) {
					t.Errorf("time = %v, want updatedAt %v", hf.decoded.event.Time, want)
				}
			}},
		{file: "message_deleted", kind: frameEvent, typ: bridge.MessageDeleted, object: "m1", version: "v-m1", text: "Hello team", msgKind: bridge.KindUser},
		{file: "message_deleted_minimal", kind: frameEvent, typ: bridge.MessageDeleted, object: "m1", version: hash, msgKind: bridge.KindUser,
			check: func(t *testing.T, hf hubFrame) {
				if !hf.decoded.event.Time.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("time = %v, want the receipt time", hf.decoded.event.Time)
				}
			}},
		{file: "participant_created", kind: frameEvent, typ: bridge.ParticipantCreated, object: "bob", version: hash},
		{file: "participant_updated", kind: frameEvent, typ: bridge.ParticipantUpdated, object: "bob", version: hash},
		{file: "participant_deleted", kind: frameEvent, typ: bridge.ParticipantDeleted, object: "bob", version: hash},
		{file: "invitation_created", kind: frameEvent, typ: bridge.InvitationCreated, object: "bob", version: hash},
		{file: "invitation_updated", kind: frameEvent, typ: bridge.InvitationUpdated, object: "dave@example.com", version: hash},
		{file: "invitation_deleted", kind: frameEvent, typ: bridge.InvitationDeleted, object: "dave@example.com", version: hash},
		{file: "relatedItem_created", kind: frameEvent, typ: bridge.RelatedItemCreated, object: "Submission/5f1c2a8e-3b7d-4e6a-9c21-7d8e4b0a6f13", version: hash},
		{file: "relatedItem_deleted", kind: frameEvent, typ: bridge.RelatedItemDeleted, object: "Submission/5f1c2a8e-3b7d-4e6a-9c21-7d8e4b0a6f13", version: hash},
		{file: "discussion_updated", kind: frameEvent, typ: bridge.DiscussionUpdated, object: fixtureDiscussion, version: "dv2", title: "Incident 42",
			check: func(t *testing.T, hf hubFrame) {
				if want := time.Date(2019, 1, 3, 12, 0, 0, 0, time.UTC); !hf.decoded.event.Time.Equal(want) {
					t.Errorf("time = %v, want updatedAt", hf.decoded.event.Time)
				}
			}},
		{file: "discussion_deleted", kind: frameEvent, typ: bridge.DiscussionDeleted, object: fixtureDiscussion, version: "2019-01-03T12:00:00.000Z", title: "Incident 42"},
		{file: "unsubscribed", kind: frameUnsubscribed},
		{file: "ack_ok", kind: frameAck},
		{file: "ack_error", kind: frameAck},
		{file: "presence_init", kind: framePresence},
		{file: "system_participant_joined", kind: frameEvent, typ: bridge.MessageCreated, object: "s1", msgKind: bridge.KindSystem, text: "@Bob Okafor joined the discussion"},
		{file: "system_message_updated", kind: frameEvent, typ: bridge.MessageCreated, object: "s2", msgKind: bridge.KindSystem, text: `@Alice Moreau edited a message: "Hello team, edited"`},
		{file: "system_invitation_sent_email", kind: frameEvent, typ: bridge.MessageCreated, object: "s3", msgKind: bridge.KindSystem, text: "@Alice Moreau invited dave@example.com"},
		{file: "system_discussion_updated", kind: frameEvent, typ: bridge.MessageCreated, object: "s4", msgKind: bridge.KindSystem, text: "@Alice Moreau updated the discussion"},
		{file: "system_unknown_action", kind: frameEvent, typ: bridge.MessageCreated, object: "s5", msgKind: bridge.KindSystem, text: "@Bob Okafor did a thing"},
		{file: "tokens_all", kind: frameEvent, typ: bridge.MessageCreated, object: "m9", msgKind: bridge.KindUser,
			text: `Hi @Bob Okafor and @Ops Team, see [file: incident report.pdf (1.5 KB)] "quoted" {"a":1} @unknown @unknown:wave:`,
			check: func(t *testing.T, hf hubFrame) {
				m := hf.decoded.event.Message
				want := []bridge.Attachment{{
					Filename: "incident report.pdf", ContentType: "application/pdf", Size: 1536,
					URL: fixtureSpace + "/app/discussions/api/v1/discussions/" + fixtureDiscussion + "/messages/m9/files/doc1/incident_report.pdf",
				}}
				if !slices.Equal(m.Attachments, want) {
					t.Errorf("attachments = %+v, want %+v", m.Attachments, want)
				}
				if len(m.Content) != 12 { // the two non-tokens are left out
					t.Errorf("content has %d tokens, want 12", len(m.Content))
				}
			}},
		{file: "timestamps_no_millis", kind: frameEvent, typ: bridge.MessageCreated, object: "m4", msgKind: bridge.KindUser, text: "plain times",
			check: func(t *testing.T, hf hubFrame) {
				m := hf.decoded.event.Message
				if !m.CreatedAt.Equal(created) || !m.UpdatedAt.Equal(created) {
					t.Errorf("times = %v %v", m.CreatedAt, m.UpdatedAt)
				}
			}},
		{file: "ids_as_numbers", kind: frameEvent, typ: bridge.MessageCreated, object: "17", msgKind: bridge.KindUser, text: "numeric id"},
		{file: "payload_as_string", kind: frameEvent, typ: bridge.MessageCreated, object: "m6", msgKind: bridge.KindUser, text: "legacy payload",
			check: func(t *testing.T, hf hubFrame) {
				if raw := hf.decoded.event.Raw; len(raw) == 0 || raw[0] != '{' {
					t.Errorf("raw = %s, want the unwrapped object", raw)
				}
			}},
		{file: "content_as_string", kind: frameEvent, typ: bridge.MessageCreated, object: "m7", msgKind: bridge.KindUser, text: "legacy content"},
		{file: "content_not_array", kind: frameEvent, typ: bridge.MessageCreated, object: "m5", msgKind: bridge.KindUser, text: "x"},
		{file: "payload_wrong_shape", bad: badPayload},
		{file: "payload_string_not_json", bad: badPayload},
		{file: "message_without_id", bad: badMissingField},
		{file: "participant_without_user", bad: badMissingField},
		{file: "unknown_event", bad: badUnknownEvent},
		{file: "missing_event", bad: badMissingField},
		{file: "missing_topic", bad: badMissingField},
		{file: "garbage_truncated", bad: badMalformed},
		{file: "garbage_array", bad: badMalformed},
		{file: "garbage_binary", bad: badMalformed},
		{file: "garbage_empty", bad: badMalformed},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			hf, err := decodeFixture(fixture(t, tt.file))
			if tt.bad != "" {
				if got := badKind(err); got != tt.bad {
					t.Fatalf("error = %v (kind %q), want kind %q", err, got, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if hf.kind != tt.kind {
				t.Fatalf("kind = %q, want %q", hf.kind, tt.kind)
			}
			if hf.kind == frameUnsubscribed && hf.discussion != fixtureDiscussion {
				t.Errorf("unsubscribed discussion = %q", hf.discussion)
			}
			if hf.kind != frameEvent {
				return
			}
			ev := hf.decoded.event
			if ev.Type != tt.typ || ev.Source != "acme" || ev.Discussion.ID != fixtureDiscussion {
				t.Errorf("event = %s %s %s", ev.Type, ev.Source, ev.Discussion.ID)
			}
			version := tt.version
			if version == hash {
				version = payloadHash(ev.Raw)
			}
			if want := bridge.EventID("acme", fixtureDiscussion, tt.object, version, tt.typ); ev.ID != want {
				t.Errorf("id = %s, want EventID(%q, %q)", ev.ID, tt.object, version)
			}
			if !json.Valid(ev.Raw) {
				t.Errorf("raw is not JSON: %s", ev.Raw)
			}
			if hf.decoded.title != tt.title {
				t.Errorf("title = %q, want %q", hf.decoded.title, tt.title)
			}
			if tt.msgKind != "" {
				m := ev.Message
				if m == nil {
					t.Fatal("no message")
				}
				if m.ID != tt.object || m.Kind != tt.msgKind || m.Text != tt.text || m.ParentID != tt.parent {
					t.Errorf("message id=%q kind=%q parent=%q text=%q\nwant id=%q kind=%q parent=%q text=%q",
						m.ID, m.Kind, m.ParentID, m.Text, tt.object, tt.msgKind, tt.parent, tt.text)
				}
			} else if ev.Message != nil {
				t.Errorf("a %s event has a message", ev.Type)
			}
			if tt.check != nil {
				tt.check(t, hf)
			}
		})
	}
	// Every fixture is in the table, and every per-topic event has a fixture.
	files, _ := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".json"); !seen[name] {
			t.Errorf("fixture %s is not in the table", name)
		}
	}
	for name := range topicEvents {
		if !seen[strings.ReplaceAll(name, ":", "_")] {
			t.Errorf("no fixture for %s", name)
		}
	}
}

// An event left undecoded by classify (the source's decoder defers events to the worker of
// its discussion) resolves to what classify decodes at once, errors included, for every
// frame fixture.
func TestDeferredEventsResolveAlike(t *testing.T) {
	lazy := fixtureDecoder
	lazy.deferEvents = true
	received := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	files, _ := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	deferred := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := decodeFrame(data)
		if err != nil {
			continue
		}
		want, werr := fixtureDecoder.classify(f, received)
		got, gerr := lazy.classify(f, received)
		if gerr == nil && got.kind == frameEvent {
			if got.decoded.lazy.payload == nil {
				t.Errorf("%s: an event was decoded by classify", filepath.Base(file))
				continue
			}
			deferred++
			got.decoded, gerr = lazy.resolve(got.discussion, got.decoded.lazy)
		}
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Errorf("%s: error %v, deferred %v", filepath.Base(file), werr, gerr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Errorf("%s: deferred and resolved differs:\n at once  %+v\n deferred %+v", filepath.Base(file), want, got)
		}
	}
	if deferred < len(topicEvents) {
		t.Errorf("%d fixtures deferred, want at least one per event (%d)", deferred, len(topicEvents))
	}
}

// The same event decoded twice, or with its keys in another order, has the same id.
func TestEventIDStable(t *testing.T) {
	a, err := decodeFixture(fixture(t, "participant_updated"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	_ = json.Unmarshal(fixture(t, "participant_updated"), &v)
	compact, _ := json.Marshal(v) // keys sorted, spaces gone
	b, err := decodeFixture(compact)
	if err != nil {
		t.Fatal(err)
	}
	if a.decoded.event.ID != b.decoded.event.ID {
		t.Errorf("ids differ: %s %s", a.decoded.event.ID, b.decoded.event.ID)
	}
	// A live message.created and the same message caught up after an edit share the id.
	m1, _ := decodeFixture(fixture(t, "message_created"))
	var msg map[string]any
	_ = json.Unmarshal(fixture(t, "message_updated"), &msg)
	edited, _ := json.Marshal(msg["payload"])
	m, err := fixtureDecoder.message(fixtureDiscussion, edited)
	if err != nil {
		t.Fatal(err)
	}
	if ev := fixtureDecoder.messageEvent(fixtureDiscussion, bridge.MessageCreated, m, edited, time.Now()); ev.ID != m1.decoded.event.ID {
		t.Errorf("message.created id changed with the version: %s %s", ev.ID, m1.decoded.event.ID)
	}
	if !strings.HasPrefix(a.decoded.event.ID, "evt_") || strings.Contains(a.decoded.event.ID, ".") {
		t.Errorf("id %q", a.decoded.event.ID)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2019, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, in := range []string{
		`"2019-01-01T12:00:00.000Z"`, `"2019-01-01T12:00:00Z"`, `"2019-01-01T13:00:00+01:00"`,
		`"2019-01-01T13:00:00.000+0100"`, `"2019-01-01 12:00:00Z"`, `"2019-01-01T12:00:00"`,
		`1546344000000`, `1546344000`,
	} {
		if got := parseTime(json.RawMessage(in)); !got.Equal(want) {
			t.Errorf("parseTime(%s) = %v", in, got)
		}
	}
	for _, in := range []string{``, `null`, `"yesterday"`, `{}`, `-5`, `"2019-13-01T00:00:00Z"`} {
		if got := parseTime(json.RawMessage(in)); !got.IsZero() {
			t.Errorf("parseTime(%s) = %v, want zero", in, got)
		}
	}
}

// fixtureFrames are the frames of testdata/frames, the first seeds of the fuzz targets.
func fixtureFrames(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no frame fixtures: %v", err)
	}
	var out [][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeFrame feeds arbitrary frames through the decoder: it must never panic, and what
// it accepts must be a well-formed event.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range fixtureFrames(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hf, err := decodeFixture(data)
		if err != nil {
			if badKind(err) == "" {
				t.Fatalf("error without a bad-input kind: %v", err)
			}
			return
		}
		if hf.kind != frameEvent {
			return
		}
		ev := hf.decoded.event
		if !strings.HasPrefix(ev.ID, "evt_") || !slices.Contains(bridge.EventTypes, ev.Type) || !json.Valid(ev.Raw) {
			t.Fatalf("bad event: %+v", ev)
		}
		if ev.Message != nil {
			if ev.Message.ID == "" || !utf8.ValidString(ev.Message.Text) {
				t.Fatalf("bad message: %+v", ev.Message)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("event does not marshal: %v", err)
			}
		}
	})
}

// FuzzMessageTyped checks the one-pass decode of a Message payload against the lenient one:
// whenever the typed pass succeeds, it must read exactly what the lenient pass reads (message
// falls back to the lenient pass only when the typed one fails).
func FuzzMessageTyped(f *testing.F) {
	for _, b := range fixtureFrames(f) {
		var fr struct {
			Payload json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(b, &fr) == nil && len(fr.Payload) > 0 {
			f.Add([]byte(unwrapPayload(fr.Payload)))
		}
	}
	f.Add([]byte(`{"id":"m1","createdBy":{"username":"a","email":"x"},"createdBy":{"username":"b"}}`))
	f.Add([]byte(`{"id":"m1","content":[{"type":"text","name":"n","value":1}],"content":[{"type":"text","value":2}]}`))
	f.Add([]byte(`{"id":"m1","parent":{"id":"p1"},"parent":null,"Content":null,"createdBy":null}`))
	f.Add([]byte(`{"id":"m\u0031","createdBy":"bob","parent":"p0","createdAt":1546344000}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // payloads reach message validated (by the frame or the REST page)
		}
		var typed typedMessage
		if json.Unmarshal(data, &typed) != nil {
			return
		}
		got := typed.parsed()
		want, err := lenientMessage(data)
		if err != nil {
			t.Fatalf("typed pass succeeded, lenient failed: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("typed and lenient differ:\n typed   %+v\n lenient %+v", got, want)
		}
	})
}

// FuzzMessageKeys checks what a catch-up reads of a message while it pages back against the
// full decode: whenever readMessageKeys succeeds, message succeeds with the same keys.
func FuzzMessageKeys(f *testing.F) {
	for _, b := range fixtureFrames(f) {
		var fr struct {
			Payload json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(b, &fr) == nil && len(fr.Payload) > 0 {
			f.Add([]byte(unwrapPayload(fr.Payload)))
		}
	}
	f.Add([]byte(`{"id":"m1","versionId":"v1","createdAt":"2026-11-26T17:01:30.123Z","updatedAt":"2026-11-26T17:05:00Z"}`))
	f.Add([]byte(`{"id":7,"ID":"m2","createdAt":1546344000,"createdBy":"bob","content":"text"}`))
	f.Add([]byte(`{"id":"m\u0031","versionId":null,"createdAt":"x","updatedAt":"2019-01-01T12:00:00.000+01:00"}`))
	f.Add([]byte(`{"id":"m3","type":"System","action":{"x":1}}`)) // keys fine, the message is not
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // REST pages are validated as a whole before their messages are read
		}
		k, ok := readMessageKeys(data)
		if !ok {
			return
		}
		m, err := fixtureDecoder.message("d1", data)
		if err != nil {
			t.Fatalf("keys read, message failed: %v", err)
		}
		want := messageKeys{id: m.ID, versionID: m.VersionID, createdAt: m.CreatedAt, updatedAt: m.UpdatedAt}
		if !reflect.DeepEqual(k, want) {
			t.Fatalf("keys differ:\n keys    %+v\n message %+v", k, want)
		}
	})
}

// fastSeeds are the frame fixtures and frames of unusual shapes for the fast-path fuzzers.
func fastSeeds(f *testing.F) {
	for _, b := range fixtureFrames(f) {
		f.Add(b)
	}
	f.Add([]byte(benchFrame))
	f.Add([]byte(`{"topic":"discussions/discussion/d1","event":"message:created","payload":{"id":"m1","ID":"m2"}}`))
	f.Add([]byte(`{"topic":"discussions/discussion/d1","Event":"message:created","payload":"{\"id\":\"m1\"}","ref":7}`))
	f.Add([]byte(` {"event":"message:updated","topic":"discussions/discussion/d\u0031","payload":{"id":1.5e3,"content":[{"type":"text","value":"a\nb"},{"type":"","value":1},{"type":"x","value":null}],"createdBy":"bob","parent":{"id":"p"},"parentId":null,"createdAt":1546344000}} `))
	f.Add([]byte(`{"event":"message:created","topic":"discussions/discussion/d1","payload":{"id":"m1","createdBy":{"username":"a","unknown":true,"x":[1,{"y":null}]},"versionId":"v","updatedAt":"2019-01-01 12:00:00"}}`))
}

// FuzzFastFrame checks scanFrame against decodeFrameJSON: whenever the one-pass scanner
// reads a frame, encoding/json reads the same frame.
func FuzzFastFrame(f *testing.F) {
	fastSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := scanFrame(data)
		if !ok {
			return
		}
		want, err := decodeFrameJSON(data)
		if err != nil {
			t.Fatalf("scanned, encoding/json fails: %v\n%q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frames differ:\n scan %+v\n json %+v", got, want)
		}
	})
}

// FuzzFastMessage checks scanMessage (and scanMessageKeys) against the encoding/json
// passes: whenever the scanner reads a payload, the typed pass (or, when it fails, the
// lenient one) reads the same message.
func FuzzFastMessage(f *testing.F) {
	fastSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr struct {
			Payload json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &fr) == nil && len(fr.Payload) > 0 {
			data = unwrapPayload(fr.Payload)
		}
		if k, ok := scanMessageKeys(data); ok {
			var want struct {
				ID        lenientString `json:"id"`
				VersionID lenientString `json:"versionId"`
				CreatedAt typedTime     `json:"createdAt"`
				UpdatedAt typedTime     `json:"updatedAt"`
			}
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("keys scanned, encoding/json fails: %v", err)
			}
			w := messageKeys{id: string(want.ID), versionID: string(want.VersionID), createdAt: time.Time(want.CreatedAt), updatedAt: time.Time(want.UpdatedAt)}
			if !reflect.DeepEqual(k, w) {
				t.Fatalf("keys differ:\n scan %+v\n json %+v", k, w)
			}
		}
		got, ok := scanMessage(data)
		if !ok {
			return
		}
		var typed typedMessage
		var want parsedMessage
		if err := json.Unmarshal(data, &typed); err == nil {
			want = typed.parsed()
		} else {
			var lerr error
			if want, lerr = lenientMessage(data); lerr != nil {
				t.Fatalf("scanned, both encoding/json passes fail: %v, %v", err, lerr)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("messages differ:\n scan %+v\n json %+v", got, want)
		}
	})
}
