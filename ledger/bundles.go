package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
)

// How entry bundles are stored.
//
// A full bundle (256 entries) is immutable: it is written once, under
// 'b'+index, zstd-compressed. The rightmost, incomplete bundle is stored as
// chunks, 'q'+index+first, each holding consecutive entries from entry
// first on, coded as full bundles are (zstd, or raw if that is not
// smaller), so a commit writes only the entries it adds and never rewrites
// earlier ones. Entries of a bundle that fills within a commit never
// become chunks: the commit writes the full bundle and deletes the chunks
// earlier commits stored for it, in one transaction.
//
// Chunks are transient, but under batches they were half of what the
// ledger wrote to its LSM tree (the entries each commit leaves in the edge
// bundle, about a fifth of all entries), and every byte written there costs
// CPU several times over: the write-ahead log, the level-0 table, each
// synced through a mapping whose pages the kernel cleans one by one. Earlier
// versions stored them uncompressed under 'p'; those are read before the
// 'q' chunks that continue them and deleted with them.

// maxChunkBytes splits what a commit adds to the edge bundle into chunks
// of about this size (before compression), at entry boundaries. Chunks
// below Badger's value threshold (valueThreshold) live in the LSM tree,
// where deleting them is free; a chunk holding a larger entry goes to the
// value log like full bundles and full tiles, and the space its deletion
// frees is reclaimed by value-log GC.
const maxChunkBytes = 6 << 10

// Codecs of a stored full bundle or chunk (its first byte).
const (
	codecRaw  = 0
	codecZstd = 1
)

var (
	zstdEncoder, _ = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true))
	// A bundle holds at most 256 entries of 65535 bytes plus framing.
	zstdDecoder, _ = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(TileWidth*(MaxEntrySize+2)))
)

func chunkKey(bundle uint64, first int) []byte {
	k := make([]byte, 10)
	k[0] = prefixChunk
	binary.BigEndian.PutUint64(k[1:], bundle)
	k[9] = byte(first)
	return k
}

func chunkPrefix(bundle uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixChunk}, bundle)
}

// legacyChunkKey is the key of an uncompressed chunk of earlier versions.
func legacyChunkKey(bundle uint64, first int) []byte {
	k := chunkKey(bundle, first)
	k[0] = prefixLegacyChunk
	return k
}

func legacyChunkPrefix(bundle uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLegacyChunk}, bundle)
}

// hashChunkKey is the key of the chunk of level-0 tile index that holds
// the leaf hashes of its entries first...
func hashChunkKey(index uint64, first int) []byte {
	return append(hashChunkPrefix(index), byte(first))
}

func hashChunkPrefix(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixHashChunk}, index)
}

// readHashChunks reads the leaf-hash chunks of level-0 tile index that an
// earlier version stored, checking that they are contiguous: the hashes,
// and the first entry of each chunk.
func readHashChunks(txn *badger.Txn, index uint64) (hashes []byte, firsts []int, err error) {
	firsts, _, err = eachChunk(txn, hashChunkPrefix(index), 0, "hashes", func(first int, v []byte) (int, error) {
		if len(v) == 0 || len(v)%hashSize != 0 || first+len(v)/hashSize >= TileWidth {
			return 0, fmt.Errorf("hash chunk at %d is %d bytes: %w", first, len(v), ErrCorrupt)
		}
		hashes = append(hashes, v...)
		return len(v) / hashSize, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("edge tile 0/%d: %w", index, err)
	}
	return hashes, firsts, nil
}

// eachChunk gives fn, in order, the chunks stored under prefix and a
// one-byte first item, checking that the first starts at item from and
// each next one where the ones before it ended: fn returns how many items
// (what) its chunk holds. It returns the first item of each chunk, and the
// item after the last.
func eachChunk(txn *badger.Txn, prefix []byte, from int, what string, fn func(first int, v []byte) (int, error)) (firsts []int, n int, err error) {
	n = from
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().Key()
		if len(key) != len(prefix)+1 || int(key[len(prefix)]) != n {
			return nil, 0, fmt.Errorf("chunk at %d does not follow %d %s: %w", key[len(key)-1], n, what, ErrCorrupt)
		}
		firsts = append(firsts, n)
		var m int
		if err := it.Item().Value(func(v []byte) (err error) {
			m, err = fn(n, v)
			return err
		}); err != nil {
			return nil, 0, err
		}
		n += m
	}
	return firsts, n, nil
}

// encodeBundle returns the stored form of a full bundle.
func encodeBundle(raw []byte) []byte {
	out := zstdEncoder.EncodeAll(raw, make([]byte, 1, len(raw)/3+16))
	if len(out) >= len(raw)+1 {
		return append([]byte{codecRaw}, raw...)
	}
	out[0] = codecZstd
	return out
}

