package store

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// testdata/schema1/kdbridge.db was written by kdbridge at b502f55 (schema 1, where a Done
// rewrote the event body with one reference less), testdata/schema2/kdbridge.db by
// kdbridge at 35310a4 (schema 2: JSON bodies, releases counted apart, events as richEv
// makes them), testdata/schema3/kdbridge.db by kdbridge at 1aad42f (schema 3: binary
// bodies, every ID in the ids bucket; compacted with bolt.Compact), and testdata/schema4
// by kdbridge at 057ed2e (schema 4: compressed bodies, the IDs not merged yet; with its
// history.db, whose records are JSON: schema4Attempts; both compacted), all with the
// helpers of this package:
//
//	4 events in discussion d, each for targets a and b;
//	event 0 delivered to a and b (body gone);
//	event 1 delivered to a, dead-lettered for b ("boom");
//	event 2 delivered to a, pending for b;
//	event 3 pending for a and b;
//	checkpoints/src/d = "42".
//
// Opening any of them upgrades it in place (to schema 5: compressed binary bodies for new
// events, new IDs merged into ids later, binary history records), and everything resumes:
// nothing is lost or delivered twice, the stored events' IDs are still deduplicated, every
// body goes once nothing needs it, and the old bodies decode to the events that were stored.
func TestUpgradeFromSchema1(t *testing.T) { testUpgrade(t, "schema1", nil) }

func TestUpgradeFromSchema2(t *testing.T) { testUpgrade(t, "schema2", richEv) }

func TestUpgradeFromSchema3(t *testing.T) { testUpgrade(t, "schema3", richEv) }

