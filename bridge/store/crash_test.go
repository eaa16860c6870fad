package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	bolt "go.etcd.io/bbolt"
)

// Environment of the crash child: the state directory and the first message number to use.
const (
	crashDirEnv  = "KDBRIDGE_STORE_CRASH_DIR"
	crashBaseEnv = "KDBRIDGE_STORE_CRASH_BASE"
	crashWriters = 4
	crashBatch   = 10
)

// crashChild runs the child side of TestCrashSafety when the environment asks for it: it
// appends forever from several goroutines, prints one line per acknowledged Append, and
// meanwhile drains a second target so that deletes and page reuse are in flight too. It
// never returns; the parent kills it.
func crashChild() bool {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return false
	}
	base, _ := strconv.Atoi(os.Getenv(crashBaseEnv))
	// Merges of the dedupe index small and often, so that kills land in them (ids.go).
	s, err := Open(dir, Options{idsMerge: 100, idsChunk: 16})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var out sync.Mutex
	for g := range crashWriters {
		disc := "c" + strconv.Itoa(g)
		go func() {
			for n := base; ; n += crashBatch {
				var recs []bridge.Record
				for i := n; i < n+crashBatch; i++ {
					recs = append(recs, rec(ev(disc, i), tgt("hook"), tgt("drained")))
				}
				if _, err := s.Append(ctx, recs); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				// One write per line: the pipe keeps it whole, so the parent sees only
				// complete acknowledgements.
				out.Lock()
				os.Stdout.WriteString(fmt.Sprintf("%d %d\n", g, n))
				out.Unlock()
			}
		}()
		go func() {
			q := bridge.Queue{Target: tgt("drained"), Discussion: disc}
			for {
				p, ok, err := s.Head(ctx, q)
				if err != nil || !ok {
					time.Sleep(time.Millisecond) // pacing, not synchronisation: wait for appends
					continue
				}
				s.Done(ctx, p)
			}
		}()
	}
	select {}
}

// Every Append that returned before a SIGKILL is in the store after it, and the file is
// consistent, over several kill and reopen rounds.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills child processes")
	}
	dir := t.TempDir()
	acked := map[int][]int{} // writer → acknowledged batch starts
	for round := range 3 {
		base := round * 1_000_000
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashBaseEnv+"="+strconv.Itoa(base))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		// Kill after a round-dependent number of acknowledgements, mid-stream.
		want, seen := 50+round*37, 0
		deadline := time.Now().Add(30 * time.Second)
		for seen < want && time.Now().Before(deadline) && lines.Scan() {
			recordAck(t, acked, lines.Text())
			seen++
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		// Lines already in the pipe were acknowledged before the kill.
		for lines.Scan() {
			recordAck(t, acked, lines.Text())
			seen++
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		if seen < want {
			t.Fatalf("round %d: child acknowledged only %d appends", round, seen)
		}
		checkAfterCrash(t, dir, acked)
	}
}

func recordAck(t *testing.T, acked map[int][]int, line string) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("child printed %q", line)
	}
	g, err1 := strconv.Atoi(f[0])
	n, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("child printed %q", line)
	}
	acked[g] = append(acked[g], n)
}

// checkAfterCrash reopens the store and checks that every acknowledged event is pending for
// the target nobody drains, in order, and that bbolt finds the file consistent.
func checkAfterCrash(t *testing.T, dir string, acked map[int][]int) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("file inconsistent after kill: %v", err)
	}
	ctx := context.Background()
	for g, starts := range acked {
		q := bridge.Queue{Target: tgt("hook"), Discussion: "c" + strconv.Itoa(g)}
		present := map[string]bool{}
		var last uint64
		if err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketPending).Cursor()
			prefix := queuePrefix(q)
			for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
				_, seq, _ := splitPendingKey(k)
				if seq <= last {
					return fmt.Errorf("queue out of order at seq %d", seq)
				}
				last = seq
				eventSeq, _, err := decodePending(v)
				if err != nil {
					return err
				}
				e, err := loadEvent(tx.Bucket(bucketEvents), eventSeq)
				if err != nil {
					return err
				}
				present[e.ID] = true
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, n := range starts {
			for i := n; i < n+crashBatch; i++ {
				if id := ev("c"+strconv.Itoa(g), i).ID; !present[id] {
					t.Fatalf("acknowledged event c%d/%d is missing after kill -9", g, i)
				}
			}
		}
	}
	if _, _, err := s.Head(ctx, bridge.Queue{Target: tgt("hook"), Discussion: "c0"}); err != nil {
		t.Fatal(err)
	}
	// De-duplication survived the kill: no acknowledged event is accepted again.
	for g, starts := range acked {
		var recs []bridge.Record
		for _, n := range starts {
			for i := n; i < n+crashBatch; i++ {
				recs = append(recs, rec(ev("c"+strconv.Itoa(g), i), tgt("hook"), tgt("drained")))
			}
		}
		if got := mustAppend(t, s, recs...); len(got) > 0 {
			t.Fatalf("after kill -9, %d acknowledged events were accepted again (first %s)", len(got), got[0].Event.ID)
		}
	}
}
