package bridge_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// answerError is a sink error that knows the far side's answer, as the webhook and Slack
// sinks' errors do.
type answerError struct{ status, body string }

func (e *answerError) Error() string           { return "HTTP " + e.status }
func (e *answerError) AttemptStatus() string   { return e.status }
func (e *answerError) AttemptResponse() string { return e.body }

// refusingSink answers message "0" with a 503 (and body503) twice before taking it, and
// message "1" with a permanent 400 (body400); it takes anything else at once.
func refusingSink(body503, body400 string) *recordingSink {
	var mu sync.Mutex
	tries := 0
	return newSink("hook", func(d bridge.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		switch d.Event.Message.Text {
		case "0":
			if tries++; tries <= 2 {
				return bridge.RetryAfter(&answerError{"503", body503}, time.Millisecond)
			}
		case "1":
			return bridge.Permanent(&answerError{"400", body400})
		}
		return nil
	})
}

// TestAttemptHistoryRecordsEveryOutcome runs deliveries that are retried, delivered and
// dead-lettered against the bbolt store and reads their history back: every attempt, newest
// first, with the status and the first KiB of the answer found through errors.As.
func TestAttemptHistoryRecordsEveryOutcome(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	long := strings.Repeat("é", 700) // 1400 bytes: cut at 1 KiB, not inside a character
	sink := refusingSink(long, `{"error":"bad field"}`)
	d, stop := running(t, st, routeAll("hook"), bridge.SinkSpec{Sink: sink, Retry: fastRetry})
	emitAll(t, d, []string{"a"}, 2)
	waitUntil(t, "a delivery and a dead letter", 10*time.Second, func() bool {
		dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
		return len(sink.delivered()) == 1 && len(dls) == 1
	})
	stop() // the history writer flushes what is left when the dispatcher stops

	ctx := context.Background()
	got, err := st.Attempts(ctx, bridge.AttemptFilter{EventID: event("a", 0).ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("event 0: %d attempts, want 3: %+v", len(got), got)
	}
	for i, want := range []string{bridge.OutcomeDelivered, bridge.OutcomeRetry, bridge.OutcomeRetry} {
		r := got[i]
		if r.Outcome != want || r.Attempt != 3-i || r.Queue.Discussion != "a" || r.Queue.Target.Sink != "hook" {
			t.Errorf("attempt %d = %+v, want outcome %s, attempt %d", i, r, want, 3-i)
		}
		if i > 0 && (r.Status != "503" || len(r.Response) > bridge.MaxAttemptResponse || len(r.Response) < bridge.MaxAttemptResponse-1 ||
			!strings.HasPrefix(long, r.Response) || r.NextTry.IsZero() || r.Error == "") {
			t.Errorf("retry %d: status %q, response %d bytes, next %v, error %q", i, r.Status, len(r.Response), r.NextTry, r.Error)
		}
	}
	if !got[0].At.After(got[1].At) && !got[0].At.Equal(got[1].At) {
		t.Errorf("not newest first: %v then %v", got[0].At, got[1].At)
	}
	dead, err := st.Attempts(ctx, bridge.AttemptFilter{Outcome: bridge.OutcomeDeadLetter})
	if err != nil || len(dead) != 1 || dead[0].EventID != event("a", 1).ID || dead[0].Status != "400" || dead[0].Response != `{"error":"bad field"}` {
		t.Fatalf("dead-letter attempts = %+v, %v", dead, err)
	}
	if h := d.AttemptHistory(); !h.Enabled || h.Written != 4 || h.Dropped != 0 {
		t.Errorf("AttemptHistory = %+v, want 4 written", h)
	}
	var det bridge.AttemptDetail
	if !errors.As(bridge.Permanent(&answerError{"400", ""}), &det) {
		t.Error("AttemptDetail not found through a PermanentError")
	}
}

// With FailedAttemptsOnly the history keeps the tries that did not deliver — retries and
// dead letters, with their answers — and no successful one.
func TestAttemptHistoryFailedOnly(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	sink := refusingSink("busy", "bad")
	d, stop := runningWith(t, st, routeAll("hook"), bridge.DispatcherOptions{FailedAttemptsOnly: true},
		bridge.SinkSpec{Sink: sink, Retry: fastRetry})
	emitAll(t, d, []string{"a"}, 3) // 0: two retries then delivered; 1: dead letter; 2: delivered at once
	waitUntil(t, "two deliveries and a dead letter", 10*time.Second, func() bool {
		dls, _ := st.DeadLetters(context.Background(), bridge.DeadLetterFilter{})
		return len(sink.delivered()) == 2 && len(dls) == 1
	})
	stop()

	all, err := st.Attempts(context.Background(), bridge.AttemptFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range all {
		outcomes = append(outcomes, r.Outcome+":"+r.Status)
	}
	slices.Sort(outcomes)
	if got := strings.Join(outcomes, " "); got != "dead_letter:400 retry:503 retry:503" {
		t.Errorf("history = %s, want the two retries and the dead letter only", got)
	}
	if h := d.AttemptHistory(); !h.Enabled || !h.FailedOnly || h.Written != 3 || h.Dropped != 0 {
		t.Errorf("AttemptHistory = %+v, want 3 written, failed tries only", h)
	}
}
