package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// ReadEntryBundleInto is ReadEntryBundle for readers that go through many
// bundles once each, such as exports of query results. A full bundle in
// the bundle cache is returned from it; one that is not is read straight
// from storage (no copy of the stored value) and decompressed into buf,
// which is reused and grown as needed, and it is not added to the cache:
// an export then allocates nothing per bundle, and does not evict what
// other readers cached for a bundle it reads once.
//
// It returns the bundle's C2SP bytes (the full bundle if width is 0, else
// its first width entries), which are either shared with the cache or in
// buf and must not be modified, and the buffer to pass to the next call.
// It returns ErrNotFound if the bundle does not (yet) hold that many
// entries in the durable tree, and ErrCorrupt for a damaged bundle. Safe
// for concurrent use by callers with distinct buffers.
func (l *Ledger) ReadEntryBundleInto(ctx context.Context, index uint64, width int, buf []byte) (data, newBuf []byte, err error) {
	if err := checkWidth(width); err != nil {
		return nil, buf, err
	}
	if size, _ := l.Size(); !durableWidth(size, 0, index, width) {
		return nil, buf, fmt.Errorf("reading entry bundle %d: beyond the tree of size %d: %w", index, size, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return nil, buf, err
	}
	raw, n, cached := []byte(nil), 0, false
	if raw, cached = l.bundles.Get(index); cached {
		n = TileWidth
	} else {
		err = l.view(func(txn *badger.Txn) error {
			item, err := txn.Get(bundleKey(index))
			if errors.Is(err, badger.ErrKeyNotFound) {
				// Not full: the edge bundle, read as every reader reads it
				// (at most once per export).
				raw, n, err = l.readBundle(txn, index)
				return err
			}
			if err != nil {
				return err
			}
			n = TileWidth
			return item.Value(func(stored []byte) error {
				var err error
				if buf, err = appendStored(buf[:0], stored); err != nil {
					return err
				}
				raw = buf
				return nil
			})
		})
		if err != nil {
			return nil, buf, fmt.Errorf("reading entry bundle %d: %w", index, err)
		}
	}
	want := width
	if want == 0 {
		want = TileWidth
	}
	if n < want {
		return nil, buf, fmt.Errorf("reading entry bundle %d: %w", index, ErrNotFound)
	}
	if width == 0 {
		return raw, buf, nil
	}
	// The first width entries, checking the framing as far as that.
	off := 0
	for range width {
		if off+2 > len(raw) {
			return nil, buf, fmt.Errorf("reading entry bundle %d: dangling byte at offset %d: %w", index, off, ErrCorrupt)
		}
		off += 2 + int(binary.BigEndian.Uint16(raw[off:]))
		if off > len(raw) {
			return nil, buf, fmt.Errorf("reading entry bundle %d: entry overruns the bundle: %w", index, ErrCorrupt)
		}
	}
	return raw[:off], buf, nil
}
