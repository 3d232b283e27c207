// Package ledger is the append-only Merkle-tree log of accessledger.
//
// Entries are opaque byte strings (the API stores canonical event leaves).
// They are appended through a bounded queue by a single sequencer goroutine
// that writes each batch in one synced Badger transaction: the entries as
// C2SP tlog-tiles entry bundles, the hash tiles (height 8) the batch
// touches, the idempotency records and the new tree size. Callers are
// answered only after that commit. A background task writes, for every
// complete chunk of 65,536 entries, the hash runs that find an entry by
// its leaf hash (hashruns.go). A second goroutine
// signs C2SP checkpoints on a steady cadence, only over durable data, and
// keeps every one. Proofs are built from the stored tiles with
// github.com/transparency-dev/merkle.
//
// Create makes a new log and Open opens an existing one; neither does the
// other's job. Open rebuilds the tree from storage and refuses to start if
// it disagrees with the latest signed checkpoint.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Errors callers branch on.
var (
	// ErrPushback means the append queue is full; retry later.
	ErrPushback = errors.New("ledger: append queue full")
	// ErrClosed means the ledger is closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrFailed means a storage commit failed and the ledger has stopped
	// accepting appends (fail-stop). Nothing unstored was acknowledged or
	// signed; the process must be restarted, and Open then recovers the
	// log from storage. Reads go on. A halted ledger (Halt) has stopped
	// the same way, and its errors match ErrFailed too, so that whoever
	// stops appending on ErrFailed stops on a halt.
	ErrFailed = errors.New("ledger: stopped after a storage failure")
	// ErrHalted means the ledger was halted (Halt) for a reason outside
	// it, which the wrapping error carries: it takes no more appends and
	// signs no more checkpoints until the process restarts. Reads go on.
	ErrHalted = errors.New("ledger: halted")
	// ErrNotFound means the requested entry, tile, hash or checkpoint does
	// not exist (yet).
	ErrNotFound = errors.New("ledger: not found")
	// ErrInvalidArgument means a request is malformed (an index beyond the
	// tree size, from > to, and so on); the wrapping error says which.
	ErrInvalidArgument = errors.New("ledger: invalid argument")
	// ErrIDConflict means an entry reuses a dedup key already bound to
	// different content.
	ErrIDConflict = errors.New("ledger: id already used for different content")
	// ErrExists means Create found a log already in the directory.
	ErrExists = errors.New("ledger: a log already exists here")
	// ErrNoLog means Open found no log in the directory.
	ErrNoLog = errors.New("ledger: no log here")
	// ErrCorrupt means stored data disagrees with itself or with a signed
	// checkpoint. The ledger refuses to serve it.
	ErrCorrupt = errors.New("ledger: storage is inconsistent")
	// ErrTooLarge means an entry exceeds MaxEntrySize or a call exceeds
	// the batch limit.
	ErrTooLarge = errors.New("ledger: too large")
	// ErrIntegrity means SelfAudit found stored entries, hash tiles or
	// the latest signed checkpoint disagreeing with each other in a
	// running ledger (Open reports the same at startup as ErrCorrupt and
	// refuses to start). The wrapping *IntegrityError says where. From
	// then on Healthy reports it, until restart; appends go on.
	ErrIntegrity = errors.New("ledger: integrity self-audit failed")
)

// MaxEntrySize is the largest entry, fixed by the uint16 length prefix of
// C2SP entry bundles.
const MaxEntrySize = 65535

