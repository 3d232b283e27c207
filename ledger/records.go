package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// recordCheck verifies, during a full Open, the records derived from the
// entries: the leaf-hash index and the dedup records. Both are written in
// the same transaction as their entries, so after any crash they agree
// with them exactly.
//
//   - The leaf-hash index must be exactly {(hash[:8], index)} for every
//     entry: no record missing (a lookup by hash would fail), none extra.
//     It is compared as a multiset hash (the sum, modulo 2^256, of the
//     SHA-256 of every key) of the stored keys and of the keys the entries
//     call for, in constant memory.
//   - Every dedup record must point below the tree size at an entry with
//     the leaf hash it records (a replay answers with that index and
//     hash). Records are loaded as (index, folded hash) pairs, 16 bytes
//     each, sorted by index, and checked as the entries stream past.
//     Whether every entry that had an id has its record cannot be checked
//     here: ids are the API's, and the ledger's entries are opaque bytes.
type recordCheck struct {
	leafSum  setHash // of the leaf-hash keys the entries call for
	dedup    []dedupPair
	next     int // first dedup pair not yet checked
	leafKeys uint64
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

// loadRecordCheck reads the dedup records of a tree of the given size.
func loadRecordCheck(txn *badger.Txn, size uint64) (*recordCheck, error) {
	rc := &recordCheck{}
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
			rc.dedup = append(rc.dedup, dedupPair{rec.index, foldHash(rec.leafHash[:])})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dedup record %q: %v: %w", it.Item().Key()[1:], err, ErrCorrupt)
		}
	}
	slices.SortFunc(rc.dedup, func(a, b dedupPair) int {
		switch {
		case a.index < b.index:
			return -1
		case a.index > b.index:
			return 1
		}
		return 0
	})
	return rc, nil
}

// entry checks the records of the entry at index with leaf hash leaf.
// Entries must come in index order.
func (rc *recordCheck) entry(index uint64, leaf []byte) error {
	rc.leafSum.add(leafHashKey(leaf, index))
	rc.leafKeys++
	f := foldHash(leaf)
	for ; rc.next < len(rc.dedup) && rc.dedup[rc.next].index == index; rc.next++ {
		if rc.dedup[rc.next].fold != f {
			return fmt.Errorf("a dedup record for entry %d records another leaf hash: %w", index, ErrCorrupt)
		}
	}
	return nil
}

// finish compares the stored leaf-hash index with what the entries call
// for.
func (rc *recordCheck) finish(txn *badger.Txn) error {
	var stored setHash
	var n uint64
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{prefixLeafHash}
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		stored.add(it.Item().Key())
		n++
	}
	if rc.next != len(rc.dedup) {
		return fmt.Errorf("dedup records point at entries not checked: %w", ErrCorrupt)
	}
	if n != rc.leafKeys || stored != rc.leafSum {
		return fmt.Errorf("the leaf-hash index (%d records) does not match the %d entries: %w", n, rc.leafKeys, ErrCorrupt)
	}
	return nil
}
