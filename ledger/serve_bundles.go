package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Stored full bundles are read ahead as full tiles are (serve_tiles.go):
// a client reading the bundles in order (audit --full) is served from a
// window of consecutive stored bundles, read with one Badger iterator,
// instead of one point lookup each.

// bundleAheadBytes bounds a bundle window: it stops after the bundle
// that passes this many bytes (stored bundles are ~15 KiB compressed).
const bundleAheadBytes = 512 << 10

// bundleWindow is the read-ahead state of stored full bundles.
type bundleWindow struct {
	mu    sync.Mutex
	first uint64 // index of the first bundle in buf
	last  uint64 // the last bundle index asked for, plus 1 (0: none yet)
	ends  []int  // ends[i]: where bundle first+i ends in buf
	zstd  []bool // zstd[i]: bundle first+i is a zstd frame
	buf   []byte
}

// AppendEntryBundleStored is ReadEntryBundleStored, reading ahead when
// the bundles are read in order: it appends full entry bundle index, as
// stored, to dst. Safe for concurrent use.
func (l *Ledger) AppendEntryBundleStored(ctx context.Context, index uint64, dst []byte) (data []byte, compressed bool, err error) {
	size, _ := l.Size()
	if full := size / TileWidth; index < full {
		if out, z, ok, err := l.bundleAhead.read(l, index, full, dst); ok || err != nil {
			return out, z, err
		}
	}
	return l.ReadEntryBundleStored(ctx, index, dst)
}

// read serves stored bundle index from the window, reading the window
// ahead if the reads go in order; full is the number of full bundles in
// the durable tree. ok false (and no error) leaves the read to a lookup.
func (w *bundleWindow) read(l *Ledger, index, full uint64, dst []byte) (out []byte, compressed, ok bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	inOrder := w.last != 0 && index+1 > w.last && index < w.last+32
	w.last = index + 1
	if index < w.first || index >= w.first+uint64(len(w.ends)) {
		if !inOrder {
			return dst, false, false, nil
		}
		if err := w.fill(l, index, full); err != nil {
			w.ends, w.zstd = w.ends[:0], w.zstd[:0]
			return dst, false, false, fmt.Errorf("reading entry bundle %d: %w", index, err)
		}
		if index >= w.first+uint64(len(w.ends)) {
			return dst, false, false, nil // not stored: let the lookup say why
		}
	}
	i := index - w.first
	start := 0
	if i > 0 {
		start = w.ends[i-1]
	}
	return append(dst, w.buf[start:w.ends[i]]...), w.zstd[i], true, nil
}

// fill reads stored bundles from first on (below end) into the window with
// one iterator, up to bundleAheadBytes.
func (w *bundleWindow) fill(l *Ledger, first, end uint64) error {
	w.first, w.ends, w.zstd, w.buf = first, w.ends[:0], w.zstd[:0], w.buf[:0]
	if cap(w.buf) > 2*bundleAheadBytes {
		w.buf = nil // it held a large bundle: do not keep it
	}
	return l.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixBundle}})
		defer it.Close()
		key := bundleKey(first)
		for it.Seek(key); it.Valid(); it.Next() {
			next := first + uint64(len(w.ends))
			if next >= end {
				return nil
			}
			binary.BigEndian.PutUint64(key[1:], next)
			if !bytes.Equal(it.Item().Key(), key) {
				return nil
			}
			more := false
			// A bundle that cannot be read here stops the window: its
			// own lookup reports what is wrong with it.
			it.Item().Value(func(stored []byte) error {
				payload, z, err := storedBundle(stored)
				if err != nil || len(w.buf) > 0 && len(w.buf)+len(payload) > bundleAheadBytes {
					return nil
				}
				w.buf = append(w.buf, payload...)
				w.ends, w.zstd = append(w.ends, len(w.buf)), append(w.zstd, z)
				more = true
				return nil
			})
			if !more {
				return nil
			}
		}
		return nil
	})
}