// Config holds what a ledger needs. Dir, Origin (for Create) and Signer are
// required; the rest have defaults.
type Config struct {
	// Dir is the Badger directory. It is created by Create.
	Dir string
	// TrimDir is the directory under which the ledger drops the pages of
	// mapped files from the process's page tables (see trimMappings):
	// Dir by default. A server whose other Badger databases live beside
	// Dir sets their common parent, so that their mapped files do not
	// count in its RSS either.
	TrimDir string
	// TrimInterval is how often the ledger checks whether to drop those
	// pages: 250 ms if zero; never if negative. Dropping them
	// (MADV_PAGEOUT, the only advice safe on a range Badger may have
	// unmapped meanwhile) also evicts them from the page cache, so what
	// Badger reads next (a compaction's tables, a follower's or an
	// auditor's older entries) comes from the disk again. Off, RSS counts
	// every page of the storage files read and written since start (the
	// kernel still reclaims them under memory pressure).
	TrimInterval time.Duration
	// TrimAbove is how much file-backed memory the process may have in
	// its page tables (RssFile, nearly all of it Badger's mapped files)
	// before a check drops the pages: 256 MiB if zero; at every check if
	// negative. Above half of it a check drops the pages of write-ahead
	// logs and value logs only, which Badger reads back only for values
	// above the value threshold and in value-log GC. Trimming only above
	// it keeps RSS bounded without evicting the storage's working set
	// four times a second: that made the server read 20 GB back from the
	// disk in 8 minutes of sustained load (BENCHMARKS.md). The logs
	// alone at half of it keep a stream of 64 KiB events, all of them
	// value-log bytes, under 512 MiB of RSS, which 256 MiB of any pages
	// did not (TestLargeEventsHoldRSSBound).
	TrimAbove int64
	// Origin is the log's origin line and key name. Create requires it;
	// Open checks it if set.
	Origin string
	// Signer signs checkpoints; its Name must equal Origin.
	Signer Signer
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Registerer receives the ledger's Prometheus metrics; nil skips them.
	Registerer prometheus.Registerer

	// QueueSize bounds the entries waiting for the sequencer (default
	// 65536). A full queue answers ErrPushback.
	QueueSize int
	// QueueBytes bounds the memory held by entries waiting for the
	// sequencer: their bytes, dedup keys and bookkeeping (default 64 MiB,
	// at least 2*MaxCallBytes). A full queue answers ErrPushback.
	QueueBytes int64
	// BundleCacheBytes bounds the decompressed full entry bundles kept
	// in memory for reads (default 32 MiB).
	BundleCacheBytes int64
	// SignTimeout bounds one checkpoint signature (default 10s): a hung
	// signer (a KMS that does not answer) fails the signing instead of
	// blocking the signer loop or Close.
	SignTimeout time.Duration
	// MaxBatchSize caps entries per transaction (default 4096); it is
	// also the most entries one Append call may carry.
	MaxBatchSize int
	// MaxBatchAge is how long the sequencer waits for a batch to fill
	// before committing what it has (default 0: commit as soon as the
	// previous commit is done, which batches naturally under load).
	MaxBatchAge time.Duration
	// CommitInterval is, after a commit that carried more than one
	// request (callers appending concurrently), the least time until the
	// next commit begins (default 0: none). Requests arriving meanwhile
	// share that commit, so that a moderate load does not pay a synced
	// commit for every request or two. A caller appending alone, one
	// request after another, is never held back, nor is a request that
	// finds the sequencer idle for that long, nor are 16 waiting
	// requests (clients catching up after a slow stretch).
	CommitInterval time.Duration
	// CheckpointInterval is the signing cadence (default 1s).
	CheckpointInterval time.Duration
	// HaltAtOpen, if set, is called by Open and Create with the log's
	// latest checkpoint, once the log is recovered and before the
	// sequencer and the checkpoint signer start: an error it returns
	// halts the ledger (Halt) before it appends or signs anything. A
	// halt recorded by a previous process (serve's log.behind) is
	// applied this way: a halt after Open returns could come after the
	// signer's first tick, which signs the entries stored since the
	// latest checkpoint.
	HaltAtOpen func(latest *Checkpoint) error
	// MinFreeDisk is the free space, in bytes, below which the file
	// system holding Dir refuses appends (ErrNoSpace; Healthy reports
	// it) until space is freed: DefaultMinFreeDisk if zero; no check if
	// negative. See DefaultMinFreeDisk.
	MinFreeDisk int64
	// QuickOpen skips re-hashing every stored entry at Open; the tree is
	// still rebuilt from tiles and checked against the latest checkpoint.
	QuickOpen bool
	// BadgerOptions, if set, adjusts the Badger options (for tests and
	// benchmarks). SyncWrites stays on regardless.
	BadgerOptions func(badger.Options) badger.Options
	// UnsafeNoSyncForTesting turns syncing off: acknowledged entries can
	// then be lost on power failure. It exists only so that the
	// power-loss test can show that it detects exactly that; never set
	// it in production.
	UnsafeNoSyncForTesting bool

	// faultHook, if set, is called at each step of every commit; an
	// error it returns fails the commit there (fault-injection tests).
	faultHook func(commitStep) error
	// freeSpace, if set, replaces the measure of the free disk space
	// (tests).
	freeSpace func(dir string) (uint64, error)
	// hashRunBits, if set, replaces hashRunBits (tests: small chunks).
	// A log must always be opened with the same value.
	hashRunBits uint8
}

