package evidence

import (
	"cmp"
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// TileReader reads C2SP tlog-tiles hash tiles: the full tile at level
// and index if width is 0, else its first width hashes. *ledger.Ledger
// implements it.
type TileReader interface {
	ReadTile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error)
}

// tileHeight is the C2SP tile height: a tile holds 256 nodes of one tree
// level, and tile level L holds tree level 8L.
const tileHeight = 8

// ProofBuilder builds the RFC 6962 inclusion proofs of many entries in
// one tree from its hash tiles, computing each interior node once: the
// proofs of a bundle's entries share most of their nodes. It reads tiles
// as it needs them and keeps the nodes above the lowest tile level, and
// those of the last lowest tile it used, so entries are best proved in
// index order. It is not safe for concurrent use.
type ProofBuilder struct {
	tiles TileReader
	size  uint64
	// nodes holds computed node hashes above the lowest tiles; low
	// those below, for a few lowest tiles (the entries' and the tree's
	// partial last one), by tile.
	nodes map[compact.NodeID][]byte
	low   map[uint64]map[compact.NodeID][]byte
	cache map[[2]uint64][]byte // tiles read, by level and index
}

// keptLowTiles is how many lowest tiles a ProofBuilder keeps nodes and
// tiles of.
const keptLowTiles = 4

// NewProofBuilder returns a builder of proofs in the tree of the given
// size.
func NewProofBuilder(tiles TileReader, size uint64) *ProofBuilder {
	return &ProofBuilder{tiles: tiles, size: size, nodes: map[compact.NodeID][]byte{},
		low: map[uint64]map[compact.NodeID][]byte{}, cache: map[[2]uint64][]byte{}}
}

// Inclusion returns the inclusion proof of the entry at index.
func (b *ProofBuilder) Inclusion(ctx context.Context, index uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, b.size)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if hashes[i], err = b.node(ctx, id); err != nil {
			return nil, err
		}
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

// node returns the hash of a complete subtree node: a stored tile hash at
// tree levels 0, 8, 16, ..., else the hash of its two children.
func (b *ProofBuilder) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	cache := b.nodes
	if id.Level < tileHeight {
		t := (id.Index << id.Level) >> tileHeight
		if cache = b.low[t]; cache == nil {
			if len(b.low) >= keptLowTiles {
				b.evictLow()
			}
			cache = map[compact.NodeID][]byte{}
			b.low[t] = cache
		}
	}
	if h, ok := cache[id]; ok {
		return h, nil
	}
	var h []byte
	if id.Level%tileHeight == 0 {
		level := uint8(id.Level / tileHeight)
		tile, err := b.tile(ctx, level, id.Index/256)
		if err != nil {
			return nil, err
		}
		o := (id.Index % 256) * 32
		if uint64(len(tile)) < o+32 {
			return nil, fmt.Errorf("tile %d/%d holds no node %d", level, id.Index/256, id.Index)
		}
		h = tile[o : o+32]
	} else {
		l, err := b.node(ctx, compact.NewNodeID(id.Level-1, 2*id.Index))
		if err != nil {
			return nil, err
		}
		r, err := b.node(ctx, compact.NewNodeID(id.Level-1, 2*id.Index+1))
		if err != nil {
			return nil, err
		}
		h = rfc6962.DefaultHasher.HashChildren(l, r)
	}
	cache[id] = h
	return h, nil
}

// tile reads the tile at level and index as wide as the tree holds it.
func (b *ProofBuilder) tile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	k := [2]uint64{uint64(level), index}
	if t, ok := b.cache[k]; ok {
		return t, nil
	}
	width := 0
	if n := b.size >> (uint(level) * tileHeight); n/256 == index {
		width = int(n % 256)
	}
	t, err := b.tiles.ReadTile(ctx, level, index, width)
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	}
	// A tile is 32 bytes for each of its hashes, nothing more: one of
	// another size is not the tile asked for.
	if want := cmp.Or(width, 256); len(t) != 32*want {
		return nil, fmt.Errorf("reading tile %d/%d: it has %d bytes, want %d hashes of 32 bytes", level, index, len(t), want)
	}
	b.cache[k] = t
	return t, nil
}

// evictLow forgets the lowest tiles and their nodes, but for the tree's
// last one (in every proof of a tree whose size is not a multiple of 256).
func (b *ProofBuilder) evictLow() {
	last := (b.size - 1) >> tileHeight
	for t := range b.low {
		if t != last {
			delete(b.low, t)
			delete(b.cache, [2]uint64{0, t})
		}
	}
}
