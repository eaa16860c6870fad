package store

import (
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// codecAttempts are records as the dispatcher makes them: a plain delivery, and one with
// every field set, times in a zone of their own and text that is not ASCII.
func codecAttempts() []bridge.AttemptRecord {
	at := time.Date(2026, 12, 4, 16, 5, 6, 789012345, time.FixedZone("", 5*3600+30*60))
	return []bridge.AttemptRecord{
		{Seq: 1, Queue: bridge.Queue{Target: bridge.Target{Sink: "hook"}, Discussion: "3f2b8c1e-5d7a-4c9e-8b1f-000000000001"},
			EventID: "evt_abc", EventType: bridge.MessageCreated, Attempt: 1, At: at.UTC(), Latency: 1234567, Outcome: bridge.OutcomeDelivered},
		{Seq: 1 << 60, Queue: bridge.Queue{Target: bridge.Target{Route: "ops", Sink: "slack", Channel: "C0123"}, Discussion: "d-é"},
			EventID: "evt_xyz", EventType: bridge.MessageUpdated, Attempt: 12, At: at, Latency: 90 * time.Second,
			Outcome: bridge.OutcomeDeadLetter, Status: "channel_not_found", Error: "slack: channel_not_found — «ops»",
			Response: strings.Repeat("r", bridge.MaxAttemptResponse), NextTry: at.Add(time.Hour), DeadLetter: "dl-7-0"},
		{Queue: bridge.Queue{Target: bridge.Target{Sink: "hook"}}, At: time.Unix(0, 0).UTC(), Outcome: bridge.OutcomeRetry, Attempt: -1,
			Latency: -time.Millisecond, NextTry: time.Unix(1, 0).UTC()},
	}
}

// sameAttempt compares records field by field, times as instants with their zone offsets.
func sameAttempt(t *testing.T, got, want bridge.AttemptRecord) {
	t.Helper()
	offset := func(tm time.Time) int { _, o := tm.Zone(); return o }
	for _, tm := range [][2]time.Time{{got.At, want.At}, {got.NextTry, want.NextTry}} {
		if !tm[0].Equal(tm[1]) || tm[0].IsZero() != tm[1].IsZero() || offset(tm[0]) != offset(tm[1]) {
			t.Errorf("time %v, want %v", tm[0], tm[1])
		}
	}
	got.At, got.NextTry, want.At, want.NextTry = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestAttemptCodec(t *testing.T) {
	for _, r := range codecAttempts() {
		v := encodeAttempt(r)
		if v[0] != attemptBinary {
			t.Fatalf("encoded %q, want the binary form", v)
		}
		got, err := decodeAttempt([]byte("k"), v)
		if err != nil {
			t.Fatal(err)
		}
		sameAttempt(t, got, r)

		// A record an older kdbridge wrote as JSON reads the same.
		j, err := encodeAttemptJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := decodeAttempt([]byte("k"), j)
		if err != nil {
			t.Fatal(err)
		}
		sameAttempt(t, fromJSON, r)
		if len(v) >= len(j) {
			t.Errorf("binary form %d bytes, JSON %d", len(v), len(j))
		}
	}
}

func TestAttemptCodecCorrupt(t *testing.T) {
	v := encodeAttempt(codecAttempts()[1])
	for n := range len(v) {
		if _, err := decodeAttempt([]byte("k"), v[:n]); err == nil {
			t.Errorf("decoding the first %d of %d bytes: no error", n, len(v))
		}
	}
	if _, err := decodeAttempt([]byte("k"), append(v, 0)); err == nil || !strings.Contains(err.Error(), "left over") {
		t.Errorf("a byte too many: err = %v", err)
	}
	if _, err := decodeAttempt([]byte("k"), []byte{2, 0}); err == nil {
		t.Error("an unknown form: no error")
	}
}

func FuzzDecodeAttempt(f *testing.F) {
	for _, r := range codecAttempts() {
		f.Add(encodeAttempt(r))
		j, err := encodeAttemptJSON(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeAttempt([]byte("k"), v)
		if err != nil {
			return
		}
		again, err := decodeAttempt([]byte("k"), encodeAttempt(r))
		if err != nil {
			t.Fatalf("a decoded record does not decode again: %v", err)
		}
		sameAttempt(t, again, r)
	})
}

// BenchmarkAttemptCodec encodes a delivery's record in the stored form and in the JSON form
// kdbridge stored before it.
func BenchmarkAttemptCodec(b *testing.B) {
	r := codecAttempts()[0]
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeAttempt(r)
		}
		b.ReportMetric(float64(len(encodeAttempt(r))), "bytes")
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			j, err := encodeAttemptJSON(r)
			if err != nil {
				b.Fatal(err)
			}
			n = len(j)
		}
		b.ReportMetric(float64(n), "bytes")
	})
}
