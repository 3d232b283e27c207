package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// ReadTile returns the C2SP hash tile at level and index: the full tile if
// width is 0, else its first width hashes (1 <= width < 256). Because tiles
// only ever grow, a prefix of a wider stored tile is the partial tile. It
// returns ErrNotFound if the tile is not (yet) that wide in the durable
// tree: storage may hold more (a commit in progress, or one that failed
// after writing), which is never served.
func (l *Ledger) ReadTile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	if err := checkWidth(width); err != nil {
		return nil, err
	}
	if size, _ := l.Size(); !durableWidth(size, uint(level)*TileHeight, index, width) {
		return nil, fmt.Errorf("reading tile %d/%d: beyond the tree of size %d: %w", level, index, size, ErrNotFound)
	}
	return l.lookupTile(level, index, width, nil)
}

// ReadEntryBundle returns the C2SP entry bundle at index: the full bundle
// if width is 0, else its first width entries. The returned bytes may be
// shared and must not be modified. It returns ErrNotFound if
// the bundle does not (yet) hold that many entries.
func (l *Ledger) ReadEntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	if err := checkWidth(width); err != nil {
		return nil, err
	}
	if size, _ := l.Size(); !durableWidth(size, 0, index, width) {
		return nil, fmt.Errorf("reading entry bundle %d: beyond the tree of size %d: %w", index, size, ErrNotFound)
	}
	var out []byte
	err := l.view(func(txn *badger.Txn) error {
		b, n, err := l.readBundle(txn, index)
		if err != nil {
			return err
		}
		if width == 0 {
			if n < TileWidth {
				return ErrNotFound
			}
			out = b
			return nil
		}
		if n < width {
			return ErrNotFound
		}
		ends, err := entryEnds(b)
		if err != nil {
			return fmt.Errorf("bundle %d: %v: %w", index, err, ErrCorrupt)
		}
		out = b[:ends[width-1]]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	return out, nil
}

// bundleCount returns the number of entry bundles (and level-0 tiles) of
// a tree of size leaves, the last one partial: size/256 rounded up,
// without the overflow of (size+255)/256 near 2^64.
func bundleCount(size uint64) uint64 {
	return size/TileWidth + min(size%TileWidth, 1)
}

// durableWidth reports whether the tree of the given size has width nodes
// (a full tile's worth if width is 0) in tile index at tree level
// treeLevel.
func durableWidth(size uint64, treeLevel uint, index uint64, width int) bool {
	if treeLevel >= 64 {
		return false
	}
	nodes := size >> treeLevel
	want := uint64(width)
	if width == 0 {
		want = TileWidth
	}
	// nodes >= index*TileWidth + want, without overflow.
	return nodes >= want && index <= (nodes-want)/TileWidth
}

func checkWidth(width int) error {
	if width < 0 || width >= TileWidth {
		return fmt.Errorf("partial width %d outside 1..%d: %w", width, TileWidth-1, ErrInvalidArgument)
	}
	return nil
}

// Entry returns the entry at index and its leaf hash. It returns
// ErrNotFound if index is not below the durable size.
func (l *Ledger) Entry(ctx context.Context, index uint64) ([]byte, []byte, error) {
	if size, _ := l.Size(); index >= size {
		return nil, nil, fmt.Errorf("entry %d (tree size %d): %w", index, size, ErrNotFound)
	}
	var data []byte
	err := l.view(func(txn *badger.Txn) error {
		b, _, err := l.readBundle(txn, index/TileWidth)
		if err != nil {
			return err
		}
		e, err := bundleEntry(b, int(index%TileWidth))
		data = bytes.Clone(e)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading entry %d: %w", index, err)
	}
	return data, hasher.HashLeaf(data), nil
}

// IndexOf returns the first index whose leaf hash is leafHash, below size
// (see hashruns.go for how it finds it).
func (l *Ledger) IndexOf(ctx context.Context, leafHash []byte, size uint64) (uint64, error) {
	if len(leafHash) != hashSize {
		return 0, fmt.Errorf("leaf hash must be %d bytes, got %d: %w", hashSize, len(leafHash), ErrInvalidArgument)
	}
	index, found, err := l.indexOf(ctx, leafHash, size)
	if err != nil {
		return 0, fmt.Errorf("looking up leaf hash: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("no leaf with that hash in the tree of size %d: %w", size, ErrNotFound)
	}
	return index, nil
}

// InclusionProof returns the RFC 6962 inclusion proof of the leaf at index
// in the tree of the given size, built from the stored hash tiles.
func (l *Ledger) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if index >= size {
		return nil, fmt.Errorf("index %d is not below tree size %d: %w", index, size, ErrInvalidArgument)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalidArgument)
	}
	return l.fetchProof(nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of sizes from and to, built from the stored hash tiles. It requires
// 1 <= from <= to <= the durable size (a proof from the empty tree is
// meaningless).
func (l *Ledger) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if err := l.checkSize(to); err != nil {
		return nil, err
	}
	if from == 0 || from > to {
		return nil, fmt.Errorf("consistency needs 1 <= from <= to, got from=%d to=%d: %w", from, to, ErrInvalidArgument)
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalidArgument)
	}
	return l.fetchProof(nodes)
}

// RootAt returns the root hash of the tree of the given size, computed
// from the stored hash tiles.
func (l *Ledger) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	var root []byte
	err := l.view(func(txn *badger.Txn) error {
		rng, err := rangeFromTiles(l.newTileCache(txn), size)
		if err != nil {
			return err
		}
		root, err = rootOf(rng)
		return err
	})
	return root, err
}

func (l *Ledger) checkSize(size uint64) error {
	if cur, _ := l.Size(); size > cur {
		return fmt.Errorf("tree size %d is beyond the log's size %d: %w", size, cur, ErrInvalidArgument)
	}
	return nil
}

