// Package store is the embedded durable store of kdbridge: a bbolt file in the state
// directory that holds every event before it is routed, one pending delivery per target in
// per-(target, discussion) FIFO queues, the dead letters, and small named values (source
// checkpoints, the Kinetic-id → Slack-ts map).
//
// The store is built so that its memory does not grow with the backlog: queues live only in
// the file, and Head finds the oldest delivery of a queue with one cursor seek, so a sink that
// is down for a day costs disk, not heap.
//
// Writes from all goroutines go through one committer that merges whatever is waiting into
// one transaction and one fsync (commit.go); Done does not even wait for that (done.go).
//
// Layout (all sequence numbers are big-endian uint64, so byte order is append order):
//
//	meta     "schema" → format version; "ids-merged" → the seq up to which ids is complete
//	events   seq → refs(uint32) ‖ event body; refs counts the pending deliveries and dead
//	         letters that needed the body when it was stored (written once, by Append). The
//	         body is binary since schema 3 (codec.go), S2-compressed binary since schema 4,
//	         JSON before; all decode. The bucket's sequence numbers
//	         events and replayed deliveries alike: a delivery's seq is its event's, or its
//	         replay's.
//	released seq → uint32: how many of an event's references are gone, while some are
//	         left; the body goes with the last. Kept apart so that a Done writes 4 bytes,
//	         not the whole body again.
//	ids      event ID → seq ‖ stored-at: the dedupe index, kept until Prune; an ID joins it
//	         in a merge of many (ids.go), until then stored and memory know it
//	stored   seq → stored-at ‖ event ID: the dedupe index in age order, so Prune reads only
//	         the old end
//	pending  queue ‖ seq → event seq ‖ attempt JSON, where queue is the length-prefixed
//	         Target.Key() and discussion ID (user strings may hold any byte, and length
//	         prefixes keep one queue's prefix from being the start of another's)
//	dead     event seq ‖ target index → dead-letter JSON
//	kv       namespace → (key → value)
//
// Disk space: bbolt reuses the pages that deletes free, so at a steady rate of traffic the
// file stops growing once it is large enough for the peak backlog; it never shrinks by
// itself, and no compaction is needed. An operator who wants the space back after a large
// outage can stop the daemon and compact offline with the bbolt tool
// (go install go.etcd.io/bbolt/cmd/bbolt@v1.5.0):
//
//	bbolt compact -o kdbridge.db.new kdbridge.db && mv kdbridge.db.new kdbridge.db
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/writebehind"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the database file inside the state directory.
const FileName = "kdbridge.db"

// schemaVersion is bumped when the layout above changes incompatibly.
//
// Schema 2 added the released bucket. Open upgrades a schema 1 file in place: a schema 1
// body's count is what was left of its references, and with no releases recorded it reads
// the same in schema 2. An older kdbridge refuses a schema 2 file (it would keep bodies
// whose releases it cannot see).
//
// Schema 3 stores event bodies in binary (eventcodec.go) instead of JSON. Open upgrades a
// schema 1 or 2 file in place without rewriting anything: the JSON bodies it holds still
// decode, and new bodies are binary. An older kdbridge refuses a schema 3 file (it could not
// decode the new bodies), so rolling back means restoring a copy taken before the upgrade.
//
// Schema 4 writes new event IDs to ids in merges rather than in the commit that stores them
// (ids.go), behind the watermark meta "ids-merged", and stores event bodies S2-compressed
// when that saves a tenth (codec.go, tag 2). Open upgrades a schema 1–3 file by writing the
// watermark (everything it holds is merged); its bodies decode as they are. An older
// kdbridge refuses a schema 4 file: it would miss the IDs not merged yet (and deliver those
// events again), and could not decode compressed bodies.
//
// Schema 5 writes the attempt history's records (history.db) in a binary form
// (attempts.go) instead of JSON. Nothing in this file changes: Open upgrades a schema 4 file
// by recording the version, and the JSON records already in history.db are read as they
// are. An older kdbridge refuses a schema 5 file, as for every change of format, rather than
// show a history it cannot read.
const schemaVersion = "5"

// initialMmapSize is the address space mapped for the file from the start. bbolt maps the
// file and, as it grows, maps it again at double the size (32 KiB, 64 KiB, … 1 GiB): each
// time, the commit waits for every reader to finish, and copies out of the old mapping every
// key and value its dirty nodes point to. A backlog of 50,000 events remapped 12 times on
// its way. Mapping 256 MiB at once costs address space only: the file does not grow with
// it (except on Windows, where it would, so there it stays bbolt's default), and only pages
// that are read count in RSS.
func initialMmapSize() int {
	if runtime.GOOS == "windows" {
		return 0
	}
	return 256 << 20
}

// lockTimeout bounds the wait for the file lock: a second process gets an error quickly
// instead of hanging behind the daemon that holds the directory.
const lockTimeout = time.Second

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("store is closed")

// ErrInUse is returned by Open when another process holds the state directory.
var ErrInUse = errors.New("state directory is in use by another kdbridge process")

var (
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")
	bucketIDs      = []byte("ids")
	bucketStored   = []byte("stored")
	bucketPending  = []byte("pending")
	bucketDead     = []byte("dead")
	bucketKV       = []byte("kv")
	bucketReleased = []byte("released")
)

