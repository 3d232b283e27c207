package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/accessledger/accessledger/internal/badgerutil"
)

// logMeta is stored once, at Create.
type logMeta struct {
	Origin     string    `json:"origin"`
	Created    time.Time `json:"created"`
	TileHeight int       `json:"tile_height"`
}

func (m logMeta) marshal() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // plain struct, cannot fail
	}
	return b
}

func readMeta(db *badger.DB) (logMeta, error) {
	var m logMeta
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyMeta)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNoLog
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	})
	if err != nil {
		return m, err
	}
	if m.TileHeight != TileHeight || m.Origin == "" {
		return m, fmt.Errorf("unsupported log metadata (origin %q, tile height %d): %w", m.Origin, m.TileHeight, ErrCorrupt)
	}
	return m, nil
}

// valueThreshold splits what Badger stores in its LSM tree from what goes
// to its value log: tiles (full ones are exactly 8 KiB, partial ones
// smaller) and chunks of small entries (deleted soon) stay in the LSM
// tree, where superseded versions vanish in compaction; compressed full
// bundles and chunks of large entries (written once, never rewritten) go
// to the value log, so compactions never copy them. Full tiles stay in the
// LSM tree because a full tile replaces the partial tile under the same
// key: only new keys may go to the value log (see sequencer.commit).
const valueThreshold = 8<<10 + 1

// badgerOptions are tuned for an append-only log on a small machine: every
// commit is synced; Badger does not compress (full bundles already are);
// memtables and caches stay small so that a million-entry log fits well
// under 512 MiB of RSS, and there is no block cache (below).
//
// The memtable size sets two things. Badger refuses a transaction above 15 %
// of it, and one API call is one transaction: 24 MiB (3.6 MiB per
// transaction) is the smallest size that still holds the largest call
// (MaxCallBytes with its tiles and records;
// TestNoAcceptedConfigurationOverflowsATransaction fails below it). And
// flushing a memtable builds its table in buffers that double from 4 MiB
// and stay pooled: 4+8+16 MiB hold a 24 MiB memtable, a 32 MiB one needs 60
// MiB. During a million-event fill RSS peaked at 518-585 MiB with 32, at
// 437-515 with 24 (and the index's 8 MiB memtables); the peak after the
// load, while the followers catch up, did not change (BENCHMARKS.md).
func badgerOptions(cfg Config, fault *storageFault) badger.Options {
	opts := badger.DefaultOptions(cfg.Dir).
		WithLogger(badgerLogger{l: cfg.Logger, fault: fault}).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithValueThreshold(valueThreshold).
		WithCompression(options.None).
		WithMemTableSize(24 << 20).
		WithNumMemtables(3).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		// No block cache: tables are not compressed, so Badger reads
		// blocks straight from the mapped files, and a cache only adds
		// work (Badger's own advice). Worse, it charges each uncompressed
		// block the rest of its file (the capacity of a slice of the
		// mapping), so each one evicted nearly the whole cache: over a
		// 10-minute run it hit 5 % of 2 million reads (BENCHMARKS.md).
		WithBlockCacheSize(0).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	if cfg.BadgerOptions != nil {
		opts = cfg.BadgerOptions(opts)
	}
	if cfg.UnsafeNoSyncForTesting {
		cfg.Logger.Warn("UNSAFE: storage syncing is off; acknowledged entries can be lost on power failure")
		return opts.WithSyncWrites(false)
	}
	return opts.WithSyncWrites(true)
}

func openBadger(cfg Config, fault *storageFault) (*badger.DB, error) {
	if err := badgerutil.RemoveTornFiles(cfg.Dir, cfg.Logger); err != nil {
		return nil, err
	}
	db, err := badgerutil.Open("ledger", badgerOptions(cfg, fault))
	if err != nil {
		return nil, fmt.Errorf("opening storage in %s: %w", cfg.Dir, err)
	}
	return db, nil
}

// storageFault records the first error Badger reported only through its
// logger. Badger logs some storage errors instead of returning them: a
// failed sync of the value log after a write (the commit then returns
// nil), a value it could not read (the read then returns nothing), a table
// it ignores at open because its checksum fails. The ledger cannot tell
// which of its data such an error touched, so any of them stops appends
// (fail-stop, see Append). Every error-level line counts, whatever its
// text: matching Badger's wording would break silently on an upgrade.
// TestBadgerLoggedSyncFailureStopsLedger pins this against a real failed
// sync.
type storageFault struct {
	err atomic.Pointer[error]
}

func (f *storageFault) set(err error) { f.err.CompareAndSwap(nil, &err) }

func (f *storageFault) get() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// badgerLogger adapts Badger's logger to slog. Badger is chatty at Info,
// so its Info lines go to Debug. Every Error line is also recorded as a
// storage fault.
type badgerLogger struct {
	l     *slog.Logger
	fault *storageFault
}

func (b badgerLogger) Errorf(f string, a ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, a...))
	if b.fault != nil {
		b.fault.set(fmt.Errorf("storage reported an error: %s", msg))
	}
	b.log(slog.LevelError, "%s", []any{msg})
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.log(slog.LevelWarn, f, a)
}
func (b badgerLogger) Infof(f string, a ...any)  { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any) { b.log(slog.LevelDebug-4, f, a) }

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// get reads a key's value, copying it. It returns ErrNotFound if absent.
func get(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// RunValueLogGC reclaims value-log space left by rewritten partial tiles
// and bundles. It returns nil when there was nothing to collect. Call it
// periodically (the serve command schedules it).
func (l *Ledger) RunValueLogGC(ctx context.Context) error {
	for i := 0; ctx.Err() == nil; i++ {
		l.dbMu.RLock()
		if l.dbClosed {
			l.dbMu.RUnlock()
			return ErrClosed
		}
		err := l.db.RunValueLogGC(0.5)
		l.dbMu.RUnlock()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("value log GC: %w", err)
		}
		l.log.DebugContext(ctx, "value log GC rewrote a file", "round", i)
	}
	return ctx.Err()
}

// view runs fn in a Badger read transaction, unless storage is closed: a
// read racing with Close gets ErrClosed rather than touching a closed
// database.
func (l *Ledger) view(fn func(txn *badger.Txn) error) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return ErrClosed
	}
	return l.db.View(fn)
}
