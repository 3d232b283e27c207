package ledger

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/rfc6962"
)

// leafHashes returns the RFC 6962 leaf hashes of entries first..first+n-1
// as entryData makes them: what a level-0 tile holds.
func leafHashes(first, n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, rfc6962.DefaultHasher.HashLeaf(entryData(first+i))...)
	}
	return b
}

// storedEdge returns what storage holds of level-0 tile index: the tile
// (nil if none) and the concatenated hash chunks with their first entries.
func storedEdge(t *testing.T, l *Ledger, index uint64) (tile, hashes []byte, firsts []int) {
	t.Helper()
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		if tile, err = get(txn, tileKey(0, index)); errors.Is(err, ErrNotFound) {
			tile, err = nil, nil
		}
		if err != nil {
			return err
		}
		hashes, firsts, err = readHashChunks(txn, index)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tile, hashes, firsts
}

// TestEdgeTileStoredAsHashChunks checks how the level-0 edge tile is
// stored: each commit adds a chunk of the hashes it appended (a few
// entries write a few hashes, not the whole partial tile again), the full
// tile replaces the chunks, and readers get the partial tile all the same.
func TestEdgeTileStoredAsHashChunks(t *testing.T) {
	ctx := context.Background()
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 30, 10) // three commits into tile 0
	tile, hashes, firsts := storedEdge(t, l, 0)
	if tile != nil {
		t.Errorf("a partial level-0 tile is stored (%d hashes); want only hash chunks", len(tile)/hashSize)
	}
	if want := leafHashes(0, 30); !bytes.Equal(hashes, want) {
		t.Errorf("hash chunks hold %d hashes that are not entries 0-29's leaf hashes", len(hashes)/hashSize)
	}
	if len(firsts) != 3 || firsts[0] != 0 || firsts[1] != 10 || firsts[2] != 20 {
		t.Errorf("hash chunks start at %v, want [0 10 20] (one per commit)", firsts)
	}
	got, err := l.ReadTile(ctx, 0, 0, 30)
	if err != nil || !bytes.Equal(got, leafHashes(0, 30)) {
		t.Fatalf("ReadTile(0, 0, 30) = %d bytes, %v; want entries 0-29's leaf hashes", len(got), err)
	}

	// Filling the tile in a commit that also starts the next one.
	appendN(t, l, 30, 250, 250)
	tile, hashes, firsts = storedEdge(t, l, 0)
	if !bytes.Equal(tile, leafHashes(0, TileWidth)) || len(hashes) != 0 || len(firsts) != 0 {
		t.Errorf("tile 0 once full: tile %d hashes, %d hashes in %d chunks left; want the full tile alone", len(tile)/hashSize, len(hashes)/hashSize, len(firsts))
	}
	tile, hashes, _ = storedEdge(t, l, 1)
	if tile != nil || !bytes.Equal(hashes, leafHashes(TileWidth, 280-TileWidth)) {
		t.Errorf("edge tile 1: tile %d hashes, chunks %d hashes; want chunks of entries 256-279 only", len(tile)/hashSize, len(hashes)/hashSize)
	}
	for _, width := range []int{1, 24} {
		got, err := l.ReadTile(ctx, 0, 1, width)
		if err != nil || !bytes.Equal(got, leafHashes(TileWidth, width)) {
			t.Errorf("ReadTile(0, 1, %d) = %d bytes, %v", width, len(got), err)
		}
	}
	if _, err := l.ReadTile(ctx, 0, 1, 25); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadTile(0, 1, 25) beyond the tree = %v, want ErrNotFound", err)
	}
}

// TestOpenTakesStoredPartialEdgeTile opens a log whose level-0 edge tile
// is stored as a partial tile, as earlier versions left it: the log opens
// and serves it, the next commit replaces it with a hash chunk, and the
// log opens again.
func TestOpenTakesStoredPartialEdgeTile(t *testing.T) {
	ctx := context.Background()
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 300, 100)
	closeLedger(t, l)
	editStore(t, cfg.Dir, func(txn *badger.Txn) error {
		_, firsts, err := readHashChunks(txn, 1)
		if err != nil {
			return err
		}
		for _, f := range firsts {
			if err := txn.Delete(hashChunkKey(1, f)); err != nil {
				return err
			}
		}
		return txn.Set(tileKey(0, 1), leafHashes(TileWidth, 300-TileWidth))
	})
	for _, quick := range []bool{false, true} {
		cfg.QuickOpen = quick
		l, err := Open(ctx, cfg)
		if err != nil {
			t.Fatalf("Open(QuickOpen=%v) of a log with a stored partial edge tile: %v", quick, err)
		}
		got, err := l.ReadTile(ctx, 0, 1, 44)
		if err != nil || !bytes.Equal(got, leafHashes(TileWidth, 44)) {
			t.Errorf("ReadTile(0, 1, 44) = %d bytes, %v", len(got), err)
		}
		closeLedger(t, l)
	}
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 300, 5, 5)
	tile, hashes, firsts := storedEdge(t, l, 1)
	if tile != nil || !bytes.Equal(hashes, leafHashes(TileWidth, 305-TileWidth)) || len(firsts) != 1 {
		t.Errorf("after a commit: partial tile %d hashes, chunks %v with %d hashes; want one chunk of all 49", len(tile)/hashSize, firsts, len(hashes)/hashSize)
	}
	closeLedger(t, l)
	l, err = Open(ctx, cfg)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	if size, _ := l.Size(); size != 305 {
		t.Errorf("size after reopening = %d, want 305", size)
	}
	closeLedger(t, l)
}