var allBuckets = [][]byte{bucketMeta, bucketEvents, bucketIDs, bucketStored, bucketPending, bucketDead, bucketKV, bucketReleased}

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives the store's few log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock for stored-at and failed-at times; nil means time.Now.
	Now func() time.Time
	// Retention is how long event IDs are remembered for dedupe. It is informational: the
	// caller decides when to prune and passes the cut-off to Prune.
	Retention time.Duration

	// ObserveCommit, when set, is told of every write transaction made durable on either
	// file: the group commits of kdbridge.db and the attempt history's writes to history.db
	// (the daemon's kdbridge_store_commit_duration_seconds and pages written). It runs on the
	// writer, between two commits: it must be quick.
	ObserveCommit func(Commit)

	// doneDelay replaces the package's doneDelay when set (tests).
	doneDelay time.Duration
	// idsMerge and idsChunk replace recentIDsMerge and mergeChunk when set (tests).
	idsMerge, idsChunk int
}

// Commit is a write transaction made durable (see Options.ObserveCommit).
type Commit struct {
	File  string        // FileName or HistoryFileName
	Took  time.Duration // from the transaction's start until its fsync returned
	Pages int64         // pages written: bbolt writes every page the transaction changed, then syncs
}

// Bolt is the bbolt-backed bridge.Store. It is safe for concurrent use; writes from all
// goroutines are merged into group commits (see commit.go), and Done does not wait for its
// commit (see Done).
type Bolt struct {
	db   *bolt.DB
	hist *bolt.DB // the attempt history (history.go)
	log  *slog.Logger
	now  func() time.Time
	opts Options

	writes    chan *write   // to the committer (commit.go)
	kick      chan struct{} // tells the committer that Done calls are queued
	doneFull  chan struct{} // tells it that so many are queued that they should not wait
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// Done calls accepted but not yet committed (done.go).
	doneMu   sync.RWMutex
	doneRoom *sync.Cond // on doneMu: signalled when doneQ is taken or the store closes
	doneSet  map[string]struct{}
	doneQ    []string
	closed   bool

	// Recently appended events, decoded, for Head (cache.go); txCached lists the entries
	// added by the transaction the committer is running, to be taken back if it fails.
	cache    *eventCache
	txCached []uint64

	// The event IDs stored since the dedupe index's last merge (ids.go); the committer's.
	recent *recentIDs

	// Values put later and not yet committed (kv.go).
	later       writebehind.Values
	laterMu     sync.Mutex  // guards the timer
	laterTimer  *time.Timer // flushes them when nothing else commits
	laterClosed bool
}

var (
	_ bridge.Store  = (*Bolt)(nil)
	_ bridge.Peeker = (*Bolt)(nil)
)

// Open opens or creates the store in dir: the directory with mode 0700, dir/kdbridge.db and
// dir/history.db (the attempt history, history.go) with mode 0600. The file is locked for the life of the store; when another process holds
// it, Open fails after about a second rather than waiting.
func Open(dir string, opts Options) (*Bolt, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.doneDelay == 0 {
		opts.doneDelay = doneDelay
	}
	if opts.idsMerge == 0 {
		opts.idsMerge, opts.idsChunk = recentIDsMerge, mergeChunk
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := openBolt(path, initialMmapSize())
	if err != nil {
		return nil, err
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var recent *recentIDs
	if err := db.View(func(tx *bolt.Tx) (err error) {
		recent, err = loadRecentIDs(tx, opts.idsMerge, opts.idsChunk)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	hist, err := openHistory(dir, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Bolt{
		db:       db,
		hist:     hist,
		log:      opts.Logger,
		now:      opts.Now,
		opts:     opts,
		writes:   make(chan *write),
		kick:     make(chan struct{}, 1),
		doneFull: make(chan struct{}, 1),
		quit:     make(chan struct{}),
		doneSet:  map[string]struct{}{},
		cache:    newEventCache(),
		recent:   recent,
	}
	s.doneRoom = sync.NewCond(&s.doneMu)
	s.wg.Add(1)
	go s.commitLoop()
	s.log.Debug("store opened", "path", path, "retention", opts.Retention)
	return s, nil
}

// openBolt opens one of the store's bbolt files, mapping mmapSize bytes ahead.
func openBolt(path string, mmapSize int) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         lockTimeout,
		InitialMmapSize: mmapSize,
		// A drained backlog leaves many free pages. The map freelist stays fast with them,
		// and not writing the freelist saves sorting and writing all of it on every commit;
		// bbolt rebuilds it from the tree on open instead (as etcd does). Both are crash
		// safe. NoSync stays off: every commit is fsynced.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

func initSchema(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get([]byte("schema")); {
	case v == nil:
		if err := meta.Put(metaIDsMerged, seqKey(0)); err != nil {
			return err
		}
		return meta.Put([]byte("schema"), []byte(schemaVersion))
	case string(v) == "1", string(v) == "2", string(v) == "3":
		// Schema 1 needs only the released bucket created above; schema 2's JSON bodies
		// decode as they are; every ID stored so far is in ids, so the merge watermark of
		// schema 4 starts at the last seq.
		if err := meta.Put(metaIDsMerged, seqKey(tx.Bucket(bucketEvents).Sequence())); err != nil {
			return err
		}
		return meta.Put([]byte("schema"), []byte(schemaVersion))
	case string(v) == "4":
		// Only history.db's new records differ, and its JSON ones still decode.
		return meta.Put([]byte("schema"), []byte(schemaVersion))
	case string(v) != schemaVersion:
		return fmt.Errorf("state was written by an incompatible kdbridge (schema %q, want %q)", v, schemaVersion)
	}
	return nil
}

// Path is the database file, for log lines and operator messages.
func (s *Bolt) Path() string { return s.db.Path() }

// Close commits the writes and Done calls already accepted, then closes the file. Calls made
// afterwards return ErrClosed or a bbolt "database not open" error.
func (s *Bolt) Close() error {
	s.closeOnce.Do(func() {
		s.closeDones()
		s.closeLater()
		close(s.quit)
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
		if err := s.hist.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// view runs a read-only transaction after checking ctx.
func (s *Bolt) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}
