// Package index keeps the secondary indexes that make the log searchable,
// and answers queries over them.
//
// The indexes are derived data. A follower (Run) reads the log's committed
// entry bundles in order and keeps a posting list per indexed value
// (actor id, source IP and its /8, /16, /24 or /16, /32, /48, /64
// prefixes, action, category, outcome, service, resource type and id,
// tenant, leaf kind, the API key that submitted an event, event minute and
// day) and the event time of every
// leaf. Posting lists are roaring bitmaps, one per value and per chunk of
// 65,536 leaves. The newest chunk lives in memory, where queries read it
// as soon as the follower has indexed a bundle; a full chunk is written,
// once, to a Badger directory of the index's own, and so is the open one
// when Run stops. The ledger's write path is untouched: the follower reads
// the log as any reader does.
//
// Queries see the index up to the indexed size only (Size), which every
// answer reports. After a crash the follower starts again from the size it
// last wrote (a chunk boundary, or where it stopped cleanly) and indexes
// the rest of the log again, so the index catches up on start; lists are
// sets, so a leaf indexed twice is indexed once. If the stored index does
// not belong to the log (another origin, a size beyond the log's, another
// leaf at its end) it is dropped and rebuilt from the log.
package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/internal/badgerutil"
	"github.com/accessledger/accessledger/ledger"
)

// Errors callers branch on.
var (
	// ErrUnknownField means Top was asked for a field that is not
	// indexed.
	ErrUnknownField = errors.New("index: field is not indexed")
	// ErrClosed means the index is closed.
	ErrClosed = errors.New("index: closed")
)

// Log is what the index reads from the log: its committed size, its entry
// bundles (C2SP tlog-tiles), single entries (to check that the stored
// index belongs to it) and its origin. *ledger.Ledger implements it.
type Log interface {
	Size() (uint64, []byte)
	ReadEntryBundle(ctx context.Context, index uint64, width int) ([]byte, error)
	Entry(ctx context.Context, index uint64) ([]byte, []byte, error)
	Origin() string
}

// Config holds what an index needs. Dir and Log are required.
type Config struct {
	// Dir is the index's own Badger directory; Open creates it if
	// needed.
	Dir string
	// Log is the log to index.
	Log Log
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the index's metrics; nil skips them.
	Registerer prometheus.Registerer
	// PollInterval is how often the follower looks for new entries once
	// it has caught up with a log that does not signal its commits
	// (default 2ms): with the indexing itself, it bounds how long a
	// committed leaf waits to be queryable. A *ledger.Ledger signals
	// them (Committed), and the follower waits for the next instead.
	PollInterval time.Duration
	// MaxLag, if not 0, is how far (in entries) the index may fall behind
	// the log before Behind reports it, once it has caught up.
	MaxLag uint64
	// BadgerOptions, if set, adjusts the Badger options (tests,
	// benchmarks).
	BadgerOptions func(badger.Options) badger.Options
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("index: Config.Dir is required")
	}
	if c.Log == nil {
		return errors.New("index: Config.Log is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Millisecond
	}
	return nil
}

// Index is an open index. Queries are safe for concurrent use, also while
// Run indexes.
type Index struct {
	cfg     Config
	db      *badger.DB
	log     *slog.Logger
	metrics *metrics

	size   atomic.Uint64 // indexed size: every leaf below it is queryable
	stored atomic.Uint64 // the indexed size storage holds
	// caughtUp is set once the follower has come within MaxLag of the
	// log, and cleared when it stops or fails; progress is when it last
	// wrote (Unix ns).
	caughtUp atomic.Bool
	progress atomic.Int64
	mu       sync.Mutex
	grown    chan struct{} // closed and replaced whenever size grows
	running  atomic.Bool

	// memMu guards mem: the follower changes it exclusively, queries read
	// it shared.
	memMu sync.RWMutex
	mem   *memChunk // the open chunk, nil until Run loads it

	// dbMu guards closed: queries hold it shared, Close exclusively.
	dbMu   sync.RWMutex
	closed bool
}

// meta is the index's record of how far it reaches.
type meta struct {
	Version  int    `json:"version"`
	Origin   string `json:"origin"`
	Size     uint64 `json:"size"`
	LeafHash []byte `json:"leaf_hash,omitempty"` // of leaf Size-1
}

const metaVersion = 3

var (
	keyMeta   = []byte{prefixMeta}
	keyMetaV2 = []byte{prefixMetaV2}
)

