package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
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

// rawHashChunkKey is the key of a chunk of leaf hashes of the level-0
// edge tile n that earlier versions stored, spelled out as keys.go
// documents it.
func rawHashChunkKey(n uint64, first int) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{'u'}, n), byte(first))
}

// storedEdge returns what storage holds of level-0 tile index: the tile
// (nil if none) and the concatenated hash chunks an earlier version
// stored, with their first entries.
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

// storedSizeRecord returns the raw size record of a ledger.
func storedSizeRecord(t *testing.T, l *Ledger) []byte {
	t.Helper()
	var v []byte
	if err := l.db.View(func(txn *badger.Txn) (err error) {
		v, err = get(txn, rawSizeKey)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkSizeRecord checks that the size record holds the ledger's size and
// its root at that size, as documented in keys.go.
func checkSizeRecord(t *testing.T, l *Ledger, size uint64) {
	t.Helper()
	v := storedSizeRecord(t, l)
	root, err := l.RootAt(context.Background(), size)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 40 || binary.BigEndian.Uint64(v) != size || !bytes.Equal(v[8:], root) {
		t.Errorf("size record = %x, want size %d then its root %x", v, size, root)
	}
}

// TestEdgeTileNotStored checks how the level-0 edge tile is kept: it is
// not stored, neither as a tile nor as chunks of hashes (the edge
// bundle's entries give it); readers get it all the same, a full tile is
// stored, and a reopened log computes the partial tile from the entries.
// Each commit's size record carries the tree's root, which Open checks
// the edge against.
func TestEdgeTileNotStored(t *testing.T) {
	ctx := context.Background()
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 30, 10) // three commits into tile 0
	tile, hashes, firsts := storedEdge(t, l, 0)
	if tile != nil || len(hashes) != 0 || len(firsts) != 0 {
		t.Errorf("edge tile 0 stored: a tile of %d hashes, %d hashes in chunks at %v; want nothing", len(tile)/hashSize, len(hashes)/hashSize, firsts)
	}
	got, err := l.ReadTile(ctx, 0, 0, 30)
	if err != nil || !bytes.Equal(got, leafHashes(0, 30)) {
		t.Fatalf("ReadTile(0, 0, 30) = %d bytes, %v; want entries 0-29's leaf hashes", len(got), err)
	}
	checkSizeRecord(t, l, 30)

	// Filling the tile in a commit that also starts the next one.
	appendN(t, l, 30, 250, 250)
	tile, hashes, firsts = storedEdge(t, l, 0)
	if !bytes.Equal(tile, leafHashes(0, TileWidth)) || len(hashes) != 0 || len(firsts) != 0 {
		t.Errorf("tile 0 once full: tile %d hashes, %d hashes in %d chunks; want the full tile alone", len(tile)/hashSize, len(hashes)/hashSize, len(firsts))
	}
	if tile, hashes, _ = storedEdge(t, l, 1); tile != nil || len(hashes) != 0 {
		t.Errorf("edge tile 1: tile %d hashes, chunks %d hashes; want nothing stored", len(tile)/hashSize, len(hashes)/hashSize)
	}
	checkSizeRecord(t, l, 280)
	readEdge := func(l *Ledger) {
		t.Helper()
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
	readEdge(l)
	closeLedger(t, l)
	for _, quick := range []bool{false, true} {
		cfg.QuickOpen = quick
		l := openTestLedger(t, cfg)
		readEdge(l)
		closeLedger(t, l)
	}
	l = openTestLedger(t, cfg)
	appendN(t, l, 280, 1, 1)
	checkSizeRecord(t, l, 281)
}

// TestOpenTakesEarlierEdgeStorage opens logs as earlier versions left
// them: a size record without a root, and the level-0 edge tile stored as
// chunks of leaf hashes, or before that as a partial tile. The log opens
// and serves the tile, Open checks the edge's entries against what is
// stored, and the next commit deletes it and writes a size record with
// the root.
func TestOpenTakesEarlierEdgeStorage(t *testing.T) {
	ctx := context.Background()
	const size = 300 // edge tile 1 holds 44 hashes
	tests := []struct {
		name  string
		store map[string][]byte // written besides the size record of 8 bytes
		msg   string            // Open's error must mention this; "" if it opens
	}{
		{"HashChunks", map[string][]byte{
			string(rawHashChunkKey(1, 0)):  leafHashes(TileWidth, 20),
			string(rawHashChunkKey(1, 20)): leafHashes(TileWidth+20, 24),
		}, ""},
		{"PartialTile", map[string][]byte{string(rawTileKey(0, 1)): leafHashes(TileWidth, 44)}, ""},
		{"HashChunkWithAnotherHash", map[string][]byte{
			string(rawHashChunkKey(1, 0)):  leafHashes(TileWidth, 20),
			string(rawHashChunkKey(1, 20)): append(leafHashes(TileWidth+20, 23), leafHashes(0, 1)...),
		}, "entry 299 does not match its stored leaf hash"},
		{"HashChunkTruncated", map[string][]byte{
			string(rawHashChunkKey(1, 0)):  leafHashes(TileWidth, 20),
			string(rawHashChunkKey(1, 20)): leafHashes(TileWidth+20, 23),
		}, "holds 43 hashes, want 44"},
		{"NothingStored", nil, "edge tile 0/1"},
	}
	l, template := newTestLedger(t)
	appendN(t, l, 0, size, 100)
	closeLedger(t, l)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := editedCopy(t, template, func(txn *badger.Txn) error {
				for k, v := range tc.store {
					if err := txn.Set([]byte(k), v); err != nil {
						return err
					}
				}
				return txn.Set(rawSizeKey, binary.BigEndian.AppendUint64(nil, size))
			})
			for _, quick := range []bool{false, true} {
				cfg.QuickOpen = quick
				l, err := Open(ctx, cfg)
				if tc.msg != "" {
					if err == nil {
						l.Close(ctx)
					}
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
						t.Fatalf("Open(QuickOpen=%v) = %v, want ErrCorrupt mentioning %q", quick, err, tc.msg)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Open(QuickOpen=%v) of a log an earlier version wrote: %v", quick, err)
				}
				got, err := l.ReadTile(ctx, 0, 1, 44)
				if err != nil || !bytes.Equal(got, leafHashes(TileWidth, 44)) {
					t.Errorf("ReadTile(0, 1, 44) = %d bytes, %v", len(got), err)
				}
				closeLedger(t, l)
			}
			if tc.msg != "" {
				return
			}
			l := openTestLedger(t, cfg)
			appendN(t, l, size, 5, 5)
			if tile, hashes, firsts := storedEdge(t, l, 1); tile != nil || len(hashes) != 0 {
				t.Errorf("after a commit: partial tile %d hashes, chunks %v with %d hashes; want nothing stored", len(tile)/hashSize, firsts, len(hashes)/hashSize)
			}
			checkSizeRecord(t, l, size+5)
			closeLedger(t, l)
			l = openTestLedger(t, cfg)
			if got, _ := l.Size(); got != size+5 {
				t.Errorf("size after reopening = %d, want %d", got, size+5)
			}
		})
	}
}

