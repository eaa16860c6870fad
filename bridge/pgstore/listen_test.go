package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/pgtest"
)

// A replay on one replica reaches the leader's ListenQueues, also after its listening
// connection was cut.
func TestListenQueuesHearsReplays(t *testing.T) {
	dsn := pgtest.DB(t)
	leader, other := openT(t, dsn), openT(t, dsn)
	ctx := context.Background()
	q := bridge.Queue{Target: bridge.Target{Sink: "s"}, Discussion: "d"}
	if _, err := leader.Append(ctx, []bridge.Record{{Event: ev("d", 0), Targets: []bridge.Target{q.Target}}, {Event: ev("d", 1), Targets: []bridge.Target{q.Target}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		p, _, err := leader.Head(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := leader.DeadLetter(ctx, p, "boom"); err != nil {
			t.Fatal(err)
		}
	}
	dls, err := other.DeadLetters(ctx, bridge.DeadLetterFilter{})
	if err != nil || len(dls) != 2 {
		t.Fatalf("DeadLetters = %v, %v", dls, err)
	}
	heard := make(chan struct{}, 10)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- leader.ListenQueues(lctx, func() { heard <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenQueues: %v", err)
		}
	}()
	// Replay once the listener listens, and wait for it to hear.
	replayAndHear := func(id string) {
		t.Helper()
		if _, err := other.Replay(ctx, bridge.DeadLetterFilter{IDs: []string{id}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-heard:
		case <-time.After(60 * time.Second):
			t.Fatal("the replay was not heard within 60s")
		}
	}
	waitListening(t, dsn)
	replayAndHear(dls[0].ID)
	// Cut the listening connection: ListenQueues reconnects and says so (a replay may have
	// been missed in between), then hears the next replay.
	pgtest.Exec(t, dsn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN kdbridge_queues'`)
	recv(t, heard, "the call after reconnecting")
	waitListening(t, dsn)
	replayAndHear(dls[1].ID)
	if p, ok, err := leader.Head(ctx, q); err != nil || !ok || p.Event.ID != ev("d", 0).ID {
		t.Fatalf("head after the replays = %+v, %v, %v", p, ok, err)
	}
}

// waitListening waits until a connection listens on the queues channel.
func waitListening(t *testing.T, dsn string) {
	t.Helper()
	s := openT(t, dsn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN kdbridge_queues' AND state = 'idle'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("ListenQueues did not listen within 60s")
		}
		time.Sleep(20 * time.Millisecond) // polling the server's view, bounded by the deadline
	}
}
