package bridge

import (
	"bytes"
	"encoding/json"
	"testing"
)

// kineticPayload is a message as the Topic Hub sends it: compact, with escapes and non-ASCII text.
const kineticPayload = `{"id":"0f5c1c6e-6a43-4c4b-9d59-3c1f0e7b2a11","versionId":"5d1e0c1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",` +
	`"type":"User","content":[{"type":"text","value":"The database is down again; paging the on-call \u003c@here\u003e — “quotes” and ünïcödé.\n"},` +
	`{"type":"mention","value":{"username":"bob","displayName":"Bob \"B\" Stone"}},{"type":"number","value":-12.5e+3}],` +
	`"createdBy":{"username":"alice","displayName":"Alice Moreau","email":"alice@example.com"},` +
	`"createdAt":"2026-11-26T17:00:00.000Z","updatedAt":"2026-11-26T17:00:00.000Z",` +
	`"updatedBy":{"username":"alice","displayName":"Alice Moreau","email":"alice@example.com"},"parent":null,"deleted":false,"attachments":[]}`

// BenchmarkAppendCompactJSON: a Kinetic message's raw JSON into an envelope, through the
// compact check and through json.Compact alone (what every delivery paid before).
func BenchmarkAppendCompactJSON(b *testing.B) {
	raw := []byte(kineticPayload)
	buf := make([]byte, 0, 2*len(raw))
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			var err error
			if buf, err = appendCompactJSON(buf[:0], raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Compact", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			out := bytes.NewBuffer(buf[:0])
			if err := json.Compact(out, raw); err != nil {
				b.Fatal(err)
			}
			buf = out.Bytes()
		}
	})
}
