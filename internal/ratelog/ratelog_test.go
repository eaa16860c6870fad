package ratelog

import (
	"testing"
	"time"
)

func TestAllowOncePerIntervalPerKey(t *testing.T) {
	l := New(time.Minute)
	clock := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }

	if n, ok := l.Allow("a"); !ok || n != 1 {
		t.Fatalf("first a: %d %v, want 1 true", n, ok)
	}
	for range 3 {
		if _, ok := l.Allow("a"); ok {
			t.Fatal("a logged again within the interval")
		}
	}
	if n, ok := l.Allow("b"); !ok || n != 1 {
		t.Fatalf("first b: %d %v: keys are independent", n, ok)
	}
	clock = clock.Add(time.Minute)
	if n, ok := l.Allow("a"); !ok || n != 4 {
		t.Fatalf("a after the interval: %d %v, want 4 (3 unlogged + this one) true", n, ok)
	}
}

func TestZeroIntervalLogsEveryOccurrence(t *testing.T) {
	l := New(0)
	for i := range 3 {
		if n, ok := l.Allow("k"); !ok || n != 1 {
			t.Fatalf("occurrence %d: %d %v", i, n, ok)
		}
	}
}
