package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

func TestReopenKeepsState(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	s := openT(t, dir, Options{})
	for i := range 3 {
		mustAppend(t, s, rec(ev("d", i), tgt("a"), tgt("b")))
	}
	qa := bridge.Queue{Target: tgt("a"), Discussion: "d"}
	p, _ := mustHead(t, s, qa)
	if err := s.DeadLetter(ctx, p, "boom"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "checkpoint", "src/d", []byte("42")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, FileName): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}

	s = openT(t, dir, Options{})
	qs, err := s.Queues(ctx)
	if err != nil || len(qs) != 2 {
		t.Fatalf("Queues after reopen = %v, %v", qs, err)
	}
	if got := drain(t, s, qa); strings.Join(got, ",") != "1,2" {
		t.Fatalf("a after reopen delivered %v", got)
	}
	if got := drain(t, s, bridge.Queue{Target: tgt("b"), Discussion: "d"}); strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("b after reopen delivered %v", got)
	}
	if dls := mustDeadLetters(t, s, bridge.DeadLetterFilter{}); len(dls) != 1 || dls[0].Pending.Event.Message.Text != "0" {
		t.Fatalf("dead letters after reopen: %+v", dls)
	}
	if v, ok, err := s.Get(ctx, "checkpoint", "src/d"); err != nil || !ok || string(v) != "42" {
		t.Fatalf("Get after reopen = %q, %v, %v", v, ok, err)
	}
	// The sequence goes on from where it was: new events queue behind old ones.
	mustAppend(t, s, rec(ev("d", 3), tgt("a")))
	replayed, err := s.Replay(ctx, bridge.DeadLetterFilter{})
	if err != nil || len(replayed) != 1 {
		t.Fatalf("Replay = %v, %v", replayed, err)
	}
	if got := drain(t, s, qa); strings.Join(got, ",") != "3,0" {
		t.Fatalf("a delivered %v, want 3 then the replayed 0", got)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{})
	start := time.Now()
	s, err := Open(dir, Options{})
	if err == nil {
		s.Close()
		t.Fatal("a second Open of the same directory succeeded")
	}
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by another kdbridge process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %s to fail", d)
	}
}

func TestOpenFailsOnUnusableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(filepath.Join(file, "state"), Options{}); err == nil {
		s.Close()
		t.Fatal("Open under a regular file succeeded")
	}
}
