package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// How hash tiles are served.
//
// ReadTile copies a tile out of Badger (which has already copied it out of
// its table): two 8 KiB allocations for each level-0 tile an auditor
// reads, and a point lookup through every level of the LSM tree. A client
// that reads tiles in order (audit --full, a mirror, a monitor catching
// up) reads the tiles of a level one after the other; AppendTile serves
// such reads from a small window of full tiles read ahead with one Badger
// iterator, which costs a fraction of a lookup per tile, and copies into
// the caller's (pooled) buffer. Reads out of order (proof building) take
// one lookup, without the copy. Full tiles never change once the durable
// tree covers them, so a window never goes stale.

// tileAhead is the number of full tiles a window reads ahead: 256 KiB.
const tileAhead = 32

// tileLevels is the number of tile levels with a window of their own
// (a 64-bit tree has 8 levels of tiles).
const tileLevels = 8

// tileWindow is the read-ahead state of one tile level.
type tileWindow struct {
	first uint64 // index of the first tile in buf
	n     uint64 // full tiles in buf
	last  uint64 // the last tile index asked for, plus 1 (0: none yet)
	buf   []byte
}

// tileWindows is one ledger's read-ahead windows.
type tileWindows struct {
	mu     sync.Mutex
	levels [tileLevels]tileWindow
}

// AppendTile appends the hash tile that ReadTile(ctx, level, index, width)
// returns to dst and returns the extended slice; it fails as ReadTile does.
// Reusing dst, a server serves tiles without allocating for them. Safe for
// concurrent use.
func (l *Ledger) AppendTile(ctx context.Context, level uint8, index uint64, width int, dst []byte) ([]byte, error) {
	if err := checkWidth(width); err != nil {
		return dst, err
	}
	size, _ := l.Size()
	if !durableWidth(size, uint(level)*TileHeight, index, width) {
		return dst, fmt.Errorf("reading tile %d/%d: beyond the tree of size %d: %w", level, index, size, ErrNotFound)
	}
	if width == 0 && level < tileLevels {
		// Full tiles below this many are immutable.
		full := (size >> (uint(level) * TileHeight)) / TileWidth
		if out, ok, err := l.tileAhead.read(l, level, index, full, dst); ok || err != nil {
			return out, err
		}
	}
	return l.lookupTile(level, index, width, dst)
}

// lookupTile appends tile index of level, width hashes wide (0: full), to
// dst with one point lookup, copied once out of Badger's table. ReadTile
// and AppendTile read through it.
func (l *Ledger) lookupTile(level uint8, index uint64, width int, dst []byte) ([]byte, error) {
	want := width
	if want == 0 {
		want = TileWidth
	}
	// The level-0 edge tile is not stored as a tile (see edgeBundle).
	// The caller read the size first, and the edge is published before
	// the size that covers it: an edge of the same index holds width
	// hashes; a newer one means the tile is full, and stored.
	if t, ok := l.edge.Load().tile(index); level == 0 && ok && len(t) >= want*hashSize {
		return append(dst, t[:want*hashSize]...), nil
	}
	out := dst
	err := l.view(func(txn *badger.Txn) error {
		item, err := txn.Get(tileKey(level, index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(t []byte) error {
			if len(t) < want*hashSize {
				return ErrNotFound
			}
			out = append(dst, t[:want*hashSize]...)
			return nil
		})
	})
	if err != nil {
		return dst, fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	}
	return out, nil
}

// read serves full tile index of level from the level's window, reading
// the window ahead if the reads of the level go in order. full is the
// number of full tiles of the level in the durable tree (index < full).
// ok false (and no error) leaves the read to a single lookup.
func (w *tileWindows) read(l *Ledger, level uint8, index, full uint64, dst []byte) (out []byte, ok bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	win := &w.levels[level]
	// In order: at most a few tiles past the last one asked for, as
	// concurrent readers of consecutive tiles ask for them.
	inOrder := win.last != 0 && index+1 > win.last && index < win.last+tileAhead
	win.last = index + 1
	if index < win.first || index >= win.first+win.n {
		if !inOrder {
			return dst, false, nil
		}
		if err := w.fill(l, win, level, index, min(full, index+tileAhead)); err != nil {
			win.n = 0
			return dst, false, fmt.Errorf("reading tile %d/%d: %w", level, index, err)
		}
		if index >= win.first+win.n {
			return dst, false, nil // not stored as a full tile: let the lookup say why
		}
	}
	const tileBytes = TileWidth * hashSize
	off := (index - win.first) * tileBytes
	return append(dst, win.buf[off:off+tileBytes]...), true, nil
}

// fill reads full tiles [first, end) of level into the window with one
// iterator, stopping early at a tile that is not stored full.
func (w *tileWindows) fill(l *Ledger, win *tileWindow, level uint8, first, end uint64) error {
	const tileBytes = TileWidth * hashSize
	win.first, win.n = first, 0
	if cap(win.buf) < tileAhead*tileBytes {
		win.buf = make([]byte, 0, tileAhead*tileBytes)
	}
	win.buf = win.buf[:0]
	return l.view(func(txn *badger.Txn) error {
		next, _, err := scanTiles(txn, level, first, end, func(_ uint64, t []byte) (bool, error) {
			if len(t) < tileBytes {
				return false, nil
			}
			win.buf = append(win.buf, t[:tileBytes]...)
			return true, nil
		})
		win.n = next - first
		return err
	})
}

// scanTiles gives fn the tiles of level stored under consecutive indexes
// from first, below end, read with one iterator, until fn returns false or
// an error. It returns the index after the last tile fn took, and whether
// the scan stopped at a missing tile (with a later one stored).
func scanTiles(txn *badger.Txn, level uint8, first, end uint64, fn func(index uint64, t []byte) (bool, error)) (next uint64, gap bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixTile, level}})
	defer it.Close()
	key := tileKey(level, first)
	next = first
	for it.Seek(key); it.Valid() && next < end; it.Next() {
		binary.BigEndian.PutUint64(key[2:], next)
		if !bytes.Equal(it.Item().Key(), key) {
			return next, true, nil
		}
		more := false
		if err := it.Item().Value(func(t []byte) (err error) {
			more, err = fn(next, t)
			return err
		}); err != nil || !more {
			return next, false, err
		}
		next++
	}
	return next, false, nil
}
