package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// kvInFile reads a value from the file, bypassing what PutLater keeps in memory.
func kvInFile(t testing.TB, s *Bolt, namespace, key string) (string, bool) {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		if ns := tx.Bucket(bucketKV).Bucket([]byte(namespace)); ns != nil {
			v = bytes.Clone(ns.Get([]byte(key)))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return string(v), v != nil
}

func mustGet(t testing.TB, s *Bolt, namespace, key string) string {
	t.Helper()
	v, ok, err := s.Get(context.Background(), namespace, key)
	if err != nil || !ok {
		t.Fatalf("Get %s/%s = %q, %v, %v", namespace, key, v, ok, err)
	}
	return string(v)
}

func TestPutLater(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// The Done delay is long so that only the writes below can commit the values.
	s := openT(t, dir, Options{doneDelay: time.Hour})
	if err := s.Put(ctx, "cp", "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2", "3"} {
		if err := s.PutLater("cp", "a", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustGet(t, s, "cp", "a"); got != "3" {
		t.Fatalf("Get after PutLater = %q, want the latest value 3", got)
	}
	// The next commit of anything else carries it.
	mustAppend(t, s, rec(ev("d", 0), tgt("t")))
	if got, _ := kvInFile(t, s, "cp", "a"); got != "3" {
		t.Fatalf("after the next commit the file holds %q, want 3", got)
	}

	// A Put made after a PutLater wins, also in the file.
	if err := s.PutLater("cp", "b", []byte("later")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "cp", "b", []byte("put")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, rec(ev("d", 1), tgt("t")))
	if got, _ := kvInFile(t, s, "cp", "b"); got != "put" || mustGet(t, s, "cp", "b") != "put" {
		t.Fatalf("the value put later overwrote the newer Put: file %q", got)
	}

	// Close writes what is left.
	if err := s.PutLater("cp", "c", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLater("cp", "c", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutLater after Close: %v, want ErrClosed", err)
	}
	s = openT(t, dir, Options{})
	if got := mustGet(t, s, "cp", "c"); got != "" {
		t.Fatalf("after reopen c = %q, want present and empty", got)
	}
	if got := mustGet(t, s, "cp", "a"); got != "3" {
		t.Fatalf("after reopen a = %q, want 3", got)
	}
}

// A value put later is written within about a second even when nothing else commits.
func TestPutLaterIsFlushedWhenIdle(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	if err := s.PutLater("cp", "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, ok := kvInFile(t, s, "cp", "a"); ok && got == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a value put later was not written within 10s of an idle store")
		}
		time.Sleep(10 * time.Millisecond) // polling the file, not synchronisation
	}
}

func TestPutLaterRejectsBadKeys(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	for _, c := range []struct{ ns, key string }{{"", "k"}, {"ns", ""}, {"ns", strings.Repeat("k", bolt.MaxKeySize+1)}} {
		if err := s.PutLater(c.ns, c.key, []byte("v")); err == nil {
			t.Errorf("PutLater(%q, %.10q…) succeeded", c.ns, c.key)
		}
	}
}