func (c *Config) fault(step commitStep) error {
	if c.faultHook == nil {
		return nil
	}
	return c.faultHook(step)
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("ledger: Config.Dir is required")
	}
	if c.Signer == nil {
		return errors.New("ledger: Config.Signer is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.TrimDir == "" {
		c.TrimDir = c.Dir
	}
	if c.MinFreeDisk == 0 {
		c.MinFreeDisk = DefaultMinFreeDisk
	}
	if c.TrimAbove == 0 {
		c.TrimAbove = DefaultTrimAbove
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 65536
	}
	if c.MaxBatchSize <= 0 {
		c.MaxBatchSize = 4096
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Second
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 64 << 20
	}
	if c.BundleCacheBytes <= 0 {
		c.BundleCacheBytes = 32 << 20
	}
	if c.SignTimeout <= 0 {
		c.SignTimeout = 10 * time.Second
	}
	if c.hashRunBits != 0 && (c.hashRunBits < TileHeight || c.hashRunBits > 16) {
		return fmt.Errorf("ledger: hash-run chunks of 2^%d entries: want 2^%d to 2^16", c.hashRunBits, TileHeight)
	}
	if c.QueueBytes < 2*MaxCallBytes {
		return fmt.Errorf("ledger: QueueBytes %d is below %d: a full-size Append could never be queued", c.QueueBytes, 2*MaxCallBytes)
	}
	if c.QueueSize < c.MaxBatchSize {
		return fmt.Errorf("ledger: QueueSize %d is below MaxBatchSize %d: a full-size Append could never be queued", c.QueueSize, c.MaxBatchSize)
	}
	return nil
}

// Entry is one thing to append.
type Entry struct {
	// Data is the leaf; at most MaxEntrySize bytes.
	Data []byte
	// DedupKey, if set, makes the append idempotent: an entry whose key
	// is already in the log is not appended again; its original index is
	// returned instead.
	DedupKey []byte
	// Fingerprint identifies the content the DedupKey stands for (for
	// events, a hash of the canonical event without the receive time).
	// Reusing a key with another fingerprint fails with ErrIDConflict.
	Fingerprint [32]byte
	// LegacyFingerprint, if set, is another fingerprint of the same
	// content, as an earlier version computed it: an entry stored then
	// under the key is this content too (events with a coordinate of -0,
	// which the canonical form now writes 0). New entries store
	// Fingerprint.
	LegacyFingerprint *[32]byte
	// Decoded, if set, is what Data was encoded from (for an event
	// leaf, an *event.Decoded). The ledger never reads or stores it: it
	// hands it to followers with the entry while the entry is recent
	// (Leaf.Decoded), so that they need not decode Data again. It must
	// describe Data exactly, and nobody may modify it once appended.
	Decoded any
}

// Result is the outcome of appending one Entry.
type Result struct {
	Index    uint64
	LeafHash [32]byte
	// Duplicate is true if the DedupKey was already in the log and
	// nothing new was appended.
	Duplicate bool
	// Err is ErrIDConflict if this entry reuses a key with other content
	// (and then Append fails as a whole and nothing is appended).
	Err error
}

