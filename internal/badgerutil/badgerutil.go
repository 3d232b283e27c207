// Package badgerutil holds what every Badger database of accessledger (the
// ledger's, the index's, the detector's, the responders', the witness's)
// shares: the clean-up before it is opened, and its Prometheus metrics.
package badgerutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// RemoveTornFiles deletes the empty memtable (.mem) and value-log (.vlog)
// files of a Badger directory. Badger creates such a file and then sizes
// it; a crash or power cut in between leaves an empty file that holds no
// data but that Badger then refuses to open ("Create a new file").
// Removing it is safe: nothing was ever written to it. A directory that
// does not exist yet is fine.
func RemoveTornFiles(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading storage directory %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("removing empty %s left by a crash: %w", filepath.Join(dir, name), err)
		}
		if log != nil {
			log.Warn("removed an empty storage file left by a crash", "file", filepath.Join(dir, name))
		}
	}
	return nil
}

// Open opens a Badger database whose background goroutines (its
// compactors, memtable flushes, value-log work) carry the profiler label
// db=name, which Go gives every goroutine its creator started: a CPU
// profile of the server (--pprof-listen) then tells the databases' work
// apart, such as the ledger's compactions from the detector's.
func Open(name string, opts badger.Options) (db *badger.DB, err error) {
	pprof.Do(context.Background(), pprof.Labels("db", name), func(context.Context) {
		db, err = badger.Open(opts)
	})
	return db, err
}
