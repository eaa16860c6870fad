package main

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// The runtime's soft memory limit follows the container's, unless the environment says
// otherwise. It is process state: each case restores it.
func TestContainerMemoryLimit(t *testing.T) {
	const container = 512 << 20
	for _, tc := range []struct {
		name     string
		env      map[string]string
		provider memlimit.Provider
		want     int64 // -1: unchanged
		log      string
	}{
		{"from the container", nil, memlimit.Limit(container), container * 9 / 10, "Go memory limit set from the container's"},
		{"no limit", nil, func() (uint64, error) { return 0, memlimit.ErrNoLimit }, math.MaxInt64, ""},
		{"GOMEMLIMIT kept", map[string]string{"GOMEMLIMIT": "300MiB"}, memlimit.Limit(container), -1, "Go memory limit from GOMEMLIMIT"},
		{"AUTOMEMLIMIT off", map[string]string{"AUTOMEMLIMIT": "off"}, memlimit.Limit(container), -1, ""},
		{"AUTOMEMLIMIT share", map[string]string{"AUTOMEMLIMIT": "0.5"}, memlimit.Limit(container), container / 2, "set from the container's"},
		{"unreadable", nil, func() (uint64, error) { return 0, errors.New("no cgroup") }, -1, "could not read the container's memory limit"},
		{"not Linux", nil, func() (uint64, error) { return 0, memlimit.ErrCgroupsNotSupported }, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetMemoryLimit(before) })
			const marker = 123 << 20 // a limit none of the cases sets
			debug.SetMemoryLimit(marker)
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv("AUTOMEMLIMIT", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.env["AUTOMEMLIMIT"] == "" {
				unsetenv(t, "AUTOMEMLIMIT") // set but empty is not a ratio
			}
			var logs bytes.Buffer
			containerMemoryLimit(slog.New(slog.NewTextHandler(&logs, nil)), tc.provider)
			want := tc.want
			if want == -1 {
				want = marker
			}
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Errorf("Go memory limit %d, want %d", got, want)
			}
			if tc.log == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log %q, want %q", logs.String(), tc.log)
			}
		})
	}
}

// unsetenv removes k from the environment for the rest of the test.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "") // restores it after the test
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}
