package ledger

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/rfc6962"
)

// runsLog appends n entries to a ledger with chunks of 256 entries, in
// calls of 100; data(i) is entry i. It waits for the runs of every full
// chunk.
func runsLog(t *testing.T, n int, data func(i int) []byte) (*Ledger, Config) {
	t.Helper()
	l, cfg := newTestLedger(t, func(c *Config) { c.hashRunBits = 8 })
	for i := 0; i < n; i += 100 {
		var entries []Entry
		for j := i; j < min(i+100, n); j++ {
			entries = append(entries, Entry{Data: data(j)})
		}
		if _, err := l.Append(bg, entries...); err != nil {
			t.Fatalf("Append() = %v", err)
		}
	}
	waitRuns(t, l, uint64(n)>>8)
	return l, cfg
}

// checkIndexOf checks IndexOf for every entry of a log of size n and
// sizes at and around it against first, the first index of each entry's
// data.
func checkIndexOf(t *testing.T, l *Ledger, n int, data func(i int) []byte) {
	t.Helper()
	first := map[string]int{}
	for i := range n {
		if _, ok := first[string(data(i))]; !ok {
			first[string(data(i))] = i
		}
	}
	for i := range n {
		leaf := rfc6962.DefaultHasher.HashLeaf(data(i))
		want := first[string(data(i))]
		for _, size := range []uint64{uint64(n), uint64(want) + 1} {
			if got, err := l.IndexOf(bg, leaf, size); err != nil || got != uint64(want) {
				t.Fatalf("IndexOf(entry %d, size %d) = %d, %v; want %d", i, size, got, err, want)
			}
		}
		if _, err := l.IndexOf(bg, leaf, uint64(want)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("IndexOf(entry %d, size %d) = %v; want ErrNotFound (its first index is %d)", i, want, err, want)
		}
	}
	if _, err := l.IndexOf(bg, rfc6962.DefaultHasher.HashLeaf([]byte("never appended")), uint64(n)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("IndexOf(never appended) = %v, want ErrNotFound", err)
	}
}

// dupData repeats some entries across chunks: entry 5's data comes again
// at 700 (in a chunk with runs) and 1290 (past the runs), and entry 300's
// at 301.
func dupData(i int) []byte {
	switch i {
	case 700, 1290:
		i = 5
	case 301:
		i = 300
	}
	return entryData(i)
}

// TestIndexOfThroughHashRuns: lookups by leaf hash find the first index
// of every entry, below any size, whether the entry's chunk has hash runs
// or is past them, and whether or not the runs are written yet.
func TestIndexOfThroughHashRuns(t *testing.T) {
	const n = 1300
	l, _ := runsLog(t, n, dupData)
	if got := l.runs.Load(); got != n>>8 {
		t.Fatalf("runs of %d chunks, want %d", got, n>>8)
	}
	checkIndexOf(t, l, n, dupData)
	// Past the runs, every lookup scans tiles: same answers. (Nothing is
	// appended meanwhile, so the builder does not run.)
	l.runs.Store(1)
	checkIndexOf(t, l, n, dupData)
	l.runs.Store(n >> 8)
}

// TestHashRunsAfterRestart: runs a crash left unwritten are written at
// the next Open; a full Open checks them.
func TestHashRunsAfterRestart(t *testing.T) {
	const n = 1100
	l, cfg := runsLog(t, n, dupData)
	closeLedger(t, l)
	// As after a crash before the builder ran: no runs at all.
	editStore(t, cfg.Dir, func(txn *badger.Txn) error {
		for c := uint64(0); c < n>>8; c++ {
			for b := range 256 {
				if err := txn.Delete(hashRunKey(c, byte(b), 0)); err != nil {
					return err
				}
			}
		}
		return txn.Delete(keyHashRuns)
	})
	l = openTestLedger(t, cfg)
	waitRuns(t, l, n>>8)
	checkIndexOf(t, l, n, dupData)
	closeLedger(t, l)
	l = openTestLedger(t, cfg) // a full Open verifies the rebuilt runs
	checkIndexOf(t, l, n, dupData)
}

// TestOldLeafHashIndexRemoved: Open removes the per-entry leaf-hash keys
// earlier versions wrote, and lookups work through the runs.
func TestOldLeafHashIndexRemoved(t *testing.T) {
	const n = 600
	l, cfg := runsLog(t, n, dupData)
	closeLedger(t, l)
	editStore(t, cfg.Dir, func(txn *badger.Txn) error {
		for i := range n {
			h := rfc6962.DefaultHasher.HashLeaf(dupData(i))
			k := append([]byte{prefixLeafHash}, h[:8]...)
			k = append(k, encodeUint64(uint64(i))...)
			if err := txn.Set(k, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if got := countPrefix(t, cfg.Dir, prefixLeafHash); got != n {
		t.Fatalf("%d old leaf-hash keys written, want %d", got, n)
	}
	l = openTestLedger(t, cfg)
	checkIndexOf(t, l, n, dupData)
	closeLedger(t, l)
	if got := countPrefix(t, cfg.Dir, prefixLeafHash); got != 0 {
		t.Fatalf("%d old leaf-hash keys after Open, want 0", got)
	}
}

// TestHashRunCountBeyondSize: a stored run count beyond the tree is
// corruption, refused by QuickOpen too (lookups would skip entries).
func TestHashRunCountBeyondSize(t *testing.T) {
	l, cfg := runsLog(t, 600, entryData)
	closeLedger(t, l)
	editStore(t, cfg.Dir, func(txn *badger.Txn) error { return txn.Set(keyHashRuns, encodeUint64(3)) })
	for _, quick := range []bool{false, true} {
		cfg.QuickOpen = quick
		l, err := Open(bg, cfg)
		if err == nil {
			l.Close(bg)
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "beyond the tree size") {
			t.Fatalf("Open(QuickOpen %v) with runs of 3 chunks of a 600-entry log = %v, want ErrCorrupt", quick, err)
		}
	}
}

// TestHashRunBitsChecked: chunks must hold whole tiles and positions fit
// in two bytes.
func TestHashRunBitsChecked(t *testing.T) {
	for _, bits := range []uint8{7, 17} {
		cfg := testConfig(t)
		cfg.Dir = filepath.Join(t.TempDir(), fmt.Sprint(bits))
		cfg.hashRunBits = bits
		if l, err := Create(bg, cfg); err == nil {
			l.Close(bg)
			t.Errorf("Create with hash-run chunks of 2^%d entries succeeded", bits)
		}
	}
}

// countPrefix counts the keys under prefix in the closed store at dir.
func countPrefix(t *testing.T, dir string, prefix byte) int {
	t.Helper()
	n := 0
	editStore(t, dir, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{prefix}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

// TestHashRunsMetric: /metrics shows how many entries the runs cover.
func TestHashRunsMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, _ := newTestLedger(t, func(c *Config) { c.hashRunBits = 8; c.Registerer = reg })
	appendN(t, l, 0, 600, 100)
	waitRuns(t, l, 2)
	checkMetrics(t, reg, map[string]float64{"accessledger_hash_runs_entries": 512})
}