// Ledger is an open log. Its methods are safe for concurrent use.
type Ledger struct {
	cfg      Config
	db       *badger.DB
	log      *slog.Logger
	origin   string
	verifier note.Verifier
	metrics  *metrics
	bundles  *bundleCache  // decompressed full bundles
	recent   *recentLeaves // the last committed entries, for followers
	// edge is the durable part of the edge bundle, as the sequencer
	// published it after its last commit.
	edge atomic.Pointer[edgeBundle]
	// tileAhead and bundleAhead read full tiles and bundles ahead for
	// clients that read them in order (AppendTile, AppendEntryBundleStored).
	tileAhead   tileWindows
	bundleAhead bundleWindow
	txnLimit    txnCost       // what one storage transaction accepts
	fault       *storageFault // errors Badger only logs
	acked       *ackedRecord  // AckedFile, written by the sequencer

	// queue feeds the sequencer.
	qmu         sync.Mutex
	queue       []*request
	queued      int           // entries in queue
	queuedBytes int64         // memBytes of the requests in queue
	qnotify     chan struct{} // capacity 1; signalled on enqueue
	closing     bool          // no more appends accepted
	failed      error         // set once a commit failed; the ledger then refuses appends
	seqState    *sequencer    // owned by the sequencer goroutine

	// durable is the tree state covered by synced commits.
	mu      sync.Mutex
	durable treeState
	commits chan struct{} // closed and replaced on every durable commit
	latest  atomic.Pointer[Checkpoint]

	cpMu     sync.Mutex // serialises checkpoint signing
	signMu   sync.Mutex
	signDone chan struct{}               // closed when the signature in progress returns; nil when none (checkpoint.go)
	signErr  atomic.Pointer[signFailure] // nil after a successful signature

	// integrity is the first mismatch a SelfAudit found; set once, by
	// whichever audit finds it, and never cleared.
	integrity atomic.Pointer[IntegrityError]

	// dbMu guards dbClosed: readers hold it shared, Close exclusively.
	dbMu     sync.RWMutex
	dbClosed bool

	// runs is the number of chunks whose hash runs are stored (see
	// hashruns.go); runNotify (capacity 1) wakes their builder.
	runs      atomic.Uint64
	runNotify chan struct{}

	// disk is the last free-space check (diskspace.go).
	disk     atomic.Pointer[diskState]
	diskDone chan struct{}

	stop     chan struct{}
	seqDone  chan struct{}
	cpDone   chan struct{}
	trimDone chan struct{}
	runDone  chan struct{}
	closed   atomic.Bool
}

type treeState struct {
	size uint64
	root []byte
}

// request is one Append call waiting in the queue.
type request struct {
	entries   []Entry
	cost      txnCost // bound of what the entries add to a transaction
	dataBytes int64   // bytes of the entries' data
	memBytes  int64   // memory the request holds while queued
	results   []Result
	enqueued  time.Time
	err       error
	done      chan struct{}
}

var hasher = rfc6962.DefaultHasher

// Create makes a new, empty log in cfg.Dir, signs its size-0 checkpoint and
// returns it open. It fails with ErrExists if a log is already there.
func Create(ctx context.Context, cfg Config) (*Ledger, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Origin == "" {
		return nil, errors.New("ledger: Config.Origin is required to create a log")
	}
	if cfg.Signer.Name() != cfg.Origin {
		return nil, fmt.Errorf("ledger: signer name %q must equal origin %q", cfg.Signer.Name(), cfg.Origin)
	}
	fault := &storageFault{}
	db, err := openBadger(cfg, fault)
	if err != nil {
		return nil, err
	}
	if _, err := readMeta(db); err == nil {
		db.Close()
		return nil, fmt.Errorf("creating log in %s: %w", cfg.Dir, ErrExists)
	} else if !errors.Is(err, ErrNoLog) {
		db.Close()
		return nil, err
	}
	if err := checkAcked(cfg.Dir, 0, "storage holds no log"); err != nil {
		db.Close()
		return nil, err
	}
	meta := logMeta{Origin: cfg.Origin, Created: cfg.Clock().UTC(), TileHeight: TileHeight}
	l, err := newLedger(cfg, db, fault, meta)
	if err != nil {
		db.Close()
		return nil, err
	}
	l.seqState = newSequencer(l)
	l.durable = treeState{size: 0, root: hasher.EmptyRoot()}
	// The metadata and the size-0 checkpoint are written together: a log
	// exists only once it has a checkpoint.
	l.cpMu.Lock()
	_, err = l.signLocked(ctx, 0, l.durable.root, func(txn *badger.Txn) error {
		if err := txn.Set(keyMeta, meta.marshal()); err != nil {
			return err
		}
		return txn.Set(keySize, encodeSizeRecord(0, l.durable.root))
	})
	l.cpMu.Unlock()
	if err == nil {
		l.acked, err = openAcked(cfg.Dir, 0)
	}
	if err != nil {
		l.metrics.unregister()
		db.Close()
		return nil, fmt.Errorf("creating log: %w", err)
	}
	l.haltAtOpen()
	l.start()
	cfg.Logger.InfoContext(ctx, "created log", "origin", cfg.Origin, "dir", cfg.Dir)
	return l, nil
}

