package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Lookups by leaf hash (IndexOf) use hash runs. For every complete chunk
// of 2^hashRunBits entries, the pairs (the first 8 bytes of an entry's
// leaf hash, its position in the chunk) are stored sorted, cut by the
// hash's first byte:
//
//	'r' chunk:8 bucket:1 part:1   pairs hash[:8] || pos:2 of the chunk's entries whose
//	                              leaf hash starts with the byte bucket, sorted, at most
//	                              runPartPairs per part
//	'm' "hashruns"                how many chunks have their runs (all those below it)
//
// A background builder (runLoop) writes a chunk's runs from its level-0
// tiles once the chunk is durable, in one transaction with the new count.
// IndexOf reads one bucket per chunk and scans the level-0 tiles of the
// entries past the runs: at most one chunk, plus whatever the builder has
// still to do.
//
// Earlier versions wrote one key per entry ('h' leafhash[:8] index:8) in
// the commit's transaction. Those keys are random across the whole key
// space, so every compaction of the LSM tree rewrote them: in batches of
// 100 they cost 6-7 of the server's 25 CPU-µs per event (BENCHMARKS.md).
// A run is a few hundred sequential keys per 65,536 entries. Open removes
// the old keys (dropOldLeafHashIndex); the builder then writes the runs.
const (
	prefixHashRun = 'r'
	// hashRunBits is the log2 of the entries per chunk: positions fit in
	// two bytes, and the tail IndexOf scans stays below 2 MiB of tiles.
	hashRunBits = 16
	// runPairBytes is one pair: 8 bytes of hash, 2 of position.
	runPairBytes = 10
	// runPartPairs bounds a part so that it stays below the value
	// threshold (in the LSM tree, written in one phase like any small
	// record; see sequencer.commit for why values in the value log are
	// written apart).
	runPartPairs = 512
)

var keyHashRuns = []byte("mhashruns")

func hashRunKey(chunk uint64, bucket, part byte) []byte {
	k := make([]byte, 0, 11)
	k = append(k, prefixHashRun)
	k = binary.BigEndian.AppendUint64(k, chunk)
	return append(k, bucket, part)
}

// runPair is a pair of a hash run, in memory.
type runPair struct {
	hash uint64 // the leaf hash's first 8 bytes, big-endian
	pos  uint16
}

func cmpRunPair(a, b runPair) int {
	switch {
	case a.hash < b.hash:
		return -1
	case a.hash > b.hash:
		return 1
	}
	return int(a.pos) - int(b.pos)
}

// chunkBits is the log2 of the entries per chunk of hash runs.
func (l *Ledger) chunkBits() uint {
	if l.cfg.hashRunBits != 0 {
		return uint(l.cfg.hashRunBits)
	}
	return hashRunBits
}

// readHashRuns returns the number of chunks with hash runs.
func readHashRuns(txn *badger.Txn) (uint64, error) {
	v, err := get(txn, keyHashRuns)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := decodeUint64(v)
	if err != nil {
		return 0, fmt.Errorf("hash-run count: %v: %w", err, ErrCorrupt)
	}
	return n, nil
}

// buildRuns writes the hash runs of chunk, which must be durable and the
// next without runs, and the new count, in one transaction. pairs is a
// buffer it may reuse; it returns it.
func (l *Ledger) buildRuns(chunk uint64, pairs []runPair) ([]runPair, error) {
	bits := l.chunkBits()
	firstTile := chunk << bits / TileWidth
	tiles := uint64(1) << bits / TileWidth
	pairs = pairs[:0]
	err := l.view(func(txn *badger.Txn) error {
		next, _, err := scanTiles(txn, 0, firstTile, firstTile+tiles, func(index uint64, t []byte) (bool, error) {
			if len(t) != TileWidth*hashSize {
				return false, fmt.Errorf("level-0 tile %d holds %d bytes, want a full tile: %w", index, len(t), ErrCorrupt)
			}
			base := uint16((index - firstTile) * TileWidth)
			for i := range TileWidth {
				pairs = append(pairs, runPair{binary.BigEndian.Uint64(t[i*hashSize:]), base + uint16(i)})
			}
			return true, nil
		})
		if err == nil && next != firstTile+tiles {
			err = fmt.Errorf("level-0 tile %d missing: %w", next, ErrCorrupt)
		}
		return err
	})
	if err != nil {
		return pairs, err
	}
	slices.SortFunc(pairs, cmpRunPair)

	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	var val []byte
	for start := 0; start < len(pairs); {
		bucket := byte(pairs[start].hash >> 56)
		end := start
		for end < len(pairs) && byte(pairs[end].hash>>56) == bucket {
			end++
		}
		for part := 0; start < end; part++ {
			n := min(end-start, runPartPairs)
			val = val[:0]
			for _, p := range pairs[start : start+n] {
				val = binary.BigEndian.AppendUint64(val, p.hash)
				val = binary.BigEndian.AppendUint16(val, p.pos)
			}
			// Set keeps val; each part needs its own bytes.
			if err := txn.Set(hashRunKey(chunk, bucket, byte(part)), bytes.Clone(val)); err != nil {
				return pairs, err
			}
			start += n
		}
	}
	if err := txn.Set(keyHashRuns, encodeUint64(chunk+1)); err != nil {
		return pairs, err
	}
	if err := txn.Commit(); err != nil {
		return pairs, err
	}
	return pairs, l.fault.get()
}