// Open opens the index in cfg.Dir, creating it if there is none (an empty
// index is at size 0). If the stored index does not belong to cfg.Log it
// is dropped, to be rebuilt by Run.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithLogger(badgerLogger{cfg.Logger}).
		// Derived data: a write lost to a crash is written again from
		// the log, and the indexed size is written after the lists.
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithCompression(options.Snappy).
		// Small memtables: flushing one holds its table (and Snappy's
		// copy of it) in pooled buffers that double from 4 MiB, and the
		// index's writes go through a WriteBatch, which splits them
		// into transactions of whatever size the memtable allows.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(10).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	if cfg.BadgerOptions != nil {
		opts = cfg.BadgerOptions(opts)
	}
	if err := badgerutil.RemoveTornFiles(cfg.Dir, cfg.Logger); err != nil {
		return nil, err
	}
	db, err := badgerutil.Open("index", opts)
	if err != nil {
		return nil, fmt.Errorf("opening index in %s: %w", cfg.Dir, err)
	}
	x := &Index{cfg: cfg, db: db, log: cfg.Logger, grown: make(chan struct{})}
	m, err := x.check(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	x.size.Store(m.Size)
	x.stored.Store(m.Size)
	if x.metrics, err = newMetrics(x, cfg.Registerer); err != nil {
		db.Close()
		return nil, err
	}
	return x, nil
}

// check reads the stored meta and drops the index if it does not belong
// to the log.
func (x *Index) check(ctx context.Context) (meta, error) {
	m, found, err := x.readMeta()
	if err != nil {
		return m, err
	}
	fresh := meta{Version: metaVersion, Origin: x.cfg.Log.Origin()}
	if !found {
		return fresh, nil
	}
	logSize, _ := x.cfg.Log.Size()
	why := ""
	switch {
	case m.Version != metaVersion:
		why = fmt.Sprintf("it has format version %d, this program writes %d", m.Version, metaVersion)
	case m.Origin != fresh.Origin:
		why = fmt.Sprintf("it indexes the log %q", m.Origin)
	case m.Size > logSize:
		why = fmt.Sprintf("it reaches size %d but the log has %d entries", m.Size, logSize)
	case m.Size > 0:
		_, h, err := x.cfg.Log.Entry(ctx, m.Size-1)
		if err != nil {
			return m, fmt.Errorf("checking the index against the log: %w", err)
		}
		if !bytes.Equal(h, m.LeafHash) {
			why = fmt.Sprintf("its last indexed entry %d is not the log's", m.Size-1)
		}
	}
	if why == "" {
		return m, nil
	}
	x.log.Warn("the stored index does not belong to this log; rebuilding it from the log", "reason", why, "dir", x.cfg.Dir)
	if err := x.db.DropAll(); err != nil {
		return m, fmt.Errorf("dropping the stale index: %w", err)
	}
	return fresh, nil
}

func (x *Index) readMeta() (meta, bool, error) {
	var m meta
	found := false
	err := x.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyMeta)
		if errors.Is(err, badger.ErrKeyNotFound) {
			// An index of version 2 or before keeps its meta elsewhere.
			item, err = txn.Get(keyMetaV2)
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	})
	if err != nil {
		return m, false, fmt.Errorf("reading index meta: %w", err)
	}
	return m, found, nil
}

// Size returns the indexed size: every leaf below it is in the indexes
// and found by queries.
func (x *Index) Size() uint64 { return x.size.Load() }

// Behind reports whether the index lags the log by more than MaxLag
// entries although it is keeping up: it has caught up since Run started,
// and wrote within the last 10 seconds. The API then pushes appends back,
// so that the lag stays bounded under sustained load. An index that is
// catching up (after a restart or a rebuild) or that is stuck never holds
// appends back.
func (x *Index) Behind() bool {
	if x.cfg.MaxLag == 0 || !x.caughtUp.Load() {
		return false
	}
	size, _ := x.cfg.Log.Size()
	if size <= x.Size()+x.cfg.MaxLag {
		return false
	}
	return time.Since(time.Unix(0, x.progress.Load())) < 10*time.Second
}

