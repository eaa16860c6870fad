package bridge

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/internal/jsonscan"
)

// appendEnvelope appends the JSON of env to dst: byte for byte what encoding/json's Encoder
// writes for *env with SetEscapeHTML(false), without its newline (TestMarshalEnvelope and
// FuzzMarshalEnvelope hold the two together). encoding/json walks the types by reflection
// for every delivery, which was 7 % of the daemon's CPU in a burst; the envelope's shape is
// fixed, so it is written out here field by field. Raw JSON (the Kinetic object, token
// values) still goes through json.Compact, which validates and compacts it as the Encoder
// does.
func appendEnvelope(dst []byte, env *Envelope) ([]byte, error) {
	var err error
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, env.Type)
	dst = append(dst, `,"timestamp":`...)
	if dst, err = appendJSONTime(dst, env.Timestamp); err != nil {
		return nil, err
	}
	dst = append(dst, `,"data":{"source":`...)
	dst = appendJSONString(dst, env.Data.Source)
	dst = append(dst, `,"discussion":`...)
	dst = appendDiscussion(dst, &env.Data.Discussion)
	if m := env.Data.Message; m != nil {
		dst = append(dst, `,"message":`...)
		if dst, err = appendMessage(dst, m); err != nil {
			return nil, err
		}
	}
	if len(env.Data.Raw) > 0 {
		dst = append(dst, `,"raw":`...)
		if dst, err = appendCompactJSON(dst, env.Data.Raw); err != nil {
			return nil, err
		}
	}
	return append(dst, "}}"...), nil
}

func appendDiscussion(dst []byte, d *Discussion) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, d.ID)
	if d.Title != "" {
		dst = append(dst, `,"title":`...)
		dst = appendJSONString(dst, d.Title)
	}
	if d.URL != "" {
		dst = append(dst, `,"url":`...)
		dst = appendJSONString(dst, d.URL)
	}
	if len(d.Related) > 0 {
		dst = append(dst, `,"related_items":[`...)
		for i, r := range d.Related {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"type":`...)
			dst = appendJSONString(dst, r.Type)
			dst = append(dst, `,"key":`...)
			dst = appendJSONString(dst, r.Key)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendMessage(dst []byte, m *Message) ([]byte, error) {
	var err error
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, m.ID)
	if m.VersionID != "" {
		dst = append(dst, `,"version_id":`...)
		dst = appendJSONString(dst, m.VersionID)
	}
	if m.ParentID != "" {
		dst = append(dst, `,"parent_id":`...)
		dst = appendJSONString(dst, m.ParentID)
	}
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, m.Kind)
	if m.Action != "" {
		dst = append(dst, `,"action":`...)
		dst = appendJSONString(dst, m.Action)
	}
	dst = append(dst, `,"text":`...)
	dst = appendJSONString(dst, m.Text)
	dst = append(dst, `,"content":`...)
	if m.Content == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, t := range m.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"type":`...)
			dst = appendJSONString(dst, t.Type)
			if t.Name != "" {
				dst = append(dst, `,"name":`...)
				dst = appendJSONString(dst, t.Name)
			}
			if len(t.Value) > 0 {
				dst = append(dst, `,"value":`...)
				if dst, err = appendCompactJSON(dst, t.Value); err != nil {
					return nil, err
				}
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"author":{`...)
	sep := false
	for _, f := range [...]struct{ key, value string }{
		{`"username":`, m.Author.Username}, {`"display_name":`, m.Author.DisplayName}, {`"email":`, m.Author.Email},
	} {
		if f.value == "" {
			continue
		}
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		dst = appendJSONString(dst, f.value)
		sep = true
	}
	dst = append(dst, '}')
	if !m.CreatedAt.IsZero() {
		dst = append(dst, `,"created_at":`...)
		if dst, err = appendJSONTime(dst, m.CreatedAt); err != nil {
			return nil, err
		}
	}
	if !m.UpdatedAt.IsZero() {
		dst = append(dst, `,"updated_at":`...)
		if dst, err = appendJSONTime(dst, m.UpdatedAt); err != nil {
			return nil, err
		}
	}
	if len(m.Attachments) > 0 {
		dst = append(dst, `,"attachments":[`...)
		for i, a := range m.Attachments {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"filename":`...)
			dst = appendJSONString(dst, a.Filename)
			if a.ContentType != "" {
				dst = append(dst, `,"content_type":`...)
				dst = appendJSONString(dst, a.ContentType)
			}
			dst = append(dst, `,"size":`...)
			dst = strconv.AppendInt(dst, a.Size, 10)
			if a.URL != "" {
				dst = append(dst, `,"url":`...)
				dst = appendJSONString(dst, a.URL)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

// appendJSONTime writes t as time.Time's MarshalJSON does (RFC 3339 with nanoseconds, and
// the same refusal of years outside 0–9999).
func appendJSONTime(dst []byte, t time.Time) ([]byte, error) {
	dst = append(dst, '"')
	dst, err := t.AppendText(dst)
	if err != nil {
		return nil, err
	}
	return append(dst, '"'), nil
}

// appendCompactJSON appends raw compacted, or fails when it is not valid JSON, as the
// Encoder does with a json.RawMessage. The raw JSON kdbridge carries — Kinetic's own
// payloads, token values — is nearly always compact already, so it is first checked with
// jsonscan.Compact, several times faster than json.Compact's state machine (which was 6 % of
// a burst's CPU); only what that check does not accept goes through json.Compact, which then
// decides, and writes, as before.
func appendCompactJSON(dst, raw []byte) ([]byte, error) {
	if jsonscan.Compact(raw) {
		return append(dst, raw...), nil
	}
	b := bytes.NewBuffer(dst)
	if err := json.Compact(b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

const jsonHex = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does without HTML
// escaping: quotes, backslashes and control characters escaped (\b \f \n \r \t by name),
// invalid UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[b>>4], jsonHex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
