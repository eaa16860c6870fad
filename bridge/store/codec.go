package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/klauspost/compress/s2"
)

// Event bodies and pending deliveries are stored in a compact binary form since schema 3
// (before, as JSON). JSON was
// the largest cost of the store: Append re-compacted the raw Kinetic payload on every
// marshal, and Head decoded the whole event by reflection whenever the cache missed it (the
// middle of every backlog longer than the cache). The binary form keeps every byte string
// as it came, length-prefixed, so encoding is a few appends and decoding a bounds-checked
// walk that makes one string for all the text fields of an event.
//
// Layout: the tag eventBinary, Raw, then the other fields of bridge.Event in declaration
// order. A
// string or byte string is a uvarint length and the bytes; a time is a length byte and
// time.Time's binary form (which keeps its zone offset, as its JSON does); a count is a
// uvarint; a pointer or a slice that may be nil is a count plus one, 0 meaning nil. A body
// that starts with '{' is JSON from schema 2 or older, and decodes as before. A pending
// delivery (behind its 8-byte event seq) is laid out the same way: the tag, then the fields
// of delivery.

// eventBinary tags a binary body. JSON bodies start with '{'.
const eventBinary byte = 1

// eventS2 tags a compressed body (schema 4): an S2 block (github.com/klauspost/compress/s2,
// a faster Snappy) of the binary form, tag included. A Kinetic message event's binary form
// repeats much of its Raw (IDs, text, author) and compresses to about half: half the pages
// written per event, and half the file a backlog reads back through the map. A body that
// does not shrink by a tenth is kept uncompressed.
const eventS2 byte = 2

// maxDecodedBody bounds the size a compressed body may claim, so that a corrupt header
// cannot become a huge allocation.
const maxDecodedBody = 64 << 20

// decodeBufs holds buffers for decompressing bodies (*[]byte, so that Put does not allocate).
var decodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// putDecodeBuf returns a buffer to decodeBufs unless it grew for an unusually large body.
func putDecodeBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		decodeBufs.Put(bp)
	}
}

// appendEventBody appends the body Append stores for e: compressed when that saves a tenth.
// scratch is reused for the binary form and returned, grown if needed.
func appendEventBody(dst, scratch []byte, e *bridge.Event) (body, scratchOut []byte) {
	bin := appendEventBinary(scratch[:0], e)
	n := len(dst)
	if need := n + 1 + s2.MaxEncodedLen(len(bin)); cap(dst) < need {
		dst = append(make([]byte, 0, need), dst...)
	}
	dst = append(dst, eventS2)
	enc := s2.Encode(dst[n+1:cap(dst)], bin)
	if len(enc) > len(bin)-len(bin)/10 {
		return append(dst[:n], bin...), bin
	}
	return dst[:n+1+len(enc)], bin
}

// maxDecodeCount bounds a count read from a body before anything is allocated for it: a
// corrupt count must not become a huge allocation.
const maxDecodeCount = 1 << 20

// appendEventBinary appends the binary form of e to b.
func appendEventBinary(b []byte, e *bridge.Event) []byte {
	b = append(b, eventBinary)
	b = appendBytes(b, e.Raw)
	b = appendStr(b, e.ID)
	b = appendStr(b, e.Type)
	b = appendStr(b, e.Source)
	b = appendTime(b, e.Time)
	d := &e.Discussion
	b = appendStr(b, d.ID)
	b = appendStr(b, d.Title)
	b = appendStr(b, d.URL)
	b = binary.AppendUvarint(b, uint64(len(d.Related)))
	for _, r := range d.Related {
		b = appendStr(b, r.Type)
		b = appendStr(b, r.Key)
	}
	if m := e.Message; m == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendStr(b, m.ID)
		b = appendStr(b, m.VersionID)
		b = appendStr(b, m.ParentID)
		b = appendStr(b, m.Kind)
		b = appendStr(b, m.Action)
		b = appendStr(b, m.Text)
		b = appendNilCount(b, m.Content == nil, len(m.Content))
		for _, t := range m.Content {
			b = appendStr(b, t.Type)
			b = appendStr(b, t.Name)
			b = appendBytes(b, t.Value)
		}
		b = appendStr(b, m.Author.Username)
		b = appendStr(b, m.Author.DisplayName)
		b = appendStr(b, m.Author.Email)
		b = appendTime(b, m.CreatedAt)
		b = appendTime(b, m.UpdatedAt)
		b = binary.AppendUvarint(b, uint64(len(m.Attachments)))
		for _, a := range m.Attachments {
			b = appendStr(b, a.Filename)
			b = appendStr(b, a.ContentType)
			b = binary.AppendVarint(b, a.Size)
			b = appendStr(b, a.URL)
		}
	}
	return b
}