// Open opens the existing log in cfg.Dir. It rebuilds the tree from the
// stored tiles and entries and fails with ErrCorrupt if anything disagrees
// with the latest signed checkpoint, or with ErrNoLog if there is no log.
func Open(ctx context.Context, cfg Config) (*Ledger, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	fault := &storageFault{}
	// After a crash Badger cuts its logs where they stop checking; should
	// the log then have lost acknowledged entries, the bytes it cut are
	// in this copy (see LogCopyPrefix).
	copied := copyLogsBeforeOpen(cfg.Dir, cfg.Clock(), cfg.MinFreeDisk, cfg.Logger)
	db, err := openBadger(cfg, fault)
	if err != nil {
		return nil, keepLogCopy(err, copied, true, cfg.Logger)
	}
	l, err := openLedger(ctx, cfg, db, fault)
	if err != nil {
		db.Close()
		return nil, keepLogCopy(err, copied, false, cfg.Logger)
	}
	dropLogCopy(copied, cfg.Logger)
	l.haltAtOpen()
	l.start()
	return l, nil
}

// haltAtOpen halts the ledger if Config.HaltAtOpen says so. The ledger
// has not started.
func (l *Ledger) haltAtOpen() {
	if l.cfg.HaltAtOpen == nil {
		return
	}
	if err := l.cfg.HaltAtOpen(l.latest.Load()); err != nil {
		l.Halt(err)
	}
}

func openLedger(ctx context.Context, cfg Config, db *badger.DB, fault *storageFault) (*Ledger, error) {
	meta, err := readMeta(db)
	if errors.Is(err, ErrNoLog) {
		if err := checkAcked(cfg.Dir, 0, "storage holds no log"); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening log in %s: %w", cfg.Dir, err)
	}
	if cfg.Origin != "" && cfg.Origin != meta.Origin {
		return nil, fmt.Errorf("ledger: configured origin %q but the log in %s has origin %q", cfg.Origin, cfg.Dir, meta.Origin)
	}
	if cfg.Signer.Name() != meta.Origin {
		return nil, fmt.Errorf("ledger: signer name %q must equal the log's origin %q", cfg.Signer.Name(), meta.Origin)
	}
	if err := dropOldLeafHashIndex(ctx, db, cfg.Logger); err != nil {
		return nil, err
	}
	l, err := newLedger(cfg, db, fault, meta)
	if err != nil {
		return nil, err
	}
	start := cfg.Clock()
	size, root, err := l.recover(ctx)
	if err == nil {
		err = checkAcked(cfg.Dir, size, fmt.Sprintf("storage holds %d entries", size))
	}
	if err == nil {
		l.acked, err = openAcked(cfg.Dir, size)
	}
	if err != nil {
		l.metrics.unregister()
		return nil, err
	}
	l.durable = treeState{size: size, root: root}
	cfg.Logger.InfoContext(ctx, "opened log", "origin", meta.Origin, "size", size,
		"checkpoint_size", l.latest.Load().Size, "verified_entries", !cfg.QuickOpen,
		"took", cfg.Clock().Sub(start).Round(time.Millisecond))
	return l, nil
}

func newLedger(cfg Config, db *badger.DB, fault *storageFault, meta logMeta) (*Ledger, error) {
	v, err := note.NewVerifier(cfg.Signer.VerifierKey())
	if err != nil {
		return nil, fmt.Errorf("ledger: bad verifier key: %w", err)
	}
	l := &Ledger{
		fault:    fault,
		bundles:  newBundleCache(cfg.BundleCacheBytes),
		recent:   newRecentLeaves(),
		txnLimit: txnLimit(db),
		cfg:      cfg,
		db:       db,
		log:      cfg.Logger,
		origin:   meta.Origin,
		verifier: v,
		qnotify:  make(chan struct{}, 1),
		commits:  make(chan struct{}),
		stop:     make(chan struct{}),
		seqDone:  make(chan struct{}),
		cpDone:   make(chan struct{}),
		trimDone: make(chan struct{}),
		runDone:  make(chan struct{}),
		diskDone: make(chan struct{}),

		runNotify: make(chan struct{}, 1),
	}
	l.disk.Store(&diskState{})
	if l.metrics, err = newMetrics(l, cfg.Registerer); err != nil {
		return nil, err
	}
	return l, nil
}

