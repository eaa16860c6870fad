package kinetic

import (
	"context"
	"sync"
	"time"
)

// Checkpoint is the newest message the source has handed over (Emit returned nil) in one
// discussion. Catch-up replays what is newer.
type Checkpoint struct {
	MessageID string
	CreatedAt time.Time
}

// advancedBy reports whether a live message created at t moves the checkpoint forward. Equal
// times count as newer: timestamps have millisecond precision at best, and a live message is
// the newest the server has.
func (cp Checkpoint) advancedBy(t time.Time) bool {
	return cp.MessageID == "" || !t.Before(cp.CreatedAt)
}

// Checkpoints stores checkpoints per (source, discussion). The bridge's durable store
// implements it; MemoryCheckpoints is the in-process one.
type Checkpoints interface {
	// Checkpoint returns the stored checkpoint and whether there is one.
	Checkpoint(ctx context.Context, source, discussion string) (Checkpoint, bool, error)
	// SetCheckpoint stores cp, replacing what was there.
	SetCheckpoint(ctx context.Context, source, discussion string, cp Checkpoint) error
}

// MemoryCheckpoints keeps checkpoints in memory: for tests, and for a daemon run without a
// store (a restart then starts over, as with no checkpoint). The zero value is ready to use.
type MemoryCheckpoints struct {
	mu sync.Mutex
	m  map[[2]string]Checkpoint
}

var _ Checkpoints = (*MemoryCheckpoints)(nil)

// Checkpoint implements Checkpoints.
func (m *MemoryCheckpoints) Checkpoint(_ context.Context, source, discussion string) (Checkpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.m[[2]string{source, discussion}]
	return cp, ok, nil
}

// SetCheckpoint implements Checkpoints.
func (m *MemoryCheckpoints) SetCheckpoint(_ context.Context, source, discussion string, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[[2]string]Checkpoint{}
	}
	m.m[[2]string{source, discussion}] = cp
	return nil
}