// TestOpenChecksEntriesBeyondCheckpoint: entries a crash left durable
// but not yet covered by a signed checkpoint are checked against the
// root in the size record, by a full and a quick Open alike: an edited
// one, or an edited root, makes the log refuse to open.
func TestOpenChecksEntriesBeyondCheckpoint(t *testing.T) {
	ctx := context.Background()
	const signed, size = 550, 600
	// A log signed at 550 and then at 600, made to look as a crash after
	// the commit of 600 but before its checkpoint left it: the latest
	// checkpoint record names 550 again.
	l, template := newTestLedger(t)
	appendN(t, l, 0, signed, 250)
	closeLedger(t, l)
	var latest []byte
	editStore(t, template.Dir, func(txn *badger.Txn) (err error) {
		latest, err = get(txn, rawLatestCPKey)
		return err
	})
	l = openTestLedger(t, template)
	appendN(t, l, signed, size-signed, 25)
	closeLedger(t, l)
	editStore(t, template.Dir, func(txn *badger.Txn) error {
		if err := txn.Delete(rawCheckpointKey(size)); err != nil {
			return err
		}
		return txn.Set(rawLatestCPKey, latest)
	})
	tests := []struct {
		name string
		edit func(*badger.Txn) error
		msg  string // "" if the log opens
	}{
		{"Untouched", func(*badger.Txn) error { return nil }, ""},
		{"EntryBeyondCheckpoint", flipEntryByte(580), "the size record says"},
		{"RootInSizeRecord", rewrite(rawSizeKey, func(v []byte) []byte {
			v[20] ^= 0x01
			return v
		}), "the size record says"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, quick := range []bool{false, true} {
				cfg := editedCopy(t, template, tc.edit)
				cfg.QuickOpen = quick
				l, err := Open(ctx, cfg)
				if tc.msg == "" {
					if err != nil {
						t.Fatalf("Open(QuickOpen=%v) = %v", quick, err)
					}
					if got, _ := l.Size(); got != size {
						t.Errorf("Open(QuickOpen=%v): size %d, want %d", quick, got, size)
					}
					closeLedger(t, l)
					continue
				}
				if err == nil {
					l.Close(ctx)
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("Open(QuickOpen=%v) after %s = %v, want ErrCorrupt mentioning %q", quick, tc.name, err, tc.msg)
				}
			}
		})
	}
}