// decodeBundle returns the C2SP bytes of a stored full bundle: a slice of
// stored if it is uncompressed, else a new buffer.
func decodeBundle(stored []byte) ([]byte, error) {
	payload, compressed, err := storedBundle(stored)
	if err != nil || !compressed {
		return payload, err
	}
	return appendStored(nil, stored)
}

// storedBundle splits a stored full bundle into its codec and payload:
// a zstd frame (compressed) or the C2SP bytes. It does not decompress.
func storedBundle(stored []byte) (payload []byte, compressed bool, err error) {
	if len(stored) == 0 {
		return nil, false, fmt.Errorf("empty stored bundle: %w", ErrCorrupt)
	}
	switch stored[0] {
	case codecRaw:
		return stored[1:], false, nil
	case codecZstd:
		return stored[1:], true, nil
	}
	return nil, false, fmt.Errorf("unknown bundle codec %d: %w", stored[0], ErrCorrupt)
}

// readBundle returns the C2SP bytes of bundle index and its number of
// entries: the full bundle if stored, else the concatenated chunks of the
// edge bundle. It returns ErrNotFound if there is neither. The bytes may
// be shared with other readers and must not be modified.
func (l *Ledger) readBundle(txn *badger.Txn, index uint64) ([]byte, int, error) {
	if raw, ok := l.bundles.Get(index); ok {
		return raw, TileWidth, nil
	}
	stored, err := get(txn, bundleKey(index))
	if err == nil {
		raw, err := decodeBundle(stored)
		if err != nil {
			return nil, 0, fmt.Errorf("bundle %d: %w", index, err)
		}
		l.bundles.Add(index, raw)
		return raw, TileWidth, nil
	}
	if err != ErrNotFound {
		return nil, 0, err
	}
	if e := l.edge.Load(); e != nil && e.index == index && e.n > 0 {
		return e.raw, e.n, nil
	}
	raw, n, _, _, err := readChunks(txn, index)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, ErrNotFound
	}
	return raw, n, nil
}

// readChunks reads the chunks of an edge bundle, checking that they are
// contiguous: their entries, how many, the first entry of each chunk, and
// how many of the chunks (the first ones) are uncompressed chunks of
// earlier versions.
func readChunks(txn *badger.Txn, index uint64) (raw []byte, n int, firsts []int, legacy int, err error) {
	add := func(first, start int) (int, error) {
		ends, err := entryEnds(raw[start:])
		if err != nil {
			return 0, fmt.Errorf("chunk at %d: %v: %w", first, err, ErrCorrupt)
		}
		return len(ends), nil
	}
	firsts, n, err = eachChunk(txn, legacyChunkPrefix(index), 0, "entries", func(first int, v []byte) (int, error) {
		start := len(raw)
		raw = append(raw, v...)
		return add(first, start)
	})
	legacy = len(firsts)
	if err == nil {
		var more []int
		more, n, err = eachChunk(txn, chunkPrefix(index), n, "entries", func(first int, v []byte) (int, error) {
			start := len(raw)
			var derr error
			if raw, derr = appendStored(raw, v); derr != nil {
				return 0, fmt.Errorf("chunk at %d: %w", first, derr)
			}
			return add(first, start)
		})
		firsts = append(firsts, more...)
	}
	if err != nil {
		return nil, 0, nil, 0, fmt.Errorf("bundle %d: %w", index, err)
	}
	if n >= TileWidth {
		return nil, 0, nil, 0, fmt.Errorf("bundle %d: chunks hold %d entries: %w", index, n, ErrCorrupt)
	}
	return raw, n, firsts, legacy, nil
}

// appendStored appends the C2SP bytes of a stored full bundle or chunk
// (both coded by encodeBundle) to dst.
func appendStored(dst, stored []byte) ([]byte, error) {
	payload, compressed, err := storedBundle(stored)
	if err != nil {
		return dst, err
	}
	if !compressed {
		return append(dst, payload...), nil
	}
	out, err := zstdDecoder.DecodeAll(payload, dst)
	if err != nil {
		return dst, fmt.Errorf("does not decompress: %v: %w", err, ErrCorrupt)
	}
	return out, nil
}

// edgeBundle is a durable prefix of the edge bundle: n entries in raw,
// which nothing writes again (the sequencer only appends past it), and
// their leaf hashes: the level-0 tile of the same index as far as it goes.
// That partial tile is not stored: it is the leaf hashes of the edge
// bundle's entries, which Open computes, and readers take it from here.
// Stored as a tile, a commit of a few entries wrote all of it again (at a
// steady pace of single events half of what the ledger's LSM tree built
// and compacted); stored as chunks of the hashes each commit added ('u'
// keys, earlier versions), still 16 % of it (BENCHMARKS.md). What Open
// checks the edge's entries against instead is the tree's root in the
// size record each commit writes: it covers the entries no signed
// checkpoint covers yet. A full tile is stored.
type edgeBundle struct {
	index  uint64
	raw    []byte
	n      int
	hashes []byte // n leaf hashes
}

