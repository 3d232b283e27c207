package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Badger key layout. Every key starts with a one-byte prefix naming its
// record type; integers are big-endian so that keys sort by index.
//
//	'm' name                    log metadata (keyMeta, keySize, keyLatestCP); the size
//	                            record is size:8 root:32, the tree's root at that size
//	                            (earlier versions: size:8 alone)
//	't' level:1 index:8         hash tile, C2SP tlog-tiles layout, full or partial
//	                            (level 0: full only; earlier versions stored partial ones)
//	'b' index:8                 full entry bundle: codec:1, then C2SP bytes (zstd or raw)
//	'q' index:8 first:1         chunk of the edge bundle: codec:1, then the C2SP bytes of
//	                            entries first.. (zstd or raw, as full bundles)
//	'p' index:8 first:1         uncompressed chunk of the edge bundle (C2SP framing) of
//	                            earlier versions: read before the 'q' chunks that
//	                            follow it, deleted when the bundle is sealed
//	'u' index:8 first:1         chunk of the level-0 edge tile of earlier versions: the
//	                            leaf hashes of entries first.. (see edgeBundle); the next
//	                            commit deletes them
//	'd' dedup key               idempotency record: index:8 leafhash:32 fingerprint:32
//	'r' chunk:8 bucket:1 part:1 hash runs: the leaf hashes of 65,536 entries, sorted
//	                            (hashruns.go); candidates are checked against the
//	                            level-0 tile, and the first index wins
//	'h' leafhash[:8] index:8    per-entry leaf-hash index of earlier versions; Open
//	                            removes it
//	'c' size:8                  signed checkpoint of that size
const (
	prefixTile        = 't'
	prefixBundle      = 'b'
	prefixChunk       = 'q'
	prefixLegacyChunk = 'p' // earlier versions only
	prefixHashChunk   = 'u' // earlier versions only
	prefixDedup       = 'd'
	prefixLeafHash    = 'h' // earlier versions only
	prefixCheckpoint  = 'c'
)

var (
	keyMeta     = []byte("mlog")
	keySize     = []byte("msize")
	keyLatestCP = []byte("mcheckpoint")
)

// TileHeight is the C2SP tlog-tiles tile height: a tile holds 2^8 hashes.
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight
	hashSize   = 32
)

func tileKey(level uint8, index uint64) []byte {
	k := make([]byte, 10)
	k[0] = prefixTile
	k[1] = level
	binary.BigEndian.PutUint64(k[2:], index)
	return k
}

func bundleKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixBundle
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func checkpointKey(size uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixCheckpoint
	binary.BigEndian.PutUint64(k[1:], size)
	return k
}

func dedupKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixDedup
	copy(k[1:], key)
	return k
}

func encodeUint64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}

func decodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("want 8 bytes, got %d", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// sizeRecordLen is the length of the size record: the tree size, and
// the tree's root at that size.
const sizeRecordLen = 8 + hashSize

// encodeSizeRecord returns the size record of a tree of size entries
// whose root is root. Every commit writes it; Open checks the root
// against the tree it rebuilds from the stored tiles and the edge
// bundle's entries, which covers the entries no signed checkpoint covers
// yet.
func encodeSizeRecord(size uint64, root []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, sizeRecordLen), size), root...)
}

// decodeSizeRecord parses a size record; root is nil in one an earlier
// version wrote (the size alone).
func decodeSizeRecord(b []byte) (size uint64, root []byte, err error) {
	switch len(b) {
	case 8:
		return binary.BigEndian.Uint64(b), nil, nil
	case sizeRecordLen:
		return binary.BigEndian.Uint64(b), b[8:sizeRecordLen:sizeRecordLen], nil
	}
	return 0, nil, fmt.Errorf("want %d bytes (or 8, from an earlier version), got %d", sizeRecordLen, len(b))
}

// dedupRecord is the value stored under a dedup key: the index of the
// entry the key first stood for, that entry's leaf hash and a fingerprint
// of its content (Entry.Fingerprint).
//
// Stored, it is 32 bytes: index:8, the leaf hash folded (foldHash):8, the
// first 16 bytes of the fingerprint. The full leaf hash is in the level-0
// tile; a duplicate reads it there (sequencer.lookupDedup). Earlier
// versions stored 72 bytes, index:8 leafhash:32 fingerprint:32, which are
// still read. Each event with an id writes one record, under a key its id
// places, so its size counts at every compaction: 32 bytes instead of 72
// gave batches with an id on every event 4-8 % more events/s
// (BENCHMARKS.md).
type dedupRecord struct {
	index       uint64
	leafHash    [32]byte // all zero until known: a stored record holds only fold
	fold        uint64   // foldHash(leafHash)
	fingerprint [16]byte // the first 16 bytes of the entry's fingerprint
}