// Wait returns once the indexed size is at least size, or when ctx ends.
func (x *Index) Wait(ctx context.Context, size uint64) error {
	for {
		x.mu.Lock()
		grown := x.grown
		x.mu.Unlock()
		if x.size.Load() >= size {
			return nil
		}
		select {
		case <-grown:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (x *Index) setSize(n uint64) {
	x.mu.Lock()
	x.size.Store(n)
	close(x.grown)
	x.grown = make(chan struct{})
	x.mu.Unlock()
}

// Close closes storage. Run must have returned first.
func (x *Index) Close() error {
	x.dbMu.Lock()
	defer x.dbMu.Unlock()
	if x.closed {
		return nil
	}
	x.closed = true
	x.metrics.unregister()
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("closing index storage: %w", err)
	}
	return nil
}

// view runs fn in a read transaction, unless the index is closed.
func (x *Index) view(fn func(txn *badger.Txn) error) error {
	x.dbMu.RLock()
	defer x.dbMu.RUnlock()
	if x.closed {
		return ErrClosed
	}
	return x.db.View(fn)
}

// Run indexes the log from the stored size on, following it as it grows,
// until ctx ends; it then writes what it has indexed and returns nil. A
// failure to read the log or write the index is logged and retried with
// backoff; only the log's closing (ledger.ErrClosed) ends Run with an
// error. Run may be called once; Close after it returns.
func (x *Index) Run(ctx context.Context) error {
	if !x.running.CompareAndSwap(false, true) {
		return errors.New("index: Run called twice")
	}
	defer x.caughtUp.Store(false)
	f, err := x.newFollower()
	if err != nil {
		return err
	}
	backoff := time.Second
	for {
		err := f.follow(ctx)
		x.caughtUp.Store(false)
		if ctx.Err() != nil || errors.Is(err, ledger.ErrClosed) {
			if perr := f.persist(context.WithoutCancel(ctx), false); perr != nil {
				x.log.Error("writing the index failed; it catches up at the next start", "err", perr)
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		x.metrics.errors.Inc()
		x.log.Error("indexing the log failed; retrying", "err", err, "indexed_size", x.Size(), "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// badgerLogger adapts Badger's logger to slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(logMsg(f, a), "component", "index-storage")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(logMsg(f, a), "component", "index-storage")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(logMsg(f, a), "component", "index-storage")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(logMsg(f, a), "component", "index-storage")
}

func logMsg(f string, a []any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }

func (x *Index) write(fn func(wb *badger.WriteBatch) error) error {
	x.dbMu.RLock()
	defer x.dbMu.RUnlock()
	if x.closed {
		return ErrClosed
	}
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	if err := fn(wb); err != nil {
		return err
	}
	return wb.Flush()
}

func (x *Index) update(fn func(txn *badger.Txn) error) error {
	x.dbMu.RLock()
	defer x.dbMu.RUnlock()
	if x.closed {
		return ErrClosed
	}
	return x.db.Update(fn)
}

func encodeTimes(ts []int64) []byte {
	b := make([]byte, 8*len(ts))
	for i, t := range ts {
		putUint64(b[8*i:], uint64(t))
	}
	return b
}

func decodeTimes(b []byte) []int64 {
	ts := make([]int64, len(b)/8)
	for i := range ts {
		ts[i] = int64(getUint64(b[8*i:]))
	}
	return ts
}

// metrics are the index's Prometheus metrics.
type metrics struct {
	reg        prometheus.Registerer
	storage    *badgerutil.StorageMetrics
	collectors []prometheus.Collector
	flushes    prometheus.Histogram
	unparsable prometheus.Counter
	errors     prometheus.Counter
}

func newMetrics(x *Index, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		flushes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "accessledger_index_write_duration_seconds",
			Help:    "Time to write one batch of index updates.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		unparsable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_index_unparsable_entries_total",
			Help: "Entries the index could not read (found by unfiltered queries only).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_index_errors_total",
			Help: "Failures to read the log or write the index (each is retried).",
		}),
	}
	m.collectors = []prometheus.Collector{
		m.flushes, m.unparsable, m.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_index_size",
			Help: "Indexed size: entries below it are found by queries.",
		}, func() float64 { return float64(x.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_index_lag_entries",
			Help: "Committed entries not yet indexed (log size minus indexed size).",
		}, func() float64 {
			size, _ := x.cfg.Log.Size()
			return float64(size - min(size, x.Size()))
		}),
	}
	if reg == nil {
		return m, nil
	}
	m.storage = badgerutil.NewStorageMetrics("index", x.db)
	m.collectors = append(m.collectors, m.storage)
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, d := range m.collectors[:i] {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("index: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	if m == nil || m.reg == nil {
		return
	}
	m.storage.Close() // before the storage closes: a scrape may be running
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
