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
//
// A directory that holds Badger's tables or logs but no MANIFEST is refused
// before Badger sees it (ErrNoManifest): Badger would start a new, empty
// database there and delete every table the new MANIFEST does not list.
func Open(name string, opts badger.Options) (db *badger.DB, err error) {
	if err := checkManifest(opts.Dir); err != nil {
		return nil, err
	}
	pprof.Do(context.Background(), pprof.Labels("db", name), func(context.Context) {
		db, err = badger.Open(opts)
	})
	return db, err
}

// ErrNoManifest means a Badger directory holds data files but no
// MANIFEST, which lists them.
var ErrNoManifest = errors.New("storage has data files but no MANIFEST")

// checkManifest refuses a directory with table (.sst), value-log (.vlog)
// or memtable (.mem) files and no MANIFEST. Badger writes its MANIFEST
// before any of them and replaces it by a rename, so no crash leaves
// that: the file was removed or lost.
func checkManifest(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // missing, or Badger says why it cannot read it
	}
	var data []string
	for _, e := range entries {
		switch n := e.Name(); {
		case n == "MANIFEST":
			return nil
		case strings.HasSuffix(n, ".sst"), strings.HasSuffix(n, ".vlog"), strings.HasSuffix(n, ".mem"):
			data = append(data, n)
		}
	}
	if len(data) == 0 {
		return nil
	}
	return fmt.Errorf("%s holds %d data files (%s, ...) but no MANIFEST: opening it would start an empty database and delete them; "+
		"nothing was changed: restore the directory, with its MANIFEST, from a backup: %w", dir, len(data), data[0], ErrNoManifest)
}
