package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/dgraph-io/badger/v4"
)

// A segment holds the posting lists of one field in one written chunk:
// its (value, list) pairs sorted by value, cut into blocks of about
// segmentBlock bytes, and a directory of each block's first value.
//
//	p | chunk (4) | field (1) | 'd'              directory: uvarint(blocks), then each
//	                                              block's first value (uvarint length, bytes)
//	p | chunk (4) | field (1) | 'b' | block (4)  block: entries of uvarint(len(value)),
//	                                              value, uvarint(len(list)), list (roaring)
//
// A chunk is thus written in a few dozen values, not one per posting
// list, and a lookup reads the directory and one block.
const (
	segmentBlock = 32 << 10
	tagDirectory = 'd'
	tagBlock     = 'b'
)

var errSegment = errors.New("index: malformed segment")

func directoryKey(chunk uint32, f field) []byte {
	return append(postingPrefix(chunk, f), tagDirectory)
}

func blockKey(chunk uint32, f field, block uint32) []byte {
	return binary.BigEndian.AppendUint32(append(postingPrefix(chunk, f), tagBlock), block)
}

// segmentEntry is a value and its serialized list.
type segmentEntry struct {
	value string
	list  []byte
}

// writeSegment writes the segment of field f of a chunk from its entries
// (sorted here).
func writeSegment(wb *badger.WriteBatch, chunk uint32, f field, entries []segmentEntry) error {
	slices.SortFunc(entries, func(a, b segmentEntry) int { return strings.Compare(a.value, b.value) })
	var dir, block []byte
	n := uint32(0)
	flush := func() error {
		if len(block) == 0 {
			return nil
		}
		if err := wb.Set(blockKey(chunk, f, n), block); err != nil {
			return err
		}
		n++
		block = nil
		return nil
	}
	for _, e := range entries {
		if len(block) == 0 {
			dir = binary.AppendUvarint(dir, uint64(len(e.value)))
			dir = append(dir, e.value...)
		}
		block = binary.AppendUvarint(block, uint64(len(e.value)))
		block = append(block, e.value...)
		block = binary.AppendUvarint(block, uint64(len(e.list)))
		block = append(block, e.list...)
		if len(block) >= segmentBlock {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return wb.Set(directoryKey(chunk, f), append(binary.AppendUvarint(nil, uint64(n)), dir...))
}

// segmentReader reads the segments of one written chunk in one
// transaction, caching directories and blocks.
type segmentReader struct {
	txn    *badger.Txn
	chunk  uint32
	dirs   map[field][][]byte // first value of each block
	blocks map[[2]uint32][]byte
}

func newSegmentReader(txn *badger.Txn, chunk uint32) *segmentReader {
	return &segmentReader{txn: txn, chunk: chunk, dirs: map[field][][]byte{}, blocks: map[[2]uint32][]byte{}}
}

// directory returns the first values of f's blocks (none if the chunk has
// no segment for f).
func (r *segmentReader) directory(f field) ([][]byte, error) {
	if d, ok := r.dirs[f]; ok {
		return d, nil
	}
	item, err := r.txn.Get(directoryKey(r.chunk, f))
	if errors.Is(err, badger.ErrKeyNotFound) {
		r.dirs[f] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(raw)
	if k <= 0 || n > uint64(len(raw)) {
		return nil, errSegment
	}
	raw = raw[k:]
	firsts := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(raw)
		if k <= 0 || uint64(len(raw)-k) < l {
			return nil, errSegment
		}
		firsts = append(firsts, raw[k:k+int(l)])
		raw = raw[k+int(l):]
	}
	r.dirs[f] = firsts
	return firsts, nil
}

func (r *segmentReader) block(f field, i int) ([]byte, error) {
	k := [2]uint32{uint32(f), uint32(i)}
	if b, ok := r.blocks[k]; ok {
		return b, nil
	}
	item, err := r.txn.Get(blockKey(r.chunk, f, uint32(i)))
	if err != nil {
		return nil, fmt.Errorf("reading segment block %d of field %d: %w", i, f, err)
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	r.blocks[k] = b
	return b, nil
}

// entries calls fn with the entries of f whose values are at least lo
// (from the start if lo is nil), in value order, until fn returns false.
func (r *segmentReader) entries(f field, lo []byte, fn func(value, list []byte) bool) error {
	firsts, err := r.directory(f)
	if err != nil || len(firsts) == 0 {
		return err
	}
	start := 0
	if lo != nil {
		// The last block whose first value is <= lo.
		start = max(0, sort.Search(len(firsts), func(i int) bool { return bytes.Compare(firsts[i], lo) > 0 })-1)
	}
	for i := start; i < len(firsts); i++ {
		b, err := r.block(f, i)
		if err != nil {
			return err
		}
		for len(b) > 0 {
			vl, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < vl {
				return errSegment
			}
			v := b[k : k+int(vl)]
			b = b[k+int(vl):]
			ll, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < ll {
				return errSegment
			}
			list := b[k : k+int(ll)]
			b = b[k+int(ll):]
			if lo != nil && bytes.Compare(v, lo) < 0 {
				continue
			}
			if !fn(v, list) {
				return nil
			}
		}
	}
	return nil
}

func (r *segmentReader) list(f field, value []byte) (*roaring.Bitmap, error) {
	bm := roaring.New()
	var uerr error
	err := r.entries(f, value, func(v, list []byte) bool {
		if bytes.Equal(v, value) {
			uerr = bm.UnmarshalBinary(list)
		}
		return false
	})
	return bm, errors.Join(err, uerr)
}

func (r *segmentReader) scan(f field, lo, hi []byte, out *roaring.Bitmap) error {
	bm := roaring.New()
	var uerr error
	err := r.entries(f, lo, func(v, list []byte) bool {
		if bytes.Compare(v, hi) > 0 {
			return false
		}
		if uerr = bm.UnmarshalBinary(list); uerr != nil {
			return false
		}
		out.Or(bm)
		return true
	})
	return errors.Join(err, uerr)
}

func (r *segmentReader) each(f field, fn func([]byte, *roaring.Bitmap)) error {
	bm := roaring.New()
	var uerr error
	err := r.entries(f, nil, func(v, list []byte) bool {
		if uerr = bm.UnmarshalBinary(list); uerr != nil {
			return false
		}
		fn(v, bm)
		return true
	})
	return errors.Join(err, uerr)
}