const (
	dedupRecordLen    = 8 + 8 + 16
	dedupRecordLenOld = 8 + 32 + 32
)

func newDedupRecord(index uint64, leafHash, fingerprint [32]byte) dedupRecord {
	return dedupRecord{index: index, leafHash: leafHash, fold: foldHash(leafHash[:]), fingerprint: [16]byte(fingerprint[:16])}
}

// sameContent reports whether fingerprint is the one the record was made
// with (to 128 bits).
func (r dedupRecord) sameContent(fingerprint [32]byte) bool {
	return r.fingerprint == [16]byte(fingerprint[:16])
}

func (r dedupRecord) marshal() []byte {
	b := make([]byte, 0, dedupRecordLen)
	b = binary.BigEndian.AppendUint64(b, r.index)
	b = binary.BigEndian.AppendUint64(b, r.fold)
	return append(b, r.fingerprint[:]...)
}

func unmarshalDedup(b []byte) (dedupRecord, error) {
	var r dedupRecord
	switch len(b) {
	case dedupRecordLen:
		r.index = binary.BigEndian.Uint64(b)
		r.fold = binary.BigEndian.Uint64(b[8:])
		copy(r.fingerprint[:], b[16:])
	case dedupRecordLenOld:
		r = newDedupRecord(binary.BigEndian.Uint64(b), [32]byte(b[8:40]), [32]byte(b[40:72]))
	default:
		return r, errors.New("malformed dedup record")
	}
	return r, nil
}

// appendBundleEntry appends one entry to a C2SP entry bundle: a big-endian
// uint16 length followed by the entry bytes.
func appendBundleEntry(bundle, entry []byte) []byte {
	bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(entry)))
	return append(bundle, entry...)
}

// nextEntry parses the C2SP entry-bundle framing (a big-endian uint16
// length before each entry) at offset off of bundle: it returns the entry
// there and the offset just past it. It is the one parser of stored
// framing; the helpers below derive from it.
func nextEntry(bundle []byte, off int) ([]byte, int, error) {
	if off+2 > len(bundle) {
		return nil, 0, fmt.Errorf("dangling byte at offset %d of entry bundle", off)
	}
	end := off + 2 + int(binary.BigEndian.Uint16(bundle[off:]))
	if end > len(bundle) {
		return nil, 0, fmt.Errorf("entry at offset %d overruns entry bundle", off)
	}
	return bundle[off+2 : end : end], end, nil
}

// entryEnds returns the offset just past each entry of a bundle. Entry i
// spans [ends[i-1]+2, ends[i]) (with ends[-1] taken as 0).
func entryEnds(bundle []byte) ([]int, error) {
	ends := make([]int, 0, TileWidth)
	for off := 0; off < len(bundle); {
		_, end, err := nextEntry(bundle, off)
		if err != nil {
			return nil, err
		}
		ends = append(ends, end)
		off = end
	}
	if len(ends) > TileWidth {
		return nil, fmt.Errorf("entry bundle holds %d entries, more than %d", len(ends), TileWidth)
	}
	return ends, nil
}

// entryAt returns entry i of a bundle whose entry ends are known.
func entryAt(bundle []byte, ends []int, i int) []byte {
	start := 2
	if i > 0 {
		start = ends[i-1] + 2
	}
	return bundle[start:ends[i]:ends[i]]
}

// splitBundle parses a C2SP entry bundle into its entries. The returned
// slices alias bundle.
func splitBundle(bundle []byte) ([][]byte, error) {
	ends, err := entryEnds(bundle)
	if err != nil {
		return nil, err
	}
	entries := make([][]byte, len(ends))
	for i := range ends {
		entries[i] = entryAt(bundle, ends, i)
	}
	return entries, nil
}

// bundleEntry returns the i-th entry of a bundle.
func bundleEntry(bundle []byte, i int) ([]byte, error) {
	ends, err := entryEnds(bundle)
	if err != nil {
		return nil, err
	}
	if i >= len(ends) {
		return nil, fmt.Errorf("entry %d missing from bundle of %d", i, len(ends))
	}
	return entryAt(bundle, ends, i), nil
}
