package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/pgstore"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/internal/pgtest"
	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// TestStateCopyBboltToPostgres: a single node's state (a backlog with attempts, a dead
// letter, delivered events, checkpoints and other values) is copied into PostgreSQL, a
// second copy is refused without -force, and a daemon on PostgreSQL then delivers the copied
// backlog in order and can replay the copied dead letter by its old ID.
func TestStateCopyBboltToPostgres(t *testing.T) {
	sim := kinetictest.NewServer(kinetictest.Options{})
	defer sim.Close()
	recv := newTestReceiver(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, sim.CreateDiscussion(kinetictest.DiscussionSpec{Title: fmt.Sprintf("Copy %d", i)}).ID)
	}
	target := bridge.Target{Route: "all", Sink: "hook"}
	msg := func(disc string, n int) bridge.Event {
		id := fmt.Sprintf("m-%s-%03d", disc, n)
		return bridge.Event{ID: bridge.EventID("acme", disc, id, "v1", bridge.MessageCreated), Type: bridge.MessageCreated, Source: "acme",
			Time: time.Now(), Discussion: bridge.Discussion{ID: disc},
			Message: &bridge.Message{ID: id, Kind: bridge.KindUser, Text: fmt.Sprintf("copied %s %03d", disc, n), Author: bridge.User{Username: "alice"}}}
	}

	// The single node's state: 20 events per discussion; in the first discussion the first 5
	// were delivered, the 6th is dead-lettered and the 7th has failed twice.
	dir := t.TempDir()
	ctx := context.Background()
	bolt, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []bridge.Record
	for n := range 20 {
		for _, disc := range ids {
			recs = append(recs, bridge.Record{Event: msg(disc, n), Targets: []bridge.Target{target}})
		}
	}
	if _, err := bolt.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	q := bridge.Queue{Target: target, Discussion: ids[0]}
	head := func() bridge.Pending {
		p, ok, err := bolt.Head(ctx, q)
		if err != nil || !ok {
			t.Fatalf("head: %v %v", ok, err)
		}
		return p
	}
	for range 5 {
		if err := bolt.Done(ctx, head()); err != nil {
			t.Fatal(err)
		}
	}
	if err := bolt.DeadLetter(ctx, head(), "410 Gone"); err != nil {
		t.Fatal(err)
	}
	p := head()
	p.Attempts, p.FirstTry, p.LastError, p.NextTry = 2, time.Now().Add(-time.Minute), "503 Service Unavailable", time.Now()
	if err := bolt.Attempted(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := bolt.Put(ctx, "slack-ts", "k1", []byte("1700000000.000100")); err != nil {
		t.Fatal(err)
	}
	dead, err := bolt.DeadLetters(ctx, bridge.DeadLetterFilter{})
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters: %v %v", dead, err)
	}
	if err := bolt.Close(); err != nil {
		t.Fatal(err)
	}

	dsn := pgtest.DB(t)
	t.Setenv("KDBRIDGE_TEST_COPY_DSN", dsn)
	var out bytes.Buffer
	if err := run(ctx, []string{"state", "copy", "-from", "bbolt:" + dir, "-to-env", "KDBRIDGE_TEST_COPY_DSN"}, &out, &out); err != nil {
		t.Fatalf("state copy: %v\n%s", err, out.String())
	}
	for _, want := range []string{"events:        60", "pending:       54 deliveries in 3 queues", "dead letters:  1", "values:        1 in slack-ts"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(ctx, []string{"state", "copy", "-from", "bbolt:" + dir, "-to", "postgres:" + dsn}, &out, &out); err == nil || !strings.Contains(err.Error(), "already holds kdbridge state") {
		t.Errorf("second copy without -force: %v", err)
	}

	// What PostgreSQL holds now.
	pg, err := pgstore.Open(ctx, dsn, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := pg.Head(ctx, q)
	if err != nil || !ok || got.Event.ID != msg(ids[0], 6).ID || got.Attempts != 2 || got.LastError != "503 Service Unavailable" {
		t.Errorf("head in postgres: %+v %v %v", got, ok, err)
	}
	pgDead, err := pg.DeadLetters(ctx, bridge.DeadLetterFilter{})
	if err != nil || len(pgDead) != 1 || pgDead[0].ID != dead[0].ID || pgDead[0].Reason != "410 Gone" {
		t.Errorf("dead letters in postgres: %+v %v", pgDead, err)
	}
	if v, ok, err := pg.Get(ctx, "slack-ts", "k1"); err != nil || !ok || string(v) != "1700000000.000100" {
		t.Errorf("value in postgres: %q %v %v", v, ok, err)
	}
	if stored, err := pg.Append(ctx, []bridge.Record{{Event: msg(ids[0], 0), Targets: []bridge.Target{target}}}); err != nil || len(stored) != 0 {
		t.Errorf("a delivered event appended again: stored %d, %v (want deduplicated)", len(stored), err)
	}
	if err := pg.Close(); err != nil {
		t.Fatal(err)
	}

	// A daemon on PostgreSQL delivers the backlog in order, and replays the dead letter.
	cfg := writeConfig(t, haConfig(sim, recv.URL, dsn, "solo", ids))
	d := startDaemon(t, "-config", cfg)
	waitFor(t, "the copied backlog delivered", 60*time.Second, func() bool { return recv.distinct() >= 54 })
	out.Reset()
	addrs := httpAddrRE.FindStringSubmatch(d.stderr.String())
	if addrs == nil {
		t.Fatalf("no http address in the log:\n%s", d.stderr.String())
	}
	var texts []string
	for _, dl := range recv.deliveries() {
		texts = append(texts, dl.envelope.Data.Message.Text)
	}
	for _, disc := range ids {
		var want, seen []string
		first := 0
		if disc == ids[0] {
			first = 6
		}
		for n := first; n < 20; n++ {
			want = append(want, fmt.Sprintf("copied %s %03d", disc, n))
		}
		for _, text := range texts {
			if strings.Contains(text, disc) && !slices.Contains(seen, text) {
				seen = append(seen, text)
			}
		}
		if !slices.Equal(seen, want) {
			t.Errorf("discussion %s delivered %v, want %v", disc, seen, want)
		}
	}
	if err := run(ctx, []string{"dlq", "replay", "-config", cfg, "-http-listen", addrs[1], dead[0].ID}, &out, &out); err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out.String())
	}
	waitFor(t, "the replayed dead letter delivered", 30*time.Second, func() bool { return recv.distinct() >= 55 })
}