// tile returns the level-0 tile index if it is this edge's (and holds
// any hash).
func (e *edgeBundle) tile(index uint64) ([]byte, bool) {
	if e == nil || e.index != index || e.n == 0 {
		return nil, false
	}
	return e.hashes, true
}

// published returns the bundle's entries so far, with hashes, their leaf
// hashes (the sequencer's level-0 edge tile), to publish once they are
// durable. Both are only ever appended to, so the capped slices stay
// valid.
func (b *bundleWriter) published(hashes []byte) *edgeBundle {
	return &edgeBundle{index: b.index, raw: b.raw[:len(b.raw):len(b.raw)], n: b.n, hashes: hashes[:len(hashes):len(hashes)]}
}

// bundleWriter is the sequencer's view of the edge bundle: every entry it
// holds, and which of them are already stored as chunks. Owned by the
// sequencer goroutine.
type bundleWriter struct {
	index   uint64 // bundle index
	raw     []byte // C2SP bytes of all entries so far; never rewritten in place
	n       int    // entries in raw
	chunks  []int  // first entry of each stored chunk
	legacy  int    // how many of them (the first) are uncompressed 'p' chunks of earlier versions
	flushed int    // bytes of raw already stored as chunks
	fn      int    // entries of raw already stored as chunks
}

// bundleCap is the capacity a bundle's bytes start with: a full bundle of
// typical events fits, and a larger one doubles, instead of growing by
// append's quarter steps (which allocated about five times the bundle).
const bundleCap = 128 << 10

// add appends an entry. It returns the entry's bytes as stored in the
// bundle, and true if the bundle is now full.
func (b *bundleWriter) add(entry []byte) ([]byte, bool) {
	if need := len(b.raw) + 2 + len(entry); need > cap(b.raw) {
		// Grow into a new array: the old one stays as chunks may hold it.
		raw := make([]byte, len(b.raw), max(bundleCap, 2*cap(b.raw), need))
		copy(raw, b.raw)
		b.raw = raw
	}
	start := len(b.raw) + 2
	b.raw = appendBundleEntry(b.raw, entry)
	b.n++
	return b.raw[start:len(b.raw):len(b.raw)], b.n == TileWidth
}

// entries splits the bundle into its entries (aliasing raw).
func (b *bundleWriter) entries() ([][]byte, error) {
	e, err := splitBundle(b.raw)
	if err != nil {
		return nil, fmt.Errorf("edge bundle %d: %v: %w", b.index, err, ErrCorrupt)
	}
	return e, nil
}

// pending reports whether entries await a chunk, and how many bytes.
func (b *bundleWriter) pending() int { return len(b.raw) - b.flushed }

// flushChunks stores the entries not yet stored, as chunks of about
// maxChunkBytes, split at entry boundaries.
func (b *bundleWriter) flushChunks(set func(k, v []byte)) {
	for b.pending() > 0 {
		end, n := len(b.raw), b.n-b.fn
		if b.pending() > maxChunkBytes {
			// Cut after the entry that reaches maxChunkBytes.
			end, n = b.flushed, 0
			for end-b.flushed < maxChunkBytes {
				end += 2 + int(binary.BigEndian.Uint16(b.raw[end:]))
				n++
			}
		}
		set(chunkKey(b.index, b.fn), encodeBundle(b.raw[b.flushed:end]))
		b.chunks = append(b.chunks, b.fn)
		b.flushed, b.fn = end, b.fn+n
	}
}

// seal stores the full bundle, deletes its chunks and starts the next
// bundle.
func (b *bundleWriter) seal(set func(k, v []byte), del func(k []byte)) {
	set(bundleKey(b.index), encodeBundle(b.raw))
	for i, first := range b.chunks {
		if i < b.legacy {
			del(legacyChunkKey(b.index, first))
		} else {
			del(chunkKey(b.index, first))
		}
	}
	*b = bundleWriter{index: b.index + 1}
}

// loadBundleWriter restores the edge bundle of a tree of the given size.
func loadBundleWriter(txn *badger.Txn, size uint64) (*bundleWriter, error) {
	b := &bundleWriter{index: size / TileWidth}
	raw, n, firsts, legacy, err := readChunks(txn, b.index)
	if err != nil {
		return nil, err
	}
	if want := int(size % TileWidth); n != want {
		return nil, fmt.Errorf("edge bundle %d holds %d entries, want %d: %w", b.index, n, want, ErrCorrupt)
	}
	b.raw, b.n, b.chunks, b.legacy = raw, n, firsts, legacy
	b.flushed, b.fn = len(raw), n
	return b, nil
}
