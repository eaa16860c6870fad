package bridge

import (
	"log/slog"
	"testing"
)

// TestAttemptBufferDropsOldest fills the history buffer past its bound, as when the store
// falls behind: the oldest records go, in chunks, and are counted; the newest stay in order.
func TestAttemptBufferDropsOldest(t *testing.T) {
	a := newAttemptRecorder(nil, slog.New(slog.DiscardHandler))
	total := attemptBuffer + attemptBuffer/8 + 5
	for i := range total {
		a.add(AttemptRecord{Seq: uint64(i)})
	}
	dropped := int(a.dropped.Load())
	if dropped != 2*(attemptBuffer/8) || len(a.buf) != total-dropped || len(a.buf) > attemptBuffer {
		t.Fatalf("dropped %d, kept %d of %d (bound %d)", dropped, len(a.buf), total, attemptBuffer)
	}
	for i, r := range a.buf {
		if r.Seq != uint64(dropped+i) {
			t.Fatalf("record %d is seq %d, want %d: the oldest must go first", i, r.Seq, dropped+i)
		}
	}
	select {
	case <-a.kick:
	default:
		t.Error("a full batch did not wake the writer")
	}
}