// start checks the free disk space, then launches the sequencer, the
// checkpoint signer, the trimmer, the builder of hash runs and the
// free-space check. Close stops them.
func (l *Ledger) start() {
	l.checkDisk()
	go l.diskLoop()
	go l.seqState.run()
	go l.checkpointLoop()
	go l.trimLoop()
	go l.runLoop()
}

// trimInterval is how often the ledger checks whether to trim its
// storage mappings from RSS (see trimMappings). Filling a log at 60,000
// events/s, trimming every second (and the ledger's directory only) left
// 80-90 MiB of mapped files in RSS at the peak; trimming the server's
// whole data directory every quarter second took the fill's peak RSS
// from 570-599 MiB to 488-551.
const trimInterval = 250 * time.Millisecond

// DefaultTrimAbove is Config.TrimAbove's default: the file-backed
// resident memory above which the ledger trims its storage mappings.
const DefaultTrimAbove = 256 << 20

// trimLoop trims the pages of Badger's mapped files from the process's
// RSS, checking every Config.TrimInterval whether its file-backed
// resident memory exceeds Config.TrimAbove (all of them) or half of it
// (those of the logs), until stop is closed.
func (l *Ledger) trimLoop() {
	defer close(l.trimDone)
	every := l.cfg.TrimInterval
	switch {
	case every < 0:
		return
	case every == 0:
		every = trimInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			resident, err := fileResident()
			logsOnly := false
			if err == nil && l.cfg.TrimAbove > 0 {
				switch {
				case resident > l.cfg.TrimAbove:
				case resident > l.cfg.TrimAbove/2:
					logsOnly = true
				default:
					continue
				}
			}
			trimmed, err := trimMappings(l.cfg.TrimDir, logsOnly)
			if err != nil && !warned {
				// Try again next time; say so once.
				l.log.Warn("trimming storage mappings from memory failed; RSS may include cached storage pages", "err", err)
				warned = true
			}
			if trimmed > 0 {
				l.metrics.trims.Inc()
			}
			l.log.Debug("trimmed storage mappings from memory", "file_resident_bytes", resident, "mapped_bytes", trimmed, "logs_only", logsOnly)
		}
	}
}

// Origin returns the log's origin.
func (l *Ledger) Origin() string { return l.origin }

// VerifierKey returns the note verifier key of the checkpoint signer.
func (l *Ledger) VerifierKey() string { return l.cfg.Signer.VerifierKey() }

// Size returns the durable tree size and root hash: every entry below size
// is committed, though perhaps not yet covered by a checkpoint.
func (l *Ledger) Size() (uint64, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable.size, l.durable.root
}

// QueueDepth returns the number of entries waiting for the sequencer.
func (l *Ledger) QueueDepth() int {
	n, _ := l.queueDepth()
	return n
}

func (l *Ledger) queueDepth() (entries int, bytes int64) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.queued, l.queuedBytes
}

// Healthy returns nil if the ledger accepts appends and signs
// checkpoints, and no self-audit found its storage inconsistent, else
// why not: a failed commit (ErrFailed), a halt (ErrHalted), Close,
// checkpoint signing that failed several times in a row, a failed
// SelfAudit (ErrIntegrity, reported until restart even though appends go
// on), or too little free disk space (ErrNoSpace, until space is freed).
func (l *Ledger) Healthy() error {
	failed := l.failure()
	l.qmu.Lock()
	closing := l.closing
	l.qmu.Unlock()
	switch {
	case failed != nil:
		return failed
	case closing:
		return ErrClosed
	}
	if ie := l.integrity.Load(); ie != nil {
		return fmt.Errorf("self-audit: %w", ie)
	}
	if err := l.noSpace(); err != nil {
		return err
	}
	if f := l.signErr.Load(); f != nil && f.inRow >= signFailuresUnhealthy {
		return fmt.Errorf("checkpoint signing failed %d times in a row: %w", f.inRow, f.err)
	}
	return nil
}