// eventSizeHint is about the size of e's binary form, so that Append allocates its buffer
// once.
func eventSizeHint(e *bridge.Event) int {
	n := 128 + len(e.ID) + len(e.Type) + len(e.Source) + len(e.Discussion.ID) + len(e.Discussion.Title) + len(e.Discussion.URL) + len(e.Raw)
	for _, r := range e.Discussion.Related {
		n += 4 + len(r.Type) + len(r.Key)
	}
	if m := e.Message; m != nil {
		n += 64 + len(m.ID) + len(m.VersionID) + len(m.ParentID) + len(m.Kind) + len(m.Action) + len(m.Text) +
			len(m.Author.Username) + len(m.Author.DisplayName) + len(m.Author.Email)
		for _, t := range m.Content {
			n += 6 + len(t.Type) + len(t.Name) + len(t.Value)
		}
		for _, a := range m.Attachments {
			n += 16 + len(a.Filename) + len(a.ContentType) + len(a.URL)
		}
	}
	return n
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendNilCount(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func appendTime(b []byte, t time.Time) []byte {
	n := len(b)
	b = append(b, 0)
	b, err := t.AppendBinary(b)
	if err != nil {
		// Only a zone offset that is not a whole minute, or a year outside what
		// time.Time encodes: keep the instant in UTC rather than fail the Append.
		b, _ = t.UTC().AppendBinary(b[:n+1])
	}
	b[n] = byte(len(b) - n - 1)
	return b
}

// decodeEvent decodes an event body in either form. Neither form's result shares memory
// with body, which bbolt owns only for the transaction.
func decodeEvent(body []byte) (bridge.Event, error) {
	var e bridge.Event
	if len(body) > 0 && body[0] == '{' {
		err := json.Unmarshal(body, &e)
		return e, err
	}
	if len(body) > 0 && body[0] == eventS2 {
		n, err := s2.DecodedLen(body[1:])
		if err != nil {
			return e, fmt.Errorf("compressed event: %w", err)
		}
		if n > maxDecodedBody {
			return e, fmt.Errorf("compressed event claims %d bytes", n)
		}
		// The decompressed form is only read (the event is copied out of it), so its
		// buffer is reused.
		bp := decodeBufs.Get().(*[]byte)
		defer putDecodeBuf(bp)
		if cap(*bp) < n {
			*bp = make([]byte, n)
		}
		bin, err := s2.Decode((*bp)[:cap(*bp)], body[1:])
		if err != nil {
			return e, fmt.Errorf("compressed event: %w", err)
		}
		if len(bin) == 0 || bin[0] != eventBinary {
			return e, errors.New("compressed event: not a binary body")
		}
		body = bin
	}
	if len(body) == 0 || body[0] != eventBinary {
		return e, errors.New("unknown event encoding")
	}
	// Raw comes first, so that it is copied once, as bytes; all the text fields after it are
	// substrings of one string: one allocation, not one per field.
	raw, rest, err := splitRaw(body[1:])
	if err != nil {
		return e, fmt.Errorf("binary event: %w", err)
	}
	if len(raw) > 0 {
		e.Raw = bytes.Clone(raw)
	}
	r := eventReader{s: string(rest)}
	e.ID = r.str()
	e.Type = r.str()
	e.Source = r.str()
	e.Time = r.time()
	e.Discussion.ID = r.str()
	e.Discussion.Title = r.str()
	e.Discussion.URL = r.str()
	if n := r.count(); n > 0 {
		e.Discussion.Related = make([]bridge.RelatedItem, n)
		for i := range e.Discussion.Related {
			e.Discussion.Related[i] = bridge.RelatedItem{Type: r.str(), Key: r.str()}
		}
	}
	if r.byte() == 1 {
		m := new(bridge.Message)
		m.ID = r.str()
		m.VersionID = r.str()
		m.ParentID = r.str()
		m.Kind = r.str()
		m.Action = r.str()
		m.Text = r.str()
		if n := r.count(); n > 0 {
			m.Content = make([]bridge.Token, n-1)
			for i := range m.Content {
				m.Content[i] = bridge.Token{Type: r.str(), Name: r.str(), Value: r.bytes()}
			}
		}
		m.Author = bridge.User{Username: r.str(), DisplayName: r.str(), Email: r.str()}
		m.CreatedAt = r.time()
		m.UpdatedAt = r.time()
		if n := r.count(); n > 0 {
			m.Attachments = make([]bridge.Attachment, n)
			for i := range m.Attachments {
				m.Attachments[i] = bridge.Attachment{Filename: r.str(), ContentType: r.str(), Size: r.varint(), URL: r.str()}
			}
		}
		e.Message = m
	}
	if err := r.end(); err != nil {
		return bridge.Event{}, fmt.Errorf("binary event: %w", err)
	}
	return e, nil
}

// appendDeliveryBinary appends the binary form of d to b.
func appendDeliveryBinary(b []byte, d *delivery) []byte {
	b = append(b, eventBinary)
	b = appendStr(b, d.Target.Route)
	b = appendStr(b, d.Target.Sink)
	b = appendStr(b, d.Target.Channel)
	b = appendStr(b, d.Discussion)
	b = binary.AppendUvarint(b, uint64(d.Index))
	b = binary.AppendVarint(b, int64(d.Attempts))
	b = appendTime(b, d.FirstTry)
	b = appendStr(b, d.LastError)
	return appendTime(b, d.NextTry)
}

// decodeDelivery decodes the binary form of a delivery.
func decodeDelivery(v []byte) (delivery, error) {
	var d delivery
	if len(v) == 0 || v[0] != eventBinary {
		return d, errors.New("unknown delivery encoding")
	}
	r := eventReader{s: string(v[1:])}
	d.Target = bridge.Target{Route: r.str(), Sink: r.str(), Channel: r.str()}
	d.Discussion = r.str()
	if idx := r.uvarint(); idx > math.MaxUint32 {
		r.fail(fmt.Errorf("target index %d out of range", idx))
	} else {
		d.Index = uint32(idx)
	}
	d.Attempts = int(r.varint())
	d.FirstTry = r.time()
	d.LastError = r.str()
	d.NextTry = r.time()
	if err := r.end(); err != nil {
		return delivery{}, fmt.Errorf("binary delivery: %w", err)
	}
	return d, nil
}

// splitRaw reads the length-prefixed Raw at the front of a binary event.
func splitRaw(b []byte) (raw, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errShort
	}
	if n > uint64(len(b)-k) {
		return nil, nil, errShort
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// eventReader walks a binary body. After the first error every read returns a zero value,
// and err says what went wrong.
type eventReader struct {
	s   string
	off int
	err error
}

var errShort = errors.New("truncated")

func (r *eventReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// end returns the first error, or an error if bytes are left over.
func (r *eventReader) end() error {
	if r.err == nil && r.off != len(r.s) {
		r.err = fmt.Errorf("%d bytes left over", len(r.s)-r.off)
	}
	return r.err
}

func (r *eventReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		if r.off >= len(r.s) {
			r.err = errShort
			return 0
		}
		c := r.s[r.off]
		r.off++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
	r.err = errors.New("varint overflows")
	return 0
}

func (r *eventReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// span returns the next n bytes as a substring of r.s.
func (r *eventReader) span(n uint64) string {
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.off) {
		r.err = errShort
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *eventReader) str() string { return r.span(r.uvarint()) }

// bytes returns a byte string, nil when it is empty (as the JSON form's omitempty gives).
func (r *eventReader) bytes() []byte {
	s := r.str()
	if s == "" {
		return nil
	}
	return []byte(s)
}

func (r *eventReader) byte() byte {
	s := r.span(1)
	if s == "" {
		return 0
	}
	return s[0]
}

func (r *eventReader) count() int {
	n := r.uvarint()
	if n > maxDecodeCount {
		r.err = fmt.Errorf("count %d out of range", n)
		return 0
	}
	return int(n)
}

func (r *eventReader) time() time.Time {
	s := r.span(uint64(r.byte()))
	var t time.Time
	if r.err == nil {
		if err := t.UnmarshalBinary([]byte(s)); err != nil {
			r.err = fmt.Errorf("time: %w", err)
		}
	}
	return t
}

// eventJSON returns the JSON of bridge.Event for a stored body of any schema: for what
// leaves the store as JSON, such as a copy of the state into another backend, which keeps
// events as JSON. A JSON body (schema 2 or older) is returned as it is, copied.
func eventJSON(body []byte) ([]byte, error) {
	if len(body) > 0 && body[0] == '{' {
		return bytes.Clone(body), nil
	}
	e, err := decodeEvent(body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(e)
}
