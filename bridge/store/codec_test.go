package store

import (
	"bytes"
	"encoding/json"
	"github.com/klauspost/compress/s2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// benchRaw is the payload of a message:created frame as the simulator sends it.
const benchRaw = `{"id":"5b1e0c1a-3f7d-4c5e-9a55-2d8f6a3b9e01","versionId":"0e7c2a44-91b3-4d6f-8c2e-7a1d5f3b6c90","type":"User","content":[{"type":"text","value":"Update 12345: the deploy finished, error rates are back to normal; closing the incident once the customer confirms."}],"createdBy":{"username":"alice","displayName":"Alice Example","email":"alice@example.com"},"createdAt":"2026-11-26T17:01:30.123Z","updatedAt":"2026-11-26T17:01:30.123Z","updatedBy":{"username":"alice","displayName":"Alice Example","email":"alice@example.com"},"parent":null}`

// liveEv is an event as the Kinetic source makes it from benchRaw.
func liveEv() bridge.Event {
	e := richEv(7)
	e.Discussion.Related = nil
	e.Message.Attachments = nil
	e.Message.Content = []bridge.Token{{Type: "text", Value: json.RawMessage(`"Update 12345: the deploy finished, error rates are back to normal; closing the incident once the customer confirms."`)}}
	e.Message.Text = "Update 12345: the deploy finished, error rates are back to normal; closing the incident once the customer confirms."
	e.Raw = json.RawMessage(benchRaw)
	return e
}

func codecCases() map[string]bridge.Event {
	minimal := bridge.Event{ID: "evt_1", Type: bridge.DiscussionUpdated, Discussion: bridge.Discussion{ID: "d"}}
	emptyContent := richEv(1)
	emptyContent.Message.Content = []bridge.Token{}
	nilContent := richEv(2)
	nilContent.Message.Content = nil
	zoned := richEv(3)
	zoned.Time = time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", -5*3600))
	zoned.Message.UpdatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+30*60))
	odd := richEv(4)
	odd.Message.Text = "tab\t, quote \", newline \n, émoji 🎉, NUL \x00"
	odd.Message.Attachments[0].Size = -1
	long := richEv(5)
	long.Message.Text = strings.Repeat("long enough to be stored compressed; ", 20)
	return map[string]bridge.Event{
		"long": long, "rich": richEv(0), "live": liveEv(), "minimal": minimal, "empty content": emptyContent,
		"nil content": nilContent, "zoned times": zoned, "odd text": odd,
	}
}

// The binary form decodes to the event that was encoded, and to what the JSON form of the
// same event decodes to (schema 2 bodies and new ones read the same).
func TestEventCodecRoundTrip(t *testing.T) {
	for name, e := range codecCases() {
		t.Run(name, func(t *testing.T) {
			got, err := decodeEvent(appendEventBinary(nil, &e))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("binary round trip:\n got %+v\nwant %+v", got, e)
			}
			stored, _ := appendEventBody(nil, nil, &e)
			fromStored, err := decodeEvent(stored)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromStored, e) {
				t.Fatalf("stored body (tag %d) round trip:\n got %+v\nwant %+v", stored[0], fromStored, e)
			}
			js, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			fromJSON, err := decodeEvent(js)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, fromJSON) {
				t.Fatalf("binary and JSON decode differently:\nbinary %+v\n  JSON %+v", got, fromJSON)
			}
		})
	}
}

// Every truncation of a body, binary or compressed, and trailing bytes, is an error, never
// a panic or a partial event.
func TestEventCodecCorrupt(t *testing.T) {
	e := richEv(0)
	b := appendEventBinary(nil, &e)
	e.Message.Text = strings.Repeat("the same words again, ", 20)
	c, _ := appendEventBody(nil, nil, &e)
	if c[0] != eventS2 {
		t.Fatalf("a repetitive event's body is stored with tag %d, want compressed", c[0])
	}
	for _, b := range [][]byte{b, c} {
		for n := range len(b) {
			if got, err := decodeEvent(b[:n]); err == nil {
				t.Fatalf("%d of %d bytes (tag %d) decoded without error: %+v", n, len(b), b[0], got)
			}
		}
		if _, err := decodeEvent(append(b, 0)); err == nil {
			t.Fatalf("a trailing byte (tag %d) decoded without error", b[0])
		}
	}
	if _, err := decodeEvent(append([]byte{eventS2}, s2.Encode(nil, []byte("{not binary"))...)); err == nil {
		t.Fatal("a compressed body that is not a binary one decoded without error")
	}
	if _, err := decodeEvent([]byte{eventS2, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("a compressed body claiming 4 GiB decoded without error")
	}
	if _, err := decodeEvent([]byte{9, 1, 2}); err == nil {
		t.Fatal("an unknown tag decoded without error")
	}
	huge := []byte{eventBinary, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	if _, err := decodeEvent(huge); err == nil {
		t.Fatal("a length past the end decoded without error")
	}
}

// FuzzDecodeEvent: no body crashes decodeEvent, and what it accepts encodes back to a body
// that decodes to the same event (compared in encoded form: times decoded twice from an odd
// zone offset are equal but hold distinct *time.Location values).
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range codecCases() {
		f.Add(appendEventBinary(nil, &e))
		b, _ := appendEventBody(nil, nil, &e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := decodeEvent(body)
		if err != nil || body[0] == '{' {
			return
		}
		enc := appendEventBinary(nil, &e)
		again, err := decodeEvent(enc)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if enc2 := appendEventBinary(nil, &again); !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoded event differs:\n got %+v\nwant %+v", again, e)
		}
	})
}

