package kinetic

import (
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// benchFrame is a message:created frame as the simulator sends it (and as the reference
// shows it): compact JSON, UUID ids, a one-sentence text token, author and editor.
const benchFrame = `{"topic":"discussions/discussion/9fa2b330-fa5e-11e8-88ef-7bbe80231820","event":"message:created","payload":{"id":"5b1e0c1a-3f7d-4c5e-9a55-2d8f6a3b9e01","versionId":"0e7c2a44-91b3-4d6f-8c2e-7a1d5f3b6c90","type":"User","content":[{"type":"text","value":"Update 12345: the deploy finished, error rates are back to normal; closing the incident once the customer confirms."}],"createdBy":{"username":"alice","displayName":"Alice Example","email":"alice@example.com"},"createdAt":"2026-11-26T17:01:30.123Z","updatedAt":"2026-11-26T17:01:30.123Z","updatedBy":{"username":"alice","displayName":"Alice Example","email":"alice@example.com"},"parent":null}}`

// BenchmarkDecodeFrame is the source's CPU per live message before the emitter: the frame's
// envelope (decodeFrame, on the connection's reader) and its payload into a bridge.Event
// (classify; in the source, resolve on the discussion's worker, which this decodes alike:
// TestDeferredEventsResolveAlike).
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

// BenchmarkCatchUpMessage is a catch-up's CPU per missed message from the page's raw
// payload to its event, and (held-B/msg) what each message costs while the catch-up pages
// back to the checkpoint. "decoded" collects the decoded event, as catch-ups did before;
// "keys" reads the message's keys, collects the payload, and decodes it when it is handed
// over (catchUpOnce now).
func BenchmarkCatchUpMessage(b *testing.B) {
	var fr struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal([]byte(benchFrame), &fr); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	// page copies the payload as the page decoder does: every message its own allocation.
	page := func() json.RawMessage { return append(json.RawMessage(nil), fr.Payload...) }
	decodedWay := func(raw json.RawMessage) any {
		m, err := fixtureDecoder.message("d1", raw)
		if err != nil {
			b.Fatal(err)
		}
		ev := fixtureDecoder.messageEvent("d1", bridge.MessageCreated, m, raw, now)
		return &pending{ev, m.CreatedAt}
	}
	keysWay := func(raw json.RawMessage) any {
		k, ok := readMessageKeys(raw)
		if !ok {
			b.Fatal("keys not read")
		}
		return &freshMessage{raw, k.createdAt}
	}
	held := func(collect func(json.RawMessage) any) float64 {
		const n = 2000
		keep := make([]any, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range keep {
			keep[i] = collect(page())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(keep)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodedWay(page())
		}
		b.ReportMetric(held(decodedWay), "held-B/msg")
	})
	b.Run("keys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fm := keysWay(page()).(*freshMessage)
			m, err := fixtureDecoder.message("d1", fm.raw)
			if err != nil {
				b.Fatal(err)
			}
			_ = fixtureDecoder.messageEvent("d1", bridge.MessageCreated, m, fm.raw, now)
		}
		b.ReportMetric(held(keysWay), "held-B/msg")
	})
}