func (l *Ledger) fetchProof(nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	err := l.view(func(txn *badger.Txn) error {
		tc := l.newTileCache(txn)
		for i, id := range nodes.IDs {
			h, err := tc.node(id)
			if err != nil {
				return err
			}
			hashes[i] = h
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading proof nodes: %w", err)
	}
	return nodes.Rehash(hashes, hashChildren)
}

// tileSource is what proof building needs from storage: hash tiles by
// level and index.
type tileSource interface {
	tile(level uint8, index uint64) ([]byte, error)
}

// tileCache reads tiles from one Badger read transaction, caching them
// for the duration of one operation. The level-0 edge tile is not
// stored: it comes from edge (see edgeBundle).
type tileCache struct {
	txn   *badger.Txn
	tiles map[[2]uint64][]byte
	edge  *edgeBundle
	l     *Ledger // for a level-0 tile that filled after txn began; nil at open
}

// newTileCache returns a cache reading through txn, which the caller has
// already begun: the edge it takes now is at least as recent as txn.
func (l *Ledger) newTileCache(txn *badger.Txn) *tileCache {
	return &tileCache{txn: txn, tiles: make(map[[2]uint64][]byte), edge: l.edge.Load(), l: l}
}

func (c *tileCache) tile(level uint8, index uint64) ([]byte, error) {
	k := [2]uint64{uint64(level), index}
	if t, ok := c.tiles[k]; ok {
		return t, nil
	}
	if t, ok := c.edge.tile(index); level == 0 && ok {
		c.tiles[k] = t
		return t, nil
	}
	t, err := get(c.txn, tileKey(level, index))
	if errors.Is(err, ErrNotFound) && level == 0 && c.l != nil {
		// The edge tile when txn began, full (and stored) since: a full
		// tile never changes, so a newer read is as good. (The caller's
		// read holds the database open: no second dbMu lock.)
		err = c.l.db.View(func(txn *badger.Txn) error {
			t, err = get(txn, tileKey(level, index))
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	}
	c.tiles[k] = t
	return t, nil
}

// tileHash returns the hash of node i of a tree level from t, the stored
// tile of that level holding it, or false if t is too short to hold it.
func tileHash(t []byte, i uint64) ([]byte, bool) {
	o := i % TileWidth * hashSize
	if uint64(len(t)) < o+hashSize {
		return nil, false
	}
	return t[o : o+hashSize], true
}

func (c *tileCache) node(id compact.NodeID) ([]byte, error) {
	return nodeHash(c, id)
}

// nodeHash returns the hash of a complete tree node. Tiles store the nodes
// of tree levels 0, 8, 16, ...; a node in between is the root of the
// perfect subtree above its stored descendants.
func nodeHash(ts tileSource, id compact.NodeID) ([]byte, error) {
	level := uint8(id.Level / TileHeight)
	sub := id.Level % TileHeight
	first := id.Index << sub
	count := uint64(1) << sub
	t, err := ts.tile(level, first/TileWidth)
	if err != nil {
		return nil, err
	}
	off := first % TileWidth
	if uint64(len(t)) < (off+count)*hashSize {
		return nil, fmt.Errorf("node %d/%d not in stored tile: %w", id.Level, id.Index, ErrCorrupt)
	}
	// RFC 6962 interior node: SHA-256(0x01 || left || right), computed in
	// place on fixed-size arrays so a proof allocates almost nothing.
	hashes := make([][hashSize]byte, count)
	for i := range hashes {
		o := (off + uint64(i)) * hashSize
		copy(hashes[i][:], t[o:o+hashSize])
	}
	var buf [1 + 2*hashSize]byte
	buf[0] = 1
	for n := len(hashes); n > 1; n /= 2 {
		for i := 0; i < n/2; i++ {
			copy(buf[1:], hashes[2*i][:])
			copy(buf[1+hashSize:], hashes[2*i+1][:])
			hashes[i] = sha256.Sum256(buf[:])
		}
	}
	return hashes[0][:], nil
}

// rangeFromTiles rebuilds the compact range [0, size) from stored tiles.
func rangeFromTiles(ts tileSource, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := nodeHash(ts, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return rangeFactory.NewRange(0, size, hashes)
}

// rootOf returns the RFC 6962 root of a compact range starting at 0,
// including the empty tree's.
func rootOf(rng *compact.Range) ([]byte, error) {
	if rng.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return rng.GetRootHash(nil)
}

// ReadEntryBundleStored appends full entry bundle index, as it is
// stored, to dst and returns the extended slice, for serving it without
// decompressing it: a zstd frame (compressed true) that decompresses to
// exactly what ReadEntryBundle(ctx, index, 0) returns, or, for a bundle
// stored uncompressed, those C2SP bytes themselves (compressed false).
// The frame carries zstd's content checksum, so a reader detects a
// damaged one (ReadEntryBundle reports it as ErrCorrupt instead). Reusing
// dst lets a server read bundles without allocating. It returns
// ErrNotFound if the bundle is not (yet) full in the durable tree. Safe
// for concurrent use.
func (l *Ledger) ReadEntryBundleStored(ctx context.Context, index uint64, dst []byte) (data []byte, compressed bool, err error) {
	if size, _ := l.Size(); !durableWidth(size, 0, index, 0) {
		return dst, false, fmt.Errorf("reading entry bundle %d: beyond the tree of size %d: %w", index, size, ErrNotFound)
	}
	data = dst
	err = l.view(func(txn *badger.Txn) error {
		item, err := txn.Get(bundleKey(index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(stored []byte) error {
			payload, z, err := storedBundle(stored)
			data, compressed = append(dst, payload...), z
			return err
		})
	})
	if err != nil {
		return dst, false, fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	return data, compressed, nil
}
