// Package jsonscan reads JSON in one validating pass, for the fast paths that must not
// accept anything encoding/json rejects: the Kinetic source's frame and message decoding,
// and the envelope's check that raw JSON is compact already. It accepts a subset of valid
// JSON — a key with escapes or invalid UTF-8 in an object, nesting past MaxDepth — and its
// callers leave the rest to encoding/json, which decides.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting Value follows (encoding/json allows 10,000 levels): deeper
// values give up, for encoding/json to decide.
const MaxDepth = 64

// Scanner reads one JSON text. Every method validates what it passes over.
type Scanner struct {
	B []byte
	I int
	// Spaced is set once WS has passed over any space: the text is not compact.
	Spaced bool
}

// WS passes over space.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.Spaced = true
			s.I++
		default:
			return
		}
	}
}

// Peek returns the next non-space byte (0 at the end).
func (s *Scanner) Peek() byte {
	s.WS()
	if s.I >= len(s.B) {
		return 0
	}
	return s.B[s.I]
}

// Str reads a string and returns its bytes between the quotes, and whether they are plain:
// free of escapes and valid UTF-8, so that they are the string's value.
func (s *Scanner) Str() (inner []byte, plain, ok bool) {
	if s.Peek() != '"' {
		return nil, false, false
	}
	s.I++
	start := s.I
	plain = true
	ascii := true
	next := s.I // where a skip of plain words is tried next
	for s.I < len(s.B) {
		if s.I >= next {
			s.I += plainRun(s.B[s.I:]) // most of a string
			next = s.I + 8             // then byte by byte through the word that needs a look
			if s.I >= len(s.B) {
				break
			}
		}
		c := s.B[s.I]
		switch {
		case c == '"':
			inner = s.B[start:s.I]
			s.I++
			if !ascii && !utf8.Valid(inner) {
				plain = false
			}
			return inner, plain, true
		case c == '\\':
			plain = false
			s.I++
			if s.I >= len(s.B) {
				return nil, false, false
			}
			switch s.B[s.I] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.I++
			case 'u':
				if s.I+4 >= len(s.B) {
					return nil, false, false
				}
				for _, h := range s.B[s.I+1 : s.I+5] {
					if !IsHex(h) {
						return nil, false, false
					}
				}
				s.I += 5
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			s.I++
		}
	}
	return nil, false, false
}

// plainRun returns how many of b's first bytes, in whole words of eight, a JSON string holds
// as they are: ASCII, and neither a quote, a backslash nor a control character. Scanning or
// escaping a string can skip them at once and look at the rest byte by byte.
func plainRun(b []byte) int {
	i := 0
	for i+8 <= len(b) && !needsLook(binary.LittleEndian.Uint64(b[i:])) {
		i += 8
	}
	return i
}

// needsLook reports whether any of w's eight bytes is a quote, a backslash, a control
// character or not ASCII (the bit tricks of "Bit Twiddling Hacks", "Determine if a word has
// a byte less than n" and "… equal to n"; exact as a yes or no for the whole word).
func needsLook(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := w^(ones*'"'), w^(ones*'\\') // a quote or a backslash becomes a zero byte
	return ((w-ones*0x20)&^w|(q-ones)&^q|(b-ones)&^b|w)&highs != 0
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// IsDigit reports whether c is a decimal digit.
func IsDigit(c byte) bool { return '0' <= c && c <= '9' }

// Number reads a number as JSON spells it.
func (s *Scanner) Number() bool {
	b, i := s.B, s.I
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && IsDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !IsDigit(b[i]) {
			return false
		}
		for i < len(b) && IsDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !IsDigit(b[i]) {
			return false
		}
		for i < len(b) && IsDigit(b[i]) {
			i++
		}
	}
	s.I = i
	return true
}

// Literal reads lit (true, false or null).
func (s *Scanner) Literal(lit string) bool {
	if !bytes.HasPrefix(s.B[s.I:], []byte(lit)) {
		return false
	}
	s.I += len(lit)
	return true
}

// Value passes over one value, nested depth deep (deeper than MaxDepth gives up), and
// returns its bytes.
func (s *Scanner) Value(depth int) ([]byte, bool) {
	if depth > MaxDepth {
		return nil, false
	}
	c := s.Peek()
	start := s.I
	ok := false
	switch {
	case c == '"':
		_, _, ok = s.Str()
	case c == '{':
		ok = s.Object(func([]byte) bool { _, ok := s.Value(depth + 1); return ok })
	case c == '[':
		ok = s.Array(func() bool { _, ok := s.Value(depth + 1); return ok })
	case c == 't':
		ok = s.Literal("true")
	case c == 'f':
		ok = s.Literal("false")
	case c == 'n':
		ok = s.Literal("null")
	case c == '-' || IsDigit(c):
		ok = s.Number()
	}
	if !ok {
		return nil, false
	}
	return s.B[start:s.I], true
}

// Object reads an object, calling member for each key (plain, else the fast path gives up)
// with the scanner before the key's value, which member must read.
func (s *Scanner) Object(member func(key []byte) bool) bool {
	return s.list('{', '}', func() bool {
		key, plain, ok := s.Str()
		if !ok || !plain || s.Peek() != ':' {
			return false
		}
		s.I++
		return member(key)
	})
}

// Array reads an array, calling elem for each element.
func (s *Scanner) Array(elem func() bool) bool { return s.list('[', ']', elem) }

// list reads the items of an object or an array between open and close, separated by
// commas, calling item for each.
func (s *Scanner) list(open, close byte, item func() bool) bool {
	if s.Peek() != open {
		return false
	}
	s.I++
	if s.Peek() == close {
		s.I++
		return true
	}
	for {
		if !item() {
			return false
		}
		switch s.Peek() {
		case ',':
			s.I++
		case close:
			s.I++
			return true
		default:
			return false
		}
	}
}

// End reports whether only space is left.
func (s *Scanner) End() bool { return s.Peek() == 0 && s.I == len(s.B) }

// Compact reports whether b is one JSON value with no space between its tokens, so that
// json.Compact would write it unchanged (FuzzCompact holds the two together). It may turn
// down compact valid JSON (see the package comment): the caller then calls json.Compact.
func Compact(b []byte) bool {
	s := Scanner{B: b}
	_, ok := s.Value(1)
	return ok && s.I == len(b) && !s.Spaced
}