// The schema 4 file's history.db holds JSON records; after the upgrade they read as they
// were written, beside the binary records written since.
func TestUpgradeFromSchema4(t *testing.T) {
	testUpgrade(t, "schema4", richEv)

	ctx := context.Background()
	dir := copyFixture(t, "schema4")
	s := openT(t, dir, Options{})
	want := schema4Attempts()
	newer := bridge.AttemptRecord{Seq: 9, Queue: bridge.Queue{Target: tgt("a"), Discussion: "d"}, EventID: "evt_new", EventType: bridge.MessageCreated,
		Attempt: 1, At: want[len(want)-1].At.Add(time.Minute), Latency: time.Millisecond, Outcome: bridge.OutcomeDelivered}
	if err := s.LogAttempts(ctx, []bridge.AttemptRecord{newer}); err != nil {
		t.Fatal(err)
	}
	want = append(want, newer)
	got, err := s.Attempts(ctx, bridge.AttemptFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d attempts after the upgrade, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got { // newest first
		sameAttempt(t, g, want[len(want)-1-i])
	}
	// The old records are still JSON, the new one binary: nothing was rewritten.
	var forms []byte
	if err := s.hist.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAttempts).ForEach(func(_, v []byte) error { forms = append(forms, v[0]); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if string(forms) != "{{{"+string(attemptBinary) {
		t.Fatalf("stored forms %q, want three JSON records and a binary one", forms)
	}
}

// schema4Attempts are the records in testdata/schema4/history.db, oldest first.
func schema4Attempts() []bridge.AttemptRecord {
	at := time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.UTC)
	qa, qb := bridge.Queue{Target: tgt("a"), Discussion: "d"}, bridge.Queue{Target: tgt("b"), Discussion: "d"}
	return []bridge.AttemptRecord{
		{Seq: 1, Queue: qa, EventID: richEv(0).ID, EventType: bridge.MessageCreated, Attempt: 1, At: at, Latency: 2 * time.Millisecond, Outcome: bridge.OutcomeDelivered},
		{Seq: 2, Queue: qb, EventID: richEv(1).ID, EventType: bridge.MessageCreated, Attempt: 1, At: at.Add(time.Second), Latency: 30 * time.Millisecond,
			Outcome: bridge.OutcomeRetry, Status: "503", Error: "webhook: 503 Service Unavailable", Response: "busy", NextTry: at.Add(3 * time.Second)},
		{Seq: 2, Queue: qb, EventID: richEv(1).ID, EventType: bridge.MessageCreated, Attempt: 2, At: at.Add(4 * time.Second), Latency: 5 * time.Millisecond,
			Outcome: bridge.OutcomeDeadLetter, Status: "400", Error: "boom", DeadLetter: "dl-2-1"},
	}
}

// copyFixture copies testdata/fixture's files into a new directory and returns it.
func copyFixture(t *testing.T, fixture string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{FileName, HistoryFileName} {
		data, err := os.ReadFile(filepath.Join("testdata", fixture, name))
		if errors.Is(err, fs.ErrNotExist) && name == HistoryFileName {
			continue // fixtures before history.db have none
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// richEv is an event with every field set, as the schema 2 and 3 fixtures hold them.
func richEv(n int) bridge.Event {
	e := ev("d", n)
	e.Discussion.URL = "https://kinetic.example/d"
	e.Discussion.Related = []bridge.RelatedItem{{Type: "Submission", Key: "sub-1"}}
	e.Message.VersionID = "v1"
	e.Message.Content = []bridge.Token{{Type: "text", Value: json.RawMessage(`"hello"`)}, {Type: "mention", Name: "bob", Value: json.RawMessage(`{"username":"bob"}`)}}
	e.Message.Author = bridge.User{Username: "alice", DisplayName: "Alice", Email: "alice@example.com"}
	e.Message.CreatedAt = time.Date(2026, 11, 26, 17, 0, 1, 123456789, time.UTC)
	e.Message.Attachments = []bridge.Attachment{{Filename: "a.txt", ContentType: "text/plain", Size: 3, URL: "https://kinetic.example/a.txt"}}
	e.Raw = json.RawMessage(`{"id":"x","content":[{"type":"text","value":"hello"}]}`)
	return e
}

// testUpgrade opens a copy of testdata/fixture and checks it as above. want, if not nil,
// gives the event stored with text n, which every delivery must carry whole.
func testUpgrade(t *testing.T, fixture string, want func(int) bridge.Event) {
	ctx := context.Background()
	dir := copyFixture(t, fixture)
	if want != nil {
		s := openT(t, dir, Options{})
		for _, q := range []bridge.Queue{{Target: tgt("a"), Discussion: "d"}, {Target: tgt("b"), Discussion: "d"}} {
			p, ok := mustHead(t, s, q)
			if !ok {
				t.Fatalf("%v: empty", q)
			}
			n, _ := strconv.Atoi(p.Event.Message.Text)
			if !reflect.DeepEqual(p.Event, want(n)) {
				t.Fatalf("%v: the %s body decoded to\n%+v\nwant\n%+v", q, fixture, p.Event, want(n))
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openT(t, dir, Options{})
	var schema string
	if err := s.db.View(func(tx *bolt.Tx) error { schema = string(tx.Bucket(bucketMeta).Get([]byte("schema"))); return nil }); err != nil {
		t.Fatal(err)
	}
	if schema != schemaVersion {
		t.Fatalf("schema after open = %q, want %q", schema, schemaVersion)
	}
	// Every ID of a file before schema 4 is in ids: none is read into memory, and the merge
	// watermark is past them. A schema 4 file's IDs are not merged yet: they are read back
	// into memory, behind its watermark, as on any start.
	if st := readIDsState(t, s); fixture == "schema4" {
		if st.inMemory != 4 || st.inIDs != 0 {
			t.Fatalf("de-dup index after the upgrade: %+v; want the 4 IDs in memory, to be merged", st)
		}
	} else if st.inMemory != 0 || st.inIDs != 4 || st.watermark < 4 {
		t.Fatalf("de-dup index after the upgrade: %+v; want the 4 IDs in ids, none in memory, watermark ≥ 4", st)
	}
	if qs, err := s.Queues(ctx); err != nil || len(qs) != 2 {
		t.Fatalf("Queues = %v, %v; want a/d and b/d", qs, err)
	}
	if n := bodies(t, s); n != 3 {
		t.Fatalf("%d bodies after the upgrade, want 3 (events 1, 2, 3)", n)
	}
	qa, qb := bridge.Queue{Target: tgt("a"), Discussion: "d"}, bridge.Queue{Target: tgt("b"), Discussion: "d"}
	if got := drain(t, s, qa); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("a delivered %v, want [3]", got)
	}
	if n := bodies(t, s); n != 3 {
		t.Fatalf("%d bodies after draining a, want 3: b still needs 2 and 3", n)
	}
	if got := drain(t, s, qb); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("b delivered %v, want [2 3]", got)
	}
	if n := bodies(t, s); n != 1 {
		t.Fatalf("%d bodies after draining b, want 1 (the dead letter's)", n)
	}
	dls := mustDeadLetters(t, s, bridge.DeadLetterFilter{})
	if len(dls) != 1 || dls[0].Pending.Event.Message.Text != "1" || dls[0].Reason != "boom" {
		t.Fatalf("dead letters = %+v", dls)
	}
	if _, err := s.Replay(ctx, bridge.DeadLetterFilter{}); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, qb); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("b delivered %v after the replay, want [1]", got)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d bodies left after everything was delivered", n)
	}
	if v, ok, err := s.Get(ctx, "checkpoints", "src/d"); err != nil || !ok || string(v) != "42" {
		t.Fatalf("checkpoint = %q, %v, %v", v, ok, err)
	}
	var recs []bridge.Record
	for i := range 5 {
		recs = append(recs, rec(ev("d", i), tgt("a"), tgt("b")))
	}
	if got := mustAppend(t, s, recs...); len(got) != 1 || got[0].Event.Message.Text != "4" {
		t.Fatalf("Append after the upgrade stored %d records; want only the new event 4", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	if got := drain(t, s, qa); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("a delivered %v after reopening, want [4]", got)
	}
	if got := drain(t, s, qb); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("b delivered %v after reopening, want [4]", got)
	}
	if n := bodies(t, s); n != 0 {
		t.Fatalf("%d bodies left", n)
	}
	var released int
	if err := s.db.View(func(tx *bolt.Tx) error { released = tx.Bucket(bucketReleased).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if released != 0 {
		t.Fatalf("%d released counts left with no body", released)
	}
}

// A file of a newer schema is refused, untouched.
func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("Open accepted a file of schema 99")
	}
}
