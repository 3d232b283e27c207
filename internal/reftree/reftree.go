// Package reftree is an independent model of an RFC 6962 transparency log
// for tests: the go.sum transparency-log code of golang.org/x/mod/sumdb/tlog
// fed with the same entries as the log under test. Roots, tiles, leaf
// hashes and proofs expected from accessledger are computed here, never by
// accessledger's own code, so that a test compares it with code it did not
// write.
package reftree

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// Tree holds the entries added so far and their tlog stored hashes. It is
// not safe for concurrent use.
type Tree struct {
	// Data are the entries, in order.
	Data   [][]byte
	stored []tlog.Hash // indexed by tlog.StoredHashIndex
}

// ReadHashes implements tlog.HashReader.
func (r *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(r.stored)) {
			return nil, fmt.Errorf("reftree: no stored hash %d", x)
		}
		out[i] = r.stored[x]
	}
	return out, nil
}

// Add appends entries, failing the test if tlog cannot.
func (r *Tree) Add(t testing.TB, data ...[]byte) {
	t.Helper()
	for _, d := range data {
		hashes, err := tlog.StoredHashes(int64(len(r.Data)), d, r)
		if err != nil {
			t.Fatalf("tlog.StoredHashes(%d) = %v", len(r.Data), err)
		}
		r.stored = append(r.stored, hashes...)
		r.Data = append(r.Data, d)
	}
}

// Size returns the number of entries.
func (r *Tree) Size() uint64 { return uint64(len(r.Data)) }

// Root returns the RFC 6962 root of the first n entries, per tlog (the
// empty tree's for n = 0).
func (r *Tree) Root(t testing.TB, n uint64) tlog.Hash {
	t.Helper()
	if n == 0 {
		return EmptyRoot()
	}
	h, err := tlog.TreeHash(int64(n), r)
	if err != nil {
		t.Fatalf("tlog.TreeHash(%d) = %v", n, err)
	}
	return h
}

// LeafHash returns the leaf hash of entry i, per tlog.
func (r *Tree) LeafHash(i uint64) tlog.Hash { return tlog.RecordHash(r.Data[i]) }

// EmptyRoot is the RFC 6962 root of an empty tree: SHA-256 of nothing.
func EmptyRoot() tlog.Hash { return tlog.Hash(sha256.Sum256(nil)) }

// ToTlog converts proof hashes to tlog hashes, failing the test on a hash
// of the wrong size.
func ToTlog(t testing.TB, p [][]byte) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		if len(h) != tlog.HashSize {
			t.Fatalf("proof hash %d has %d bytes, want %d", i, len(h), tlog.HashSize)
		}
		copy(out[i][:], h)
	}
	return out
}
