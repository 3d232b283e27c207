package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// recover loads the stored tree, checks it against the latest signed
// checkpoint and prepares the sequencer to continue it. Unless QuickOpen is
// set it re-hashes every stored entry and checks every stored tile.
func (l *Ledger) recover(ctx context.Context) (uint64, []byte, error) {
	if err := l.removeIncomplete(ctx); err != nil {
		return 0, nil, err
	}
	var size uint64
	var root, sizeRoot []byte
	s := newSequencer(l)
	err := l.db.View(func(txn *badger.Txn) error {
		v, err := get(txn, keySize)
		if err != nil {
			return fmt.Errorf("reading tree size: %w", err)
		}
		if size, sizeRoot, err = decodeSizeRecord(v); err != nil {
			return fmt.Errorf("reading tree size: %v: %w", err, ErrCorrupt)
		}
		cp, err := l.readLatestCheckpoint(txn)
		if err != nil {
			return err
		}
		if cp.Size > size {
			return fmt.Errorf("latest checkpoint covers %d entries but only %d are stored: %w", cp.Size, size, ErrCorrupt)
		}
		l.latest.Store(cp)
		runs, err := readHashRuns(txn)
		if err != nil {
			return err
		}
		if runs > size>>l.chunkBits() {
			return fmt.Errorf("hash runs cover %d chunks of %d entries, beyond the tree size %d: %w", runs, 1<<l.chunkBits(), size, ErrCorrupt)
		}
		l.runs.Store(runs)
		// The edge bundle is what the next batch extends; both the full
		// verification and the sequencer need it, and its level-0 tile,
		// the leaf hashes of its entries (see edgeBundle). Even a quick
		// open re-hashes the edge, and checks the tree's root against
		// the size record: it is what a crash hits, and what no signed
		// checkpoint may cover yet.
		edge, err := loadBundleWriter(txn, size)
		if err != nil {
			return err
		}
		edgeEntries, err := edge.entries()
		if err != nil {
			return err
		}
		et, err := loadEdgeTile(txn, size, edgeEntries, sizeRoot == nil)
		if err != nil {
			return err
		}
		tc := &tileCache{txn: txn, tiles: make(map[[2]uint64][]byte),
			edge: &edgeBundle{index: edge.index, n: len(edgeEntries), hashes: et.hashes}}
		if !l.cfg.QuickOpen {
			if err := l.verifyEntries(ctx, txn, tc, size, cp, edge.index, edgeEntries); err != nil {
				return err
			}
		}
		cpRange, err := rangeFromTiles(tc, cp.Size)
		if err != nil {
			return fmt.Errorf("rebuilding tree of size %d from tiles: %w", cp.Size, err)
		}
		cpRoot, err := rootOf(cpRange)
		if err != nil {
			return err
		}
		if !bytes.Equal(cpRoot, cp.Hash) {
			return rootMismatch(cp, cpRoot)
		}
		rng, err := rangeFromTiles(tc, size)
		if err != nil {
			return fmt.Errorf("rebuilding tree of size %d from tiles: %w", size, err)
		}
		if err := s.adopt(rng); err != nil {
			return err
		}
		if root, err = rootOf(s.rng); err != nil {
			return err
		}
		if sizeRoot != nil && !bytes.Equal(root, sizeRoot) {
			return fmt.Errorf("stored tree of size %d has root %s but the size record says %s: %w",
				size, base64.StdEncoding.EncodeToString(root), base64.StdEncoding.EncodeToString(sizeRoot), ErrCorrupt)
		}
		return s.loadEdge(tc, size, edge, et)
	})
	if errors.Is(err, ErrNotFound) {
		// Anything missing from a log that says it has it is corruption.
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err != nil {
		return 0, nil, err
	}
	s.size = size
	l.seqState = s
	return size, root, nil
}

// removeIncomplete deletes what the first (value-log) phase of a commit
// that never completed left beyond the stored size (see sequencer.commit):
// full bundles that are not full at that size, and chunks of entries at or
// beyond it. Such records were never acknowledged or signed; nothing at or
// below the size is touched. A missing or malformed size is left for
// recover to report.
func (l *Ledger) removeIncomplete(ctx context.Context) error {
	var keys [][]byte
	err := l.db.View(func(txn *badger.Txn) error {
		v, err := get(txn, keySize)
		if err != nil {
			return nil
		}
		size, _, err := decodeSizeRecord(v)
		if err != nil {
			return nil
		}
		beyond := func(prefix byte, from []byte) {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = []byte{prefix}
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Seek(from); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		beyond(prefixBundle, bundleKey(size/TileWidth))
		beyond(prefixChunk, chunkKey(size/TileWidth, int(size%TileWidth)))
		beyond(prefixLegacyChunk, legacyChunkKey(size/TileWidth, int(size%TileWidth)))
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	err = l.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing records left beyond the tree size by an incomplete commit: %w", err)
	}
	l.log.WarnContext(ctx, "removed records left beyond the tree size by a commit that did not complete (never acknowledged)", "records", len(keys))
	return nil
}

// noStrayChunks checks that the only chunks under prefix are the edge
// bundle's.
func noStrayChunks(txn *badger.Txn, prefix byte, edgeIndex uint64) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{prefix}
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if idx, _ := decodeUint64(it.Item().Key()[1:9]); idx != edgeIndex {
			return fmt.Errorf("stray chunk of entry bundle %d (edge bundle is %d): %w", idx, edgeIndex, ErrCorrupt)
		}
	}
	return nil
}

func rootMismatch(cp *Checkpoint, got []byte) error {
	return fmt.Errorf("stored tree of size %d has root %s but the latest signed checkpoint says %s: %w",
		cp.Size, base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(cp.Hash), ErrCorrupt)
}

// edgeTile is the level-0 tile of the edge bundle: its hashes, and what
// an earlier version stored of it, for the next commit to delete: the
// first entry of each chunk of hashes, or (old) a partial tile.
type edgeTile struct {
	hashes []byte
	chunks []int
	old    bool
}

// loadEdgeTile computes the level-0 tile of the edge bundle, whose entries
// are given, from them. With stored (a log an earlier version wrote, whose
// size record has no root to check the edge against) it reads the tile
// that version stored, as chunks of leaf hashes or as a partial tile, and
// checks the entries against it.
func loadEdgeTile(txn *badger.Txn, size uint64, entries [][]byte, stored bool) (edgeTile, error) {
	index, width := size/TileWidth, int(size%TileWidth)
	var et edgeTile
	if width == 0 {
		return et, nil
	}
	if len(entries) != width {
		return et, fmt.Errorf("edge bundle %d holds %d entries, want %d: %w", index, len(entries), width, ErrCorrupt)
	}
	et.hashes = make([]byte, 0, width*hashSize)
	for _, e := range entries {
		et.hashes = append(et.hashes, hasher.HashLeaf(e)...)
	}
	if !stored {
		return et, nil
	}
	hashes, chunks, err := readHashChunks(txn, index)
	if err != nil {
		return et, err
	}
	if et.chunks = chunks; len(chunks) == 0 {
		if hashes, err = get(txn, tileKey(0, index)); err != nil {
			return et, fmt.Errorf("edge tile 0/%d: %w", index, err)
		}
		et.old = true
	}
	if len(hashes) != width*hashSize {
		return et, fmt.Errorf("edge tile 0/%d holds %d hashes, want %d: %w", index, len(hashes)/hashSize, width, ErrCorrupt)
	}
	for i := range width {
		if h := et.hashes[i*hashSize : (i+1)*hashSize]; !bytes.Equal(h, hashes[i*hashSize:(i+1)*hashSize]) {
			return et, fmt.Errorf("entry %d does not match its stored leaf hash: %w", size-uint64(width)+uint64(i), ErrCorrupt)
		}
	}
	return et, nil
}

// loadEdge loads the rightmost incomplete tile of every level and the
// rightmost incomplete entry bundle, which the next batch extends.
func (s *sequencer) loadEdge(tc *tileCache, size uint64, bw *bundleWriter, et edgeTile) error {
	for level := 0; ; level++ {
		nodes := size >> (uint(level) * TileHeight)
		if nodes == 0 {
			break
		}
		s.tiles = append(s.tiles, nil)
		s.dirty = append(s.dirty, false)
		width := nodes % TileWidth
		if width == 0 {
			continue
		}
		t, err := tc.tile(uint8(level), nodes/TileWidth)
		if err != nil {
			return err
		}
		if uint64(len(t)) != width*hashSize {
			return fmt.Errorf("edge tile %d/%d holds %d hashes, want %d: %w", level, nodes/TileWidth, len(t)/hashSize, width, ErrCorrupt)
		}
		s.tiles[level] = bytes.Clone(t)
	}
	s.bundle = bw
	s.edgeChunks, s.oldEdgeTile = et.chunks, et.old
	s.l.edge.Store(bw.published(s.edgeTile()))
	return nil
}

// verifyEntries re-hashes every stored entry, rebuilds the tree from those
// leaf hashes alone, and checks every stored tile node and the checkpoint
// root against it, and the hash runs and dedup records against the
// entries (recordCheck). Any edited, missing or extra entry, hash or
// record is caught.
func (l *Ledger) verifyEntries(ctx context.Context, txn *badger.Txn, tc *tileCache, size uint64, cp *Checkpoint, edgeIndex uint64, edge [][]byte) error {
	rc, err := loadRecordCheck(txn, size, l.runs.Load(), l.chunkBits())
	if err != nil {
		return err
	}
	rng := rangeFactory.NewEmptyRange(0)
	var verr error
	visit := func(id compact.NodeID, h []byte) {
		if verr != nil || id.Level%TileHeight != 0 {
			return
		}
		level := uint8(id.Level / TileHeight)
		t, err := tc.tile(level, id.Index/TileWidth)
		if err != nil {
			verr = fmt.Errorf("tile for node %d/%d: %v: %w", id.Level, id.Index, err, ErrCorrupt)
			return
		}
		if stored, ok := tileHash(t, id.Index); !ok || !bytes.Equal(stored, h) {
			if level == 0 {
				verr = fmt.Errorf("entry %d does not match its stored leaf hash: %w", id.Index, ErrCorrupt)
			} else {
				verr = fmt.Errorf("stored tile node %d/%d does not match the entries: %w", id.Level, id.Index, ErrCorrupt)
			}
		}
		// Forget full tiles once passed, to bound memory.
		if id.Index%TileWidth == TileWidth-1 {
			delete(tc.tiles, [2]uint64{uint64(level), id.Index / TileWidth})
		}
	}
	checkRoot := func() error {
		if rng.End() != cp.Size {
			return nil
		}
		got, err := rootOf(rng)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, cp.Hash) {
			return rootMismatch(cp, got)
		}
		return nil
	}
	if err := checkRoot(); err != nil {
		return err
	}
	appendAll := func(entries [][]byte) error {
		for _, e := range entries {
			leaf := hasher.HashLeaf(e)
			if err := rc.entry(rng.End(), leaf); err != nil {
				return err
			}
			if err := rng.Append(leaf, visit); err != nil {
				return err
			}
			if verr != nil {
				return verr
			}
			if err := checkRoot(); err != nil {
				return err
			}
		}
		return nil
	}
	full := size / TileWidth
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{prefixBundle}
	opts.PrefetchSize = 16
	it := txn.NewIterator(opts)
	defer it.Close()
	var want uint64
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx, err := decodeUint64(it.Item().Key()[1:])
		if err != nil || idx != want || idx >= full {
			return fmt.Errorf("entry bundle %d missing or bundle beyond tree size %d: %w", want, size, ErrCorrupt)
		}
		err = it.Item().Value(func(stored []byte) error {
			raw, err := decodeBundle(stored)
			if err != nil {
				return fmt.Errorf("entry bundle %d: %w", idx, err)
			}
			entries, err := splitBundle(raw)
			if err != nil {
				return fmt.Errorf("entry bundle %d: %v: %w", idx, err, ErrCorrupt)
			}
			if len(entries) != TileWidth {
				return fmt.Errorf("entry bundle %d holds %d entries, want %d: %w", idx, len(entries), TileWidth, ErrCorrupt)
			}
			return appendAll(entries)
		})
		if err != nil {
			return err
		}
		want++
	}
	if want != full {
		return fmt.Errorf("entry bundle %d missing: %w", want, ErrCorrupt)
	}
	// The edge bundle's chunks, and no chunk of any other bundle.
	if err := appendAll(edge); err != nil {
		return err
	}
	for _, prefix := range []byte{prefixChunk, prefixLegacyChunk} {
		if err := noStrayChunks(txn, prefix, edgeIndex); err != nil {
			return err
		}
	}
	if rng.End() != size {
		return fmt.Errorf("found %d entries, tree size is %d: %w", rng.End(), size, ErrCorrupt)
	}
	return rc.finish(txn)
}
