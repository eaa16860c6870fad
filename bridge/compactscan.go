package bridge

// compactScan checks that b is one JSON value with no whitespace between its tokens: then
// json.Compact would write b unchanged. It accepts a subset of what json.Compact accepts —
// nothing it accepts is rejected there or written differently (FuzzCompactScan) — and may
// turn down valid JSON (whitespace, nesting deeper than compactScanDepth), which the caller
// leaves to json.Compact. As encoding/json does, strings may hold any byte from 0x20 up,
// valid UTF-8 or not, and escapes are checked for their form only.
type compactScan struct {
	b []byte
	i int
}

// compactScanDepth bounds the nesting compactScan follows (encoding/json allows 10,000):
// deeper values are left to json.Compact, and the recursion stays shallow.
const compactScanDepth = 64

// strPlain marks the bytes a string holds as they are: not '"', not '\\', not a control byte.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *compactScan) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		return depth < compactScanDepth && s.object(depth)
	case c == '[':
		return depth < compactScanDepth && s.array(depth)
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// at reports whether the next byte is c, and steps over it if so.
func (s *compactScan) at(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *compactScan) object(depth int) bool {
	s.i++ // '{'
	if s.at('}') {
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' || !s.str() || !s.at(':') || !s.value(depth+1) {
			return false
		}
		if s.at('}') {
			return true
		}
		if !s.at(',') {
			return false
		}
	}
}

func (s *compactScan) array(depth int) bool {
	s.i++ // '['
	if s.at(']') {
		return true
	}
	for {
		if !s.value(depth + 1) {
			return false
		}
		if s.at(']') {
			return true
		}
		if !s.at(',') {
			return false
		}
	}
}

func (s *compactScan) str() bool {
	b := s.b
	i := s.i + 1 // '"'
	for i < len(b) {
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return true
		case '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+5 >= len(b) || !isHexDigit(b[i+2]) || !isHexDigit(b[i+3]) || !isHexDigit(b[i+4]) || !isHexDigit(b[i+5]) {
					return false
				}
				i += 6
			default:
				return false
			}
		default: // a control byte
			return false
		}
	}
	return false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number steps over -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *compactScan) number() bool {
	s.at('-')
	switch {
	case s.at('0'):
	case s.i < len(s.b) && '1' <= s.b[s.i] && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.at('.') && !s.digits() {
		return false
	}
	if s.at('e') || s.at('E') {
		if !s.at('+') {
			s.at('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits steps over one or more digits; false when there is none.
func (s *compactScan) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *compactScan) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}
