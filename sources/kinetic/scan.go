package kinetic

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/jsonscan"
)

// The fast path of frame and message decoding: one validating pass over the bytes, for the
// shape servers send (plain keys spelled as documented, each once, ids and names as plain
// strings, content as an array of token objects). Anything else — escapes in a key, a key
// spelled in another case (encoding/json would match it), a known key given twice, a field
// of another shape, deep nesting, invalid JSON — makes the fast path give up (ok false), and
// the encoding/json path decides, with its exact results and errors. FuzzFastFrame and
// FuzzFastMessage check that whenever the fast path succeeds it reads what that path reads.
// The JSON grammar itself is jsonscan's, shared with the envelope's compactness check.

// scanner is a jsonscan.Scanner with the readers of Kinetic's shapes.
type scanner struct{ jsonscan.Scanner }

func newScanner(b []byte) scanner { return scanner{jsonscan.Scanner{B: b}} }

// fields reads an object whose known keys are names: field reads the value of the k-th
// name. An unknown key's value is passed over (nesting up to depth); a key given twice, or
// one that encoding/json would match to a name only case-insensitively (or a non-ASCII
// one), gives up, for the encoding/json path to decide.
func (s *scanner) fields(names []string, depth int, field func(k int) bool) bool {
	var seen uint32 // bit k: names[k] was read
	return s.Object(func(key []byte) bool {
		k := keyIndex(key, names)
		if k == -2 || k >= 0 && seen&(1<<k) != 0 {
			return false
		}
		if k == -1 {
			_, ok := s.Value(depth)
			return ok
		}
		seen |= 1 << k
		return field(k)
	})
}

var idKey = []string{"id"}

// keyIndex returns the index of key in names, or -1 for another key. A key that
// encoding/json would match to one of names by case folding, but is not spelled so, gives
// up the fast path (-2): any key with a non-ASCII byte (Unicode folds 'ſ' to 's' and 'K' to
// 'k'), or one equal to a name but for ASCII case.
func keyIndex(key []byte, names []string) int {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return -2
		}
	}
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return -2
		}
	}
	return -1
}

// lenient reads a value as lenientString reads it: a plain string, a number or a boolean
// as its literal, null as "". Strings with escapes and everything else give up.
func (s *scanner) lenient() (string, bool) {
	switch c := s.Peek(); {
	case c == '"':
		inner, plain, ok := s.Str()
		if !ok || !plain {
			return "", false
		}
		return string(inner), true
	case c == 'n':
		return "", s.Literal("null")
	case c == 't' || c == 'f' || c == '-' || jsonscan.IsDigit(c):
		v, ok := s.Value(0)
		return string(v), ok
	}
	return "", false
}

var frameKeys = []string{"topic", "event", "ref", "payload"}

// scanFrame is decodeFrame's fast path.
func scanFrame(data []byte) (frame, bool) {
	s := newScanner(data)
	var f frame
	var payload []byte
	ok := s.fields(frameKeys, 1, func(k int) bool {
		if k == 3 {
			v, ok := s.Value(1)
			payload = v
			return ok
		}
		v, ok := s.lenient()
		switch k {
		case 0:
			f.Topic = v
		case 1:
			f.Event = v
		case 2:
			f.Ref = v
		}
		return ok
	})
	if !ok || !s.End() || f.Event == "" {
		return frame{}, false
	}
	if len(payload) > 0 && payload[0] != 'n' {
		// Copied: data is the connection's read buffer.
		f.Payload = unwrapPayload(append(json.RawMessage(nil), payload...))
	}
	return f, true
}

var messageKeysNames = []string{"id", "versionId", "type", "action", "content", "createdBy", "createdAt", "updatedAt", "parent", "parentId"}

