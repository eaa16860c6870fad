package kinetic

import (
	"testing"
	"time"
)

// benchFrame is a message:created frame as the simulator sends it (and as the reference
// shows it): compact JSON, UUID ids, a one-sentence text token, author and editor.
const benchFrame = `{"topic":"discussions/discussion/9fa2b330-fa5e-11e8-88ef-7bbe80231820","event":"message:created","payload":{"id":"5b1e0c1a-3f7d-4c5e-9a55-2d8f6a3b9e01","versionId":"0e7c2a44-91b3-4d6f-8c2e-7a1d5f3b6c90","type":"User","content":[{"type":"text","value":"Update 12345: the deploy finished, error rates are back to normal; closing the incident once the customer confirms."}],"createdBy":{"username":"alice","displayName":"Alice Example","email":"alice@example.com"},"createdAt":"2026-11-26T17:01:30.123Z","updatedAt":"2026-11-26T17:01:30.123Z","updatedBy":{"username":"alice","displayName":"Alice Example","email":"alice@example.com"},"parent":null}}`

// BenchmarkDecodeFrame is the source's CPU per live message before the emitter: the frame's
// envelope (decodeFrame, on the connection's reader) and its payload into a bridge.Event
// (classify, on the session goroutine).
func BenchmarkDecodeFrame(b *testing.B) {
	data := []byte(benchFrame)
	now := time.Now()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := decodeFrame(data)
		if err != nil {
			b.Fatal(err)
		}
		hf, err := fixtureDecoder.classify(f, now)
		if err != nil || hf.kind != frameEvent || hf.decoded.event.Message == nil {
			b.Fatalf("classify: %v %+v", err, hf)
		}
	}
}