// BenchmarkEventCodec: a live message event, stored (Append's encoding) and loaded (Head's
// decoding on a cache miss), in the binary form and in schema 2's JSON.
func BenchmarkEventCodec(b *testing.B) {
	e := liveEv()
	js, err := json.Marshal(e)
	if err != nil {
		b.Fatal(err)
	}
	bin := appendEventBinary(nil, &e)
	b.Run("encode/binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendEventBinary(make([]byte, 4, 4+eventSizeHint(&e)), &e)
		}
	})
	b.Run("encode/stored", func(b *testing.B) {
		b.ReportAllocs()
		var scratch []byte
		for b.Loop() {
			_, scratch = appendEventBody(make([]byte, 4), scratch, &e)
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	stored, _ := appendEventBody(nil, nil, &e)
	for name, body := range map[string][]byte{"binary": bin, "json": js, "stored": stored} {
		b.Run("decode/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeEvent(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A pending delivery's binary form decodes to the delivery, and to what its schema 2 JSON
// decodes to; every truncation is an error.
func TestDeliveryCodec(t *testing.T) {
	cases := []delivery{
		{Target: tgt("a"), Discussion: "d"},
		{
			Target: bridge.Target{Route: "r", Sink: "slack", Channel: "#ops"}, Discussion: "d\x00é", Index: 7, Attempts: 3,
			FirstTry: time.Date(2026, 12, 4, 5, 0, 0, 1, time.UTC), LastError: "http 503: \"busy\"",
			NextTry: time.Date(2026, 12, 4, 5, 0, 30, 0, time.FixedZone("", 3600)),
		},
	}
	for _, d := range cases {
		v, err := encodePending(42, d)
		if err != nil {
			t.Fatal(err)
		}
		seq, got, err := decodePending(v)
		if err != nil || seq != 42 || !reflect.DeepEqual(got, d) {
			t.Fatalf("decodePending = %d, %+v, %v; want 42, %+v", seq, got, err, d)
		}
		js, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		_, fromJSON, err := decodePending(append(seqKey(42), js...))
		if err != nil || !reflect.DeepEqual(fromJSON, got) {
			t.Fatalf("schema 2 JSON decoded to %+v, %v; binary to %+v", fromJSON, err, got)
		}
		for n := 8; n < len(v); n++ {
			if _, got, err := decodePending(v[:n]); err == nil {
				t.Fatalf("%d of %d bytes decoded without error: %+v", n, len(v), got)
			}
		}
	}
}

// BenchmarkPendingCodec: a pending delivery as Append writes it and Head reads it, in the
// binary form and in schema 2's JSON.
func BenchmarkPendingCodec(b *testing.B) {
	d := delivery{Target: bridge.Target{Route: "incidents", Sink: "webhook-1"}, Discussion: "9fa2b330-fa5e-11e8-88ef-7bbe80231820", Index: 0}
	js, err := json.Marshal(d)
	if err != nil {
		b.Fatal(err)
	}
	bodies := map[string][]byte{"binary": appendDeliveryBinary(seqKey(1), &d), "json": append(seqKey(1), js...)}
	b.Run("encode/binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodePending(1, d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			js, err := json.Marshal(d)
			if err != nil {
				b.Fatal(err)
			}
			_ = append(seqKey(1), js...)
		}
	})
	for name, v := range bodies {
		b.Run("decode/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := decodePending(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// eventJSON gives the JSON of an event from either form of its body.
func TestEventJSON(t *testing.T) {
	for name, e := range codecCases() {
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		for form, body := range map[string][]byte{"binary": appendEventBinary(nil, &e), "json": js} {
			got, err := eventJSON(body)
			if err != nil {
				t.Fatalf("%s, %s: %v", name, form, err)
			}
			if !bytes.Equal(got, js) {
				t.Fatalf("%s, %s: eventJSON =\n%s\nwant\n%s", name, form, got, js)
			}
		}
	}
	if _, err := eventJSON([]byte{eventBinary, 0xff}); err == nil {
		t.Fatal("a corrupt binary body gave JSON")
	}
}