// failure returns the error that stopped the ledger, or nil. An error
// Badger only logged stops it here too.
func (l *Ledger) failure() error {
	if err := l.fault.get(); err != nil {
		l.failStorage(err)
	}
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.failed
}

// failStorage stops the ledger after a storage write outside the
// sequencer failed; the sequencer commits nothing more.
func (l *Ledger) failStorage(err error) {
	l.qmu.Lock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		l.log.Error("storage write failed: the ledger accepts no more appends and signs no more checkpoints until restarted", "err", err)
	}
	l.qmu.Unlock()
	select {
	case l.qnotify <- struct{}{}:
	default:
	}
}

// Halt stops the ledger as a failed commit does, for a reason outside it
// (err): a witness holds a checkpoint of the log that the log's storage
// does not contain, so that whatever it appended now would fork the log.
// When Halt returns, Append, the requests still queued and every later
// call fail with an error that wraps ErrHalted, ErrFailed and err; no
// checkpoint is signed after the one under way, if any (Close signs no
// final one), so that what the log took since its latest checkpoint is
// not signed; Healthy reports it; reads go on. A batch whose commit is
// under way when Halt is called is still acknowledged. The halt lasts
// until the process stops: a caller whose reason outlives it records it
// itself. After a storage failure Halt does nothing; only the first halt
// is kept. It is safe for concurrent use.
func (l *Ledger) Halt(err error) {
	l.qmu.Lock()
	if l.failed == nil {
		l.failed = &haltError{cause: err}
		l.log.Error("ledger halted: it accepts no more appends and signs no more checkpoints until restarted", "err", err)
	}
	l.qmu.Unlock()
	select {
	case l.qnotify <- struct{}{}:
	default:
	}
}

// haltError is the error of a halted ledger: it matches ErrHalted,
// ErrFailed and its cause.
type haltError struct{ cause error }

func (e *haltError) Error() string   { return "ledger: halted: " + e.cause.Error() }
func (e *haltError) Unwrap() []error { return []error{ErrHalted, ErrFailed, e.cause} }

// MaxCallBytes bounds the total size of the entries (and dedup keys) of
// one Append call.
const MaxCallBytes = 3 << 20

