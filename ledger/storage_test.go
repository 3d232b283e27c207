package ledger

import (
	"testing"

	"github.com/dgraph-io/badger/v4/options"
)

// TestNoBlockCacheForUncompressedTables: the ledger's tables are not
// compressed, so it must not have a block cache. Badger would read
// uncompressed blocks straight from the mapped files anyway, and it
// charges each cached one the rest of its file, so the cache only churns
// (BENCHMARKS.md: a 5 % hit rate over a 10-minute run, and 3-6 % fewer
// single-event requests per second with it).
func TestNoBlockCacheForUncompressedTables(t *testing.T) {
	cfg := testConfig(t)
	cfg.BadgerOptions = nil
	cfg.Logger = nil
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	o := badgerOptions(cfg, &storageFault{})
	if o.Compression == options.None && o.BlockCacheSize != 0 {
		t.Errorf("badgerOptions: uncompressed tables with a %d-byte block cache, want none", o.BlockCacheSize)
	}
}
