package ledger

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// recordCheck verifies, during a full Open, the records derived from the
// entries: the hash runs and the dedup records.
//
//   - The hash runs of the chunks that have them must hold exactly the
//     pairs (hash[:8], position) of the chunks' entries, each part sorted
//     and in its bucket, the parts of a bucket in order: no pair missing
//     (a lookup by hash would fail), none extra. The pairs are compared
//     as a multiset hash (the sum, modulo 2^256, of the SHA-256 of every
//     pair with its chunk) of the stored runs and of the entries, in
//     constant memory. The runs are written after their entries, so
//     after a crash a chunk may lack them; never the reverse.
//   - Every dedup record must point below the tree size at an entry with
//     the leaf hash it records (a replay answers with that index and
//     hash). Records are loaded as (index, folded hash) pairs, 16 bytes
//     each, sorted by index, and checked as the entries stream past.
//     Whether every entry that had an id has its record cannot be checked
//     here: ids are the API's, and the ledger's entries are opaque bytes.
type recordCheck struct {
	runSum setHash // of the pairs the entries of chunks with runs call for
	runs   uint64  // chunks with hash runs
	bits   uint    // log2 of the entries per chunk
	dedup  []dedupPair
	next   int // first dedup pair not yet checked
}

type dedupPair struct {
	index uint64
	fold  uint64 // foldHash of the recorded leaf hash
}

// foldHash folds a 32-byte hash into 8 bytes, so that any changed byte
// changes it.
func foldHash(h []byte) uint64 {
	return binary.BigEndian.Uint64(h) ^ binary.BigEndian.Uint64(h[8:]) ^
		binary.BigEndian.Uint64(h[16:]) ^ binary.BigEndian.Uint64(h[24:])
}

// setHash is a multiset hash: the sum modulo 2^256 of SHA-256 of the
// elements, so the order in which they are added does not matter.
type setHash [4]uint64

func (s *setHash) add(element []byte) {
	h := sha256.Sum256(element)
	var carry uint64
	for i := 3; i >= 0; i-- {
		s[i], carry = bits.Add64(s[i], binary.BigEndian.Uint64(h[8*(3-i):]), carry)
	}
}

// loadRecordCheck reads the dedup records of a tree of the given size,
// whose first runs chunks of 2^bits entries have hash runs.
func loadRecordCheck(txn *badger.Txn, size, runs uint64, bits uint) (*recordCheck, error) {
	rc := &recordCheck{runs: runs, bits: bits}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{prefixDedup}
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(v []byte) error {
			rec, err := unmarshalDedup(v)
			if err != nil {
				return err
			}
			if rec.index >= size {
				return fmt.Errorf("points at index %d, beyond the tree size %d", rec.index, size)
			}
			rc.dedup = append(rc.dedup, dedupPair{rec.index, rec.fold})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dedup record %q: %v: %w", it.Item().Key()[1:], err, ErrCorrupt)
		}
	}
	slices.SortFunc(rc.dedup, func(a, b dedupPair) int { return cmp.Compare(a.index, b.index) })
	return rc, nil
}

// runElement is what the multiset hash of the runs adds for one pair.
func runElement(chunk, hash uint64, pos uint16) []byte {
	b := make([]byte, 0, 18)
	b = binary.BigEndian.AppendUint64(b, chunk)
	b = binary.BigEndian.AppendUint64(b, hash)
	return binary.BigEndian.AppendUint16(b, pos)
}

// entry checks the records of the entry at index with leaf hash leaf.
// Entries must come in index order.
func (rc *recordCheck) entry(index uint64, leaf []byte) error {
	if chunk := index >> rc.bits; chunk < rc.runs {
		pos := uint16(index - chunk<<rc.bits)
		rc.runSum.add(runElement(chunk, binary.BigEndian.Uint64(leaf), pos))
	}
	f := foldHash(leaf)
	for ; rc.next < len(rc.dedup) && rc.dedup[rc.next].index == index; rc.next++ {
		if rc.dedup[rc.next].fold != f {
			return fmt.Errorf("a dedup record for entry %d records another leaf hash: %w", index, ErrCorrupt)
		}
	}
	return nil
}

// finish compares the stored hash runs with what the entries call for.
func (rc *recordCheck) finish(txn *badger.Txn) error {
	if rc.next != len(rc.dedup) {
		return fmt.Errorf("dedup records point at entries not checked: %w", ErrCorrupt)
	}
	var stored setHash
	var n uint64
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{prefixHashRun}
	it := txn.NewIterator(opts)
	defer it.Close()
	var last []byte // the key of the previous part
	var lastHash uint64
	var lastPos uint16
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != 11 {
			return fmt.Errorf("malformed hash-run key %x: %w", k, ErrCorrupt)
		}
		chunk, bucket, part := binary.BigEndian.Uint64(k[1:]), k[9], k[10]
		if chunk >= rc.runs {
			return fmt.Errorf("hash run of chunk %d, but only %d chunks have runs: %w", chunk, rc.runs, ErrCorrupt)
		}
		sameBucket := last != nil && bytes.Equal(last[:10], k[:10])
		if sameBucket && part != last[10]+1 || !sameBucket && part != 0 {
			return fmt.Errorf("hash run %x out of sequence: %w", k, ErrCorrupt)
		}
		err := it.Item().Value(func(v []byte) error {
			if len(v) == 0 || len(v)%runPairBytes != 0 {
				return fmt.Errorf("hash run %x holds %d bytes: %w", k, len(v), ErrCorrupt)
			}
			for o := 0; o < len(v); o += runPairBytes {
				h := binary.BigEndian.Uint64(v[o:])
				pos := binary.BigEndian.Uint16(v[o+8:])
				if byte(h>>56) != bucket {
					return fmt.Errorf("hash run %x holds a hash of another bucket: %w", k, ErrCorrupt)
				}
				if uint64(pos) >= 1<<rc.bits {
					return fmt.Errorf("hash run %x holds position %d, beyond its chunk: %w", k, pos, ErrCorrupt)
				}
				if (sameBucket || o > 0) && (h < lastHash || h == lastHash && pos <= lastPos) {
					return fmt.Errorf("hash run %x is not sorted: %w", k, ErrCorrupt)
				}
				lastHash, lastPos = h, pos
				stored.add(runElement(chunk, h, pos))
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		last = append(last[:0], k...)
	}
	if want := rc.runs << rc.bits; n != want || stored != rc.runSum {
		return fmt.Errorf("the hash runs (%d pairs) do not match the %d entries of their %d chunks: %w", n, want, rc.runs, ErrCorrupt)
	}
	return nil
}