// Append appends entries, in order, and returns once they are durable: the
// Badger transaction holding them is committed and synced. All entries of
// one call are committed in the same transaction, or none is.
//
// It fails with ErrPushback if the queue is full (entries or bytes),
// ErrNoSpace while the disk is nearly full (Config.MinFreeDisk),
// ErrTooLarge for an oversized entry or call, ErrClosed after Close, and
// ErrIDConflict (with the results marking the offending entries) if an
// entry reuses a DedupKey with a different Fingerprint.
//
// The ledger fails stop: if any commit fails (an I/O error, a failed sync,
// an error Badger only logs), the sequencer stops. That call, every call
// queued behind it and every later call get ErrFailed; no checkpoint is
// signed again; Healthy reports the failure; reads go on up to the last
// acknowledged entry. Nothing that was not acknowledged is ever covered by
// a checkpoint. The process must then be restarted: Open recovers the log
// from storage, which holds every acknowledged entry and possibly the
// whole failed batch (a commit can fail after its data reached the disk),
// never part of one. Re-deriving the state in place instead is not safe
// with Badger: after a failed sync its memtable already holds the batch,
// and the kernel may have dropped the dirty pages it failed to write.
//
// If ctx ends first Append returns its error, but the entries may still be
// appended: use DedupKey to retry.
func (l *Ledger) Append(ctx context.Context, entries ...Entry) ([]Result, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	if len(entries) > l.cfg.MaxBatchSize {
		return nil, fmt.Errorf("%d entries in one call, limit %d: %w", len(entries), l.cfg.MaxBatchSize, ErrTooLarge)
	}
	total := 0
	for i := range entries {
		if len(entries[i].Data) > MaxEntrySize {
			return nil, fmt.Errorf("entry %d is %d bytes, limit %d: %w", i, len(entries[i].Data), MaxEntrySize, ErrTooLarge)
		}
		total += len(entries[i].Data) + len(entries[i].DedupKey)
	}
	if total > MaxCallBytes {
		return nil, fmt.Errorf("%d bytes of entries in one call, limit %d: %w", total, MaxCallBytes, ErrTooLarge)
	}
	cost, dataBytes := requestCost(entries)
	// The request lands at most after everything now durable or queued
	// (bounded by QueueSize): a bound on the tree size its batch extends.
	size, _ := l.Size()
	alone := cost
	alone.add(batchOverhead(int64(len(entries)), dataBytes, size+uint64(l.cfg.QueueSize)))
	if !alone.fits(l.txnLimit) {
		return nil, fmt.Errorf("%d entries of %d bytes need more than one storage transaction holds (%d bytes, %d writes): %w",
			len(entries), total, l.txnLimit.bytes, l.txnLimit.count, ErrTooLarge)
	}
	if err := l.fault.get(); err != nil {
		l.failStorage(err)
	}
	if err := l.noSpace(); err != nil {
		return nil, err
	}
	r := &request{
		entries:   entries,
		cost:      cost,
		dataBytes: dataBytes,
		memBytes:  int64(total) + int64(len(entries))*entryMemoryCost,
		done:      make(chan struct{}),
		enqueued:  l.cfg.Clock(),
	}
	l.qmu.Lock()
	switch {
	case l.failed != nil:
		l.qmu.Unlock()
		return nil, l.failed
	case l.closing:
		l.qmu.Unlock()
		return nil, ErrClosed
	case l.queued+len(entries) > l.cfg.QueueSize, l.queuedBytes+r.memBytes > l.cfg.QueueBytes:
		l.qmu.Unlock()
		l.metrics.pushbacks.Inc()
		return nil, ErrPushback
	}
	l.queue = append(l.queue, r)
	l.queued += len(entries)
	l.queuedBytes += r.memBytes
	l.qmu.Unlock()
	select {
	case l.qnotify <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return r.results, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops accepting appends, lets the sequencer commit everything
// already queued, signs a final checkpoint over it, stops the signer and
// closes storage, in that order. ctx bounds the wait for the queue.
func (l *Ledger) Close(ctx context.Context) error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	l.qmu.Lock()
	l.closing = true
	l.qmu.Unlock()
	select {
	case l.qnotify <- struct{}{}:
	default:
	}
	var errs []error
	select {
	case <-l.seqDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("draining append queue: %w", ctx.Err()))
	}
	// Closing stop ends the signer loop and the followers, and makes the
	// sequencer (if the deadline passed) fail what is still queued after
	// its current commit. Once both goroutines are gone, sign the final
	// checkpoint over everything committed.
	close(l.stop)
	<-l.seqDone
	<-l.cpDone
	<-l.trimDone
	<-l.runDone
	<-l.diskDone
	// Closing stop abandoned any signature the loop had in progress;
	// the final one waits for it to return (at most SignTimeout) rather
	// than fail because it has not yet.
	l.waitSigner(l.cfg.SignTimeout)
	if err := l.failure(); err != nil {
		// Nothing more is signed after a failure; the next Open
		// recovers from storage. A halt is no failure of the close:
		// its storage is sound, and whoever halted it said why.
		if !errors.Is(err, ErrHalted) {
			errs = append(errs, err)
		}
	} else if _, err := l.SignCheckpoint(context.WithoutCancel(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("signing final checkpoint: %w", err))
	}
	l.metrics.unregister()
	l.dbMu.Lock() // waits for reads in progress
	l.dbClosed = true
	err := l.db.Close()
	l.dbMu.Unlock()
	if aerr := l.acked.close(); err == nil {
		err = aerr
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("closing storage: %w", err))
	}
	return errors.Join(errs...)
}

// setDurable publishes a committed tree state and wakes followers.
func (l *Ledger) setDurable(s treeState) {
	l.mu.Lock()
	l.durable = s
	close(l.commits)
	l.commits = make(chan struct{})
	l.mu.Unlock()
}

// Committed returns a channel closed at the next durable commit. Take it
// before reading Size, so that a commit in between is not missed: a
// follower that has caught up waits on it instead of polling.
func (l *Ledger) Committed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commits
}
