package jsonscan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

// kineticPayload is a message as the Topic Hub sends it: compact, with escapes and non-ASCII text.
const kineticPayload = `{"id":"0f5c1c6e-6a43-4c4b-9d59-3c1f0e7b2a11","versionId":"5d1e0c1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",` +
	`"type":"User","content":[{"type":"text","value":"The database is down again; paging the on-call \u003c@here\u003e — “quotes” and ünïcödé.\n"},` +
	`{"type":"mention","value":{"username":"bob","displayName":"Bob \"B\" Stone"}},{"type":"number","value":-12.5e+3}],` +
	`"createdBy":{"username":"alice","displayName":"Alice Moreau","email":"alice@example.com"},` +
	`"createdAt":"2026-11-26T17:00:00.000Z","updatedAt":"2026-11-26T17:00:00.000Z",` +
	`"updatedBy":{"username":"alice","displayName":"Alice Moreau","email":"alice@example.com"},"parent":null,"deleted":false,"attachments":[]}`

func TestCompact(t *testing.T) {
	accept := []string{
		kineticPayload, `null`, `true`, `false`, `0`, `-0`, `12`, `-1.5`, `1e9`, `1E-9`, `2.5e+10`,
		`""`, `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, "\"\xff\xfe invalid UTF-8 is kept\"", "\"\u2028\"",
		`[]`, `{}`, `[[],{}]`, `{"a":{"b":[1,"x",null]}}`, strings.Repeat("[", 64) + strings.Repeat("]", 64),
	}
	for _, in := range accept {
		if !Compact([]byte(in)) {
			t.Errorf("turned down %.60q: compact and valid, it should not need json.Compact", in)
		}
	}
	// Left to json.Compact: whitespace to remove, JSON it rejects, nesting past the bound.
	reject := []string{
		``, ` null`, `null `, "{\"a\": 1}", "[1, 2]", "{\n}", `{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `{a:1}`,
		`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x10`, `nul`, `truex`, `nullnull`, `"abc`, `"\x"`, `"\u12"`,
		`"\u12G4"`, "\"tab\there\"", "\"\x00\"", `[1 2]`, `{"a":1 "b":2}`, `]`, `}`, `[`, `{"a":1`, `"a"b`,
		strings.Repeat("[", 65) + strings.Repeat("]", 65),
	}
	for _, in := range reject {
		if Compact([]byte(in)) {
			t.Errorf("accepted %.60q", in)
		}
	}
}

// FuzzCompact: whatever Compact accepts, json.Compact accepts too and writes
// unchanged — so the envelope's fast path never changes what an envelope says.
func FuzzCompact(f *testing.F) {
	for _, s := range []string{kineticPayload, `{"a":[1,-2.5e3,true,null,"\u00e9"]}`, `"\"`, `[1,]`, "{\"a\": 1}", `-01`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !Compact(b) {
			return
		}
		var out bytes.Buffer
		if err := json.Compact(&out, b); err != nil {
			t.Fatalf("accepted %q, which json.Compact rejects: %v", b, err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("accepted %q, which json.Compact writes as %q", b, out.Bytes())
		}
	})
}

// BenchmarkCompact: a Kinetic message's raw JSON, through the compact check (what the
// envelope pays when it is compact, before appending it as it is) and through json.Compact
// alone (what every delivery paid before).
func BenchmarkCompact(b *testing.B) {
	raw := []byte(kineticPayload)
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if !Compact(raw) {
				b.Fatal("turned down")
			}
		}
	})
	b.Run("json.Compact", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		buf := make([]byte, 0, 2*len(raw))
		for b.Loop() {
			out := bytes.NewBuffer(buf[:0])
			if err := json.Compact(out, raw); err != nil {
				b.Fatal(err)
			}
			buf = out.Bytes()
		}
	})
}

// needsLook against a byte-by-byte look, on words made of every kind of byte.
func TestNeedsLook(t *testing.T) {
	kinds := []byte{'a', 'Z', ' ', '~', 0x7f, '"', '\\', 0x00, 0x1f, 0x20, 0x80, 0xff, '!', '#', '[', ']'}
	for i, k := range kinds {
		for pos := range 8 {
			for _, fill := range []byte{'a', 0x21, 0x7e, 0x5d} {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = k
				w[(pos+i)%8] = kinds[(i*7+pos)%len(kinds)]
				if got, want := needsLook(binary.LittleEndian.Uint64(w)), naiveNeedsLook(w); got != want {
					t.Errorf("needsLook(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
}

func FuzzNeedsLook(f *testing.F) {
	f.Add(uint64(0x6161616161616161))
	f.Add(uint64(0x2261616161616161))
	f.Fuzz(func(t *testing.T, w uint64) {
		b := binary.LittleEndian.AppendUint64(nil, w)
		if got, want := needsLook(w), naiveNeedsLook(b); got != want {
			t.Errorf("needsLook(%q) = %v, want %v", b, got, want)
		}
	})
}

func naiveNeedsLook(b []byte) bool {
	for _, c := range b {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return true
		}
	}
	return false
}

// Str finds a string's end and says whether it is plain wherever the quote, an escape,
// a control character or a non-ASCII byte falls relative to the eight-byte steps.
func TestStrAtEveryOffset(t *testing.T) {
	for n := range 24 {
		for _, tt := range []struct {
			mid          string
			plain, valid bool
		}{
			{"", true, true}, {`\"`, false, true}, {`\n`, false, true}, {`\u00e9`, false, true},
			{"é", true, true}, {"\xff", false, true}, {"\t", false, false}, {`\x`, false, false},
		} {
			in := `"` + strings.Repeat("a", n) + tt.mid + strings.Repeat("b", n%9) + `"` + `,1`
			s := Scanner{B: []byte(in)}
			inner, plain, ok := s.Str()
			if ok != tt.valid {
				t.Fatalf("Str(%q) ok = %v, want %v", in, ok, tt.valid)
			}
			if !ok {
				continue
			}
			want := in[1 : len(in)-3]
			if string(inner) != want || plain != tt.plain || s.I != len(in)-2 {
				t.Errorf("Str(%q) = %q, plain %v, at %d; want %q, %v, %d", in, inner, plain, s.I, want, tt.plain, len(in)-2)
			}
		}
	}
}

// plainRun stops at the first word with a byte that needs a look.
func FuzzPlainRun(f *testing.F) {
	f.Add([]byte(kineticPayload))
	f.Add([]byte("abcdefgh\"ijklmnop"))
	f.Add([]byte("0123456789abcdef\xc3\xa9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := plainRun(b)
		if n%8 != 0 || n > len(b) || naiveNeedsLook(b[:n]) {
			t.Fatalf("plainRun(%q) = %d", b, n)
		}
		if n+8 <= len(b) && !naiveNeedsLook(b[n:n+8]) {
			t.Fatalf("plainRun(%q) = %d stopped before a plain word", b, n)
		}
	})
}