// scanMessage is the fast path of message's typed pass: it reads what typedMessage.parsed
// reads.
func scanMessage(raw []byte) (parsedMessage, bool) {
	s := newScanner(raw)
	var p parsedMessage
	var parent string
	ok := s.fields(messageKeysNames, 1, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			p.id, ok = s.lenient()
		case 1:
			p.versionID, ok = s.lenient()
		case 2:
			p.typ, ok = s.lenient()
		case 3:
			p.action, ok = s.lenient()
		case 4:
			p.content, ok = s.tokens()
		case 5:
			p.author, ok = s.user()
		case 6, 7:
			var v []byte
			if v, ok = s.Value(1); ok {
				if k == 6 {
					p.createdAt = parseTime(v)
				} else {
					p.updatedAt = parseTime(v)
				}
			}
		case 8:
			parent, ok = s.parent()
		case 9:
			p.parentID, ok = s.lenient()
		}
		return ok
	})
	if !ok || !s.End() {
		return parsedMessage{}, false
	}
	if p.parentID == "" {
		p.parentID = parent
	}
	return p, true
}

var tokenKeys = []string{"type", "name", "value"}

// tokens reads content as typedTokens does: null, or an array of token objects.
func (s *scanner) tokens() ([]bridge.Token, bool) {
	if s.Peek() == 'n' {
		return nil, s.Literal("null")
	}
	tokens := []bridge.Token{}
	ok := s.Array(func() bool {
		var t bridge.Token
		ok := s.fields(tokenKeys, 3, func(k int) bool {
			var ok bool
			switch k {
			case 0:
				t.Type, ok = s.lenient()
			case 1:
				t.Name, ok = s.lenient()
			case 2:
				var v []byte
				if v, ok = s.Value(3); ok && string(v) != "null" {
					t.Value = append(json.RawMessage(nil), v...)
				}
			}
			return ok
		})
		if ok && t.Type != "" {
			tokens = append(tokens, t)
		}
		return ok
	})
	return tokens, ok
}

var userKeys = []string{"username", "displayName", "email", "unknown"}

// user reads createdBy as wireUser does: null, a plain username string, or an object.
func (s *scanner) user() (bridge.User, bool) {
	var u bridge.User
	switch s.Peek() {
	case 'n':
		return u, s.Literal("null")
	case '"':
		inner, plain, ok := s.Str()
		if !ok || !plain {
			return u, false
		}
		u.Username = string(inner)
		return u, true
	}
	ok := s.fields(userKeys, 2, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			u.Username, ok = s.lenient()
		case 1:
			u.DisplayName, ok = s.lenient()
		case 2:
			u.Email, ok = s.lenient()
		case 3:
			ok = s.Literal("true") || s.Literal("false") || s.Literal("null")
		}
		return ok
	})
	return u, ok
}

// parent reads parent as typedParent does: null, or an object with an id.
func (s *scanner) parent() (string, bool) {
	if s.Peek() == 'n' {
		return "", s.Literal("null")
	}
	var id string
	ok := s.fields(idKey, 2, func(int) bool {
		var ok bool
		id, ok = s.lenient()
		return ok
	})
	return id, ok
}

// messageKeyNames are the keys readMessageKeys reads: the message's keys, and type and
// action, which it only checks — they are the other fields the full decode rejects when they
// are not scalars (see readMessageKeys).
var messageKeyNames = []string{"id", "versionId", "createdAt", "updatedAt", "type", "action"}

// scanMessageKeys is readMessageKeys's fast path: the keys as scanMessage reads them, every
// other value passed over.
func scanMessageKeys(raw []byte) (messageKeys, bool) {
	s := newScanner(raw)
	var k messageKeys
	ok := s.fields(messageKeyNames, 1, func(i int) bool {
		var ok bool
		switch i {
		case 4, 5:
			_, ok = s.lenient()
		case 0:
			k.id, ok = s.lenient()
		case 1:
			k.versionID, ok = s.lenient()
		case 2, 3:
			var v []byte
			if v, ok = s.Value(1); ok {
				if i == 2 {
					k.createdAt = parseTime(v)
				} else {
					k.updatedAt = parseTime(v)
				}
			}
		}
		return ok
	})
	if !ok || !s.End() {
		return messageKeys{}, false
	}
	return k, true
}
