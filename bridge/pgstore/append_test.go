package pgstore

import (
	"context"
	"sync"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// Concurrent Append calls share transactions (the appender groups them): each event is
// stored once and reported stored to exactly one caller, even when callers race with the
// same IDs, and each queue keeps every caller's order.
func TestConcurrentAppendsAreGrouped(t *testing.T) {
	s := openT(t, pgtest.DB(t))
	const callers, perCaller = 8, 40
	target := bridge.Target{Route: "r", Sink: "hook"}
	var wg sync.WaitGroup
	stored := make([]int, callers)
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			// Callers 0-3 each own a discussion; callers 4-7 repeat the events of 0-3.
			disc := string(rune('a' + c%4))
			for i := range perCaller {
				got, err := s.Append(context.Background(), []bridge.Record{{Event: ev(disc, i), Targets: []bridge.Target{target}}})
				if err != nil {
					errs <- err
					return
				}
				stored[c] += len(got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, n := range stored {
		total += n
	}
	if total != 4*perCaller {
		t.Fatalf("%d events reported stored across callers, want %d (each once)", total, 4*perCaller)
	}
	for _, disc := range []string{"a", "b", "c", "d"} {
		q := bridge.Queue{Target: target, Discussion: disc}
		for i := range perCaller {
			p, ok, err := s.Head(context.Background(), q)
			if err != nil || !ok {
				t.Fatalf("queue %s after %d: ok=%v err=%v", disc, i, ok, err)
			}
			if want := ev(disc, i).ID; p.Event.ID != want {
				t.Fatalf("queue %s position %d holds %s, want %s", disc, i, p.Event.ID, want)
			}
			if err := s.Done(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok, _ := s.Head(context.Background(), q); ok {
			t.Fatalf("queue %s holds more than %d deliveries", disc, perCaller)
		}
	}
}