// runRetry is how long the builder waits after a failed build.
const runRetry = 10 * time.Second

// runLoop builds the hash runs of every durable chunk that lacks them,
// then again each time the sequencer completes a chunk, until stop is
// closed. It never writes after the ledger failed.
func (l *Ledger) runLoop() {
	defer close(l.runDone)
	bits := l.chunkBits()
	var pairs []runPair
	for {
		size, _ := l.Size()
		for l.failure() == nil && l.runs.Load() < size>>bits {
			select {
			case <-l.stop:
				return
			default:
			}
			c := l.runs.Load()
			start := time.Now()
			var err error
			if pairs, err = l.buildRuns(c, pairs); err != nil {
				if errors.Is(err, ErrClosed) {
					return
				}
				l.log.Error("writing the leaf-hash runs of a chunk failed; lookups by leaf hash scan its tiles until they are written", "chunk", c, "err", err)
				select {
				case <-l.stop:
					return
				case <-time.After(runRetry):
				}
				continue
			}
			l.runs.Store(c + 1)
			l.log.Debug("wrote leaf-hash runs", "chunk", c, "took", time.Since(start).Round(time.Microsecond))
		}
		select {
		case <-l.stop:
			return
		case <-l.runNotify:
		}
	}
}

// indexOf finds the first index below size whose leaf hash is leafHash:
// through the hash runs of the chunks that have them, then by scanning
// the level-0 tiles of the entries after them.
func (l *Ledger) indexOf(ctx context.Context, leafHash []byte, size uint64) (uint64, bool, error) {
	bits := l.chunkBits()
	runs := l.runs.Load()
	h8 := binary.BigEndian.Uint64(leafHash)
	var index uint64
	found := false
	err := l.view(func(txn *badger.Txn) error {
		tc := l.newTileCache(txn)
		// matches reports whether the entry at i has leafHash.
		matches := func(i uint64) (bool, error) {
			t, err := tc.tile(0, i/TileWidth)
			if err != nil {
				return false, err
			}
			h, ok := tileHash(t, i)
			return ok && bytes.Equal(h, leafHash), nil
		}
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		for c := uint64(0); c < runs && c<<bits < size; c++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			opts.Prefix = hashRunKey(c, leafHash[0], 0)[:10]
			it := txn.NewIterator(opts)
			stop := false
			for it.Rewind(); it.Valid() && !found && !stop; it.Next() {
				err := it.Item().Value(func(v []byte) error {
					if len(v)%runPairBytes != 0 {
						return fmt.Errorf("hash run %x holds %d bytes: %w", it.Item().Key(), len(v), ErrCorrupt)
					}
					n := len(v) / runPairBytes
					lo := sort.Search(n, func(m int) bool { return binary.BigEndian.Uint64(v[m*runPairBytes:]) >= h8 })
					for ; lo < n && binary.BigEndian.Uint64(v[lo*runPairBytes:]) == h8; lo++ {
						i := c<<bits + uint64(binary.BigEndian.Uint16(v[lo*runPairBytes+8:]))
						if i >= size {
							// Pairs of one hash sort by position.
							stop = true
							return nil
						}
						ok, err := matches(i)
						if err != nil {
							return err
						}
						if ok {
							index, found = i, true
							return nil
						}
					}
					return nil
				})
				if err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
			if found {
				return nil
			}
		}
		// The entries past the runs, one level-0 tile at a time.
		first := min(runs<<bits, size)
		end := bundleCount(size)
		scan := func(tile uint64, t []byte) (bool, error) {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			for o := uint64(0); o+hashSize <= uint64(len(t)); o += hashSize {
				i := tile*TileWidth + o/hashSize
				if i >= size {
					break
				}
				if i >= first && bytes.Equal(t[o:o+hashSize], leafHash) {
					index, found = i, true
					return false, nil
				}
			}
			return true, nil
		}
		next, _, err := scanTiles(txn, 0, first/TileWidth, end, scan)
		// The tiles the scan did not reach: the edge's, which is not
		// stored (see edgeBundle), one that filled since txn began, or
		// a missing one.
		for ; err == nil && !found && next < end; next++ {
			t, terr := tc.tile(0, next)
			if errors.Is(terr, ErrNotFound) {
				return fmt.Errorf("level-0 tile %d missing: %w", next, ErrCorrupt)
			}
			if terr != nil {
				return terr
			}
			_, err = scan(next, t)
		}
		return err
	})
	return index, found, err
}

// dropOldLeafHashIndex removes the per-entry leaf-hash keys an earlier
// version wrote ('h' leafhash[:8] index:8); hash runs replace them.
func dropOldLeafHashIndex(ctx context.Context, db *badger.DB, log *slog.Logger) error {
	old := false
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{prefixLeafHash}
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Rewind()
		old = it.Valid()
		return nil
	})
	if err != nil || !old {
		return err
	}
	start := time.Now()
	if err := db.DropPrefix([]byte{prefixLeafHash}); err != nil {
		return fmt.Errorf("removing the per-entry leaf-hash index of an earlier version: %w", err)
	}
	log.InfoContext(ctx, "removed the per-entry leaf-hash index of an earlier version; lookups by leaf hash now use hash runs, written in the background",
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}
