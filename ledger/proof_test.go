package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/accessledger/accessledger/internal/reftree"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"golang.org/x/mod/sumdb/tlog"
)

// checkInclusion fetches the inclusion proof of index in the tree of the
// given size and verifies it with both tlog and merkle/proof against the
// reference root. It returns the proof.
func checkInclusion(t *testing.T, l *Ledger, ref *reftree.Tree, index, size uint64, root tlog.Hash) [][]byte {
	t.Helper()
	p, err := l.InclusionProof(bg, index, size)
	if err != nil {
		t.Fatalf("InclusionProof(%d, %d) = %v", index, size, err)
	}
	leaf := ref.LeafHash(index)
	if err := verifyInclusion(t, p, index, size, leaf, root); err != nil {
		t.Fatalf("InclusionProof(%d, %d) does not verify: %v", index, size, err)
	}
	return p
}

// verifyInclusion runs both independent verifiers; it returns nil only if
// both accept, and fails the test if they disagree.
func verifyInclusion(t *testing.T, p [][]byte, index, size uint64, leaf, root tlog.Hash) error {
	t.Helper()
	errProof := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf[:], p, root[:])
	errTlog := tlog.CheckRecord(reftree.ToTlog(t, p), int64(size), root, int64(index), leaf)
	if (errProof == nil) != (errTlog == nil) {
		t.Fatalf("inclusion %d in %d: proof.VerifyInclusion = %v but tlog.CheckRecord = %v", index, size, errProof, errTlog)
	}
	return errors.Join(errProof, errTlog)
}

// checkConsistency fetches the consistency proof between sizes a and b and
// verifies it with both tlog and merkle/proof against reference roots.
func checkConsistency(t *testing.T, l *Ledger, a, b uint64, rootA, rootB tlog.Hash) [][]byte {
	t.Helper()
	p, err := l.ConsistencyProof(bg, a, b)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d) = %v", a, b, err)
	}
	if err := verifyConsistency(t, p, a, b, rootA, rootB); err != nil {
		t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", a, b, err)
	}
	return p
}

func verifyConsistency(t *testing.T, p [][]byte, a, b uint64, rootA, rootB tlog.Hash) error {
	t.Helper()
	errProof := proof.VerifyConsistency(rfc6962.DefaultHasher, a, b, p, rootA[:], rootB[:])
	errTlog := tlog.CheckTree(reftree.ToTlog(t, p), int64(b), rootB, int64(a), rootA)
	if (errProof == nil) != (errTlog == nil) {
		t.Fatalf("consistency %d→%d: proof.VerifyConsistency = %v but tlog.CheckTree = %v", a, b, errProof, errTlog)
	}
	return errors.Join(errProof, errTlog)
}

// checkRoot asserts that the ledger's root for size n, from RootAt and,
// if n is the current size, from Size, equals the reference root.
func checkRoot(t *testing.T, l *Ledger, n uint64, want tlog.Hash) {
	t.Helper()
	got, err := l.RootAt(bg, n)
	if err != nil {
		t.Fatalf("RootAt(%d) = %v", n, err)
	}
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("RootAt(%d) = %x, want %x", n, got, want)
	}
	if size, root := l.Size(); size == n && !bytes.Equal(root, want[:]) {
		t.Fatalf("Size() = %d, %x; want root %x", size, root, want)
	}
}

// TestProofsEverySize grows a log one entry at a time to 300 entries and,
// at every size b, verifies the inclusion proof of every index below b and
// the consistency proof from every size 1 <= a <= b, with two independent
// verifiers against roots computed by tlog from the entries. It also
// checks that the proofs equal those tlog itself builds.
func TestProofsEverySize(t *testing.T) {
	const maxSize = 300
	l, _ := newTestLedger(t)
	ref := &reftree.Tree{}
	roots := []tlog.Hash{reftree.EmptyRoot()}
	for b := uint64(1); b <= maxSize; b++ {
		d := entryData(int(b - 1))
		appendData(t, l, d)
		ref.Add(t, d)
		roots = append(roots, ref.Root(t, b))
		checkRoot(t, l, b, roots[b])
		for i := range b {
			p := checkInclusion(t, l, ref, i, b, roots[b])
			want, err := tlog.ProveRecord(int64(b), int64(i), ref)
			if err != nil {
				t.Fatalf("tlog.ProveRecord(%d, %d) = %v", b, i, err)
			}
			if !slices.Equal(reftree.ToTlog(t, p), want) {
				t.Fatalf("InclusionProof(%d, %d) = %x, want %x", i, b, p, want)
			}
		}
		for a := uint64(1); a <= b; a++ {
			p := checkConsistency(t, l, a, b, roots[a], roots[b])
			want, err := tlog.ProveTree(int64(b), int64(a), ref)
			if err != nil {
				t.Fatalf("tlog.ProveTree(%d, %d) = %v", b, a, err)
			}
			if !slices.Equal(reftree.ToTlog(t, p), want) {
				t.Fatalf("ConsistencyProof(%d, %d) = %x, want %x", a, b, p, want)
			}
		}
	}
	// Every older root is still served.
	for n := uint64(1); n <= maxSize; n++ {
		checkRoot(t, l, n, roots[n])
	}
}

// TestProofsLargeLog checks sampled proofs, roots and tiles of a log that
// spans a full level-1 tile (70,000 entries, appended in batches).
func TestProofsLargeLog(t *testing.T) {
	const total = 70000
	l, _ := newTestLedger(t)
	appendN(t, l, 0, total, 4096)
	ref := &reftree.Tree{}
	addN(t, ref, 0, total)

	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []uint64{1, 2, 3, 255, 256, 257, 511, 512, 513, 4096, 65535, 65536, 65537, 69999, total}
	for range 10 {
		sizes = append(sizes, 1+rng.Uint64N(total))
	}
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	roots := make(map[uint64]tlog.Hash)
	for _, n := range sizes {
		roots[n] = ref.Root(t, n)
		checkRoot(t, l, n, roots[n])
	}

	t.Run("Inclusion", func(t *testing.T) {
		for _, n := range sizes {
			indexes := []uint64{0, n / 2, n - 1}
			for _, i := range []uint64{1, 255, 256, 65535, 65536} {
				if i < n {
					indexes = append(indexes, i)
				}
			}
			for range 5 {
				indexes = append(indexes, rng.Uint64N(n))
			}
			for _, i := range indexes {
				checkInclusion(t, l, ref, i, n, roots[n])
			}
		}
	})
	t.Run("Consistency", func(t *testing.T) {
		for _, b := range sizes {
			for _, a := range sizes {
				if a <= b {
					checkConsistency(t, l, a, b, roots[a], roots[b])
				}
			}
		}
	})
	t.Run("CorruptedProofsFail", func(t *testing.T) {
		pairs := [][2]uint64{{0, 1}, {0, 2}, {1, 3}, {256, 257}, {255, 65536}, {65536, 65537}, {1234, 69999}, {69999, total}}
		for _, pr := range pairs {
			checkInclusionNegatives(t, l, ref, pr[0], pr[1], roots)
		}
		for _, pr := range [][2]uint64{{1, 2}, {1, 3}, {255, 257}, {256, 65537}, {65535, 65536}, {4096, total}, {257, 69999}} {
			checkConsistencyNegatives(t, l, ref, pr[0], pr[1])
		}
	})
	t.Run("Tiles", func(t *testing.T) { checkAllTiles(t, l, ref) })
}

// checkInclusionNegatives verifies that a correct inclusion proof stops
// verifying when any hash is corrupted, the index is wrong, it is
// truncated or extended, or it is presented for another leaf.
func checkInclusionNegatives(t *testing.T, l *Ledger, ref *reftree.Tree, index, size uint64, roots map[uint64]tlog.Hash) {
	t.Helper()
	root, ok := roots[size]
	if !ok {
		root = ref.Root(t, size)
	}
	p := checkInclusion(t, l, ref, index, size, root)
	leaf := ref.LeafHash(index)
	for i := range p {
		for _, bit := range []int{0, 7*8 + 3, 31*8 + 7} {
			bad := flipBit(p, i, bit)
			if verifyInclusion(t, bad, index, size, leaf, root) == nil {
				t.Errorf("inclusion %d in %d verifies with bit %d of hash %d flipped", index, size, bit, i)
			}
		}
	}
	if len(p) > 0 && verifyInclusion(t, p[:len(p)-1], index, size, leaf, root) == nil {
		t.Errorf("inclusion %d in %d verifies truncated", index, size)
	}
	extra := append(slices.Clone(p), leaf[:])
	if verifyInclusion(t, extra, index, size, leaf, root) == nil {
		t.Errorf("inclusion %d in %d verifies with an extra hash", index, size)
	}
	for _, wrong := range []uint64{index + 1, index - 1, index ^ 1} {
		if wrong >= size || wrong == index {
			continue
		}
		if verifyInclusion(t, p, wrong, size, leaf, root) == nil {
			t.Errorf("inclusion proof of %d in %d verifies for index %d", index, size, wrong)
		}
		if verifyInclusion(t, p, index, size, ref.LeafHash(wrong), root) == nil {
			t.Errorf("inclusion proof of %d in %d verifies for the leaf at %d", index, size, wrong)
		}
	}
	if size > 1 {
		if verifyInclusion(t, p, index, size, leaf, ref.Root(t, size-1)) == nil {
			t.Errorf("inclusion proof of %d in %d verifies against the root of size %d", index, size, size-1)
		}
	}
}

// checkConsistencyNegatives does the same for a consistency proof.
func checkConsistencyNegatives(t *testing.T, l *Ledger, ref *reftree.Tree, a, b uint64) {
	t.Helper()
	rootA, rootB := ref.Root(t, a), ref.Root(t, b)
	p := checkConsistency(t, l, a, b, rootA, rootB)
	for i := range p {
		for _, bit := range []int{0, 13*8 + 5, 31*8 + 7} {
			if verifyConsistency(t, flipBit(p, i, bit), a, b, rootA, rootB) == nil {
				t.Errorf("consistency %d→%d verifies with bit %d of hash %d flipped", a, b, bit, i)
			}
		}
	}
	if len(p) > 0 && verifyConsistency(t, p[:len(p)-1], a, b, rootA, rootB) == nil {
		t.Errorf("consistency %d→%d verifies truncated", a, b)
	}
	if verifyConsistency(t, append(slices.Clone(p), rootA[:]), a, b, rootA, rootB) == nil {
		t.Errorf("consistency %d→%d verifies with an extra hash", a, b)
	}
	for _, wrong := range [][2]uint64{{a + 1, b}, {a - 1, b}, {a, b + 1}, {a, b - 1}} {
		wa, wb := wrong[0], wrong[1]
		if wa == 0 || wa > wb || wb > ref.Size() {
			continue
		}
		if verifyConsistency(t, p, wa, wb, ref.Root(t, wa), ref.Root(t, wb)) == nil {
			t.Errorf("consistency proof %d→%d verifies as %d→%d", a, b, wa, wb)
		}
	}
	if verifyConsistency(t, p, a, b, rootA, ref.Root(t, b-1)) == nil {
		t.Errorf("consistency proof %d→%d verifies against the root of size %d", a, b, b-1)
	}
}

// flipBit returns a copy of p with one bit of hash i flipped.
func flipBit(p [][]byte, i, bit int) [][]byte {
	bad := make([][]byte, len(p))
	for j := range p {
		bad[j] = slices.Clone(p[j])
	}
	bad[i][bit/8] ^= 1 << (bit % 8)
	return bad
}

// checkAllTiles compares every hash tile and entry bundle of the log with
// tlog's tiles over the reference tree, and parses them with tessera's
// C2SP types.
func checkAllTiles(t *testing.T, l *Ledger, ref *reftree.Tree) {
	t.Helper()
	size := int64(ref.Size())
	for level := 0; size>>(8*level) > 0; level++ {
		nodes := size >> (8 * level)
		for n := int64(0); n*TileWidth < nodes; n++ {
			w := min(nodes-n*TileWidth, TileWidth)
			tile := tlog.Tile{H: TileHeight, L: level, N: n, W: int(w)}
			want, err := tlog.ReadTileData(tile, ref)
			if err != nil {
				t.Fatalf("tlog.ReadTileData(%v) = %v", tile, err)
			}
			width := int(w)
			if w == TileWidth {
				width = 0
			}
			got, err := l.ReadTile(bg, uint8(level), uint64(n), width)
			if err != nil {
				t.Fatalf("ReadTile(%d, %d, %d) = %v", level, n, width, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ReadTile(%d, %d, %d) differs from tlog tile %s", level, n, width, tile.Path())
			}
			// Any stored hash is recoverable from the tile, as tlog does.
			for _, k := range []int64{0, w - 1} {
				idx := tlog.StoredHashIndex(8*level, n*TileWidth+k)
				h, err := tlog.HashFromTile(tile, got, idx)
				want, rerr := ref.ReadHashes([]int64{idx})
				if err != nil || rerr != nil || h != want[0] {
					t.Fatalf("tlog.HashFromTile(%s, %d) = %v, %v; want %v (%v)", tile.Path(), idx, h, err, want, rerr)
				}
			}
			var ht api.HashTile
			if err := ht.UnmarshalText(got); err != nil || int64(len(ht.Nodes)) != w {
				t.Fatalf("api.HashTile.UnmarshalText(tile %d/%d) = %v with %d nodes, want %d", level, n, err, len(ht.Nodes), w)
			}
			if level == 0 {
				checkBundle(t, l, ref, uint64(n), int(w))
			}
			if level == 1 {
				// Node i of a level-1 tile is the root of 256 leaves.
				for _, i := range []int64{0, w / 2, w - 1} {
					first := (n*TileWidth + i) * TileWidth
					want := perfectRoot(ref, first, TileWidth)
					if !bytes.Equal(ht.Nodes[i], want[:]) {
						t.Fatalf("tile 1/%d node %d = %x, want the root of leaves [%d, %d) = %x", n, i, ht.Nodes[i], first, first+TileWidth, want)
					}
				}
			}
		}
	}
}

// perfectRoot hashes the leaves [first, first+n) pairwise, n a power of 2.
func perfectRoot(ref *reftree.Tree, first, n int64) tlog.Hash {
	hs := make([]tlog.Hash, n)
	for i := range hs {
		hs[i] = ref.LeafHash(uint64(first) + uint64(i))
	}
	for len(hs) > 1 {
		for i := 0; i < len(hs)/2; i++ {
			hs[i] = tlog.NodeHash(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0]
}

// checkBundle reads entry bundle n (width entries) and checks it holds
// the reference entries, parsed both by hand and by tessera.
func checkBundle(t *testing.T, l *Ledger, ref *reftree.Tree, n uint64, width int) {
	t.Helper()
	w := width
	if w == TileWidth {
		w = 0
	}
	b, err := l.ReadEntryBundle(bg, n, w)
	if err != nil {
		t.Fatalf("ReadEntryBundle(%d, %d) = %v", n, w, err)
	}
	var want []byte
	for i := range uint64(width) {
		d := ref.Data[n*TileWidth+i]
		want = binary.BigEndian.AppendUint16(want, uint16(len(d)))
		want = append(want, d...)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("ReadEntryBundle(%d, %d) = %q, want %q", n, w, b, want)
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(b); err != nil || len(eb.Entries) != width {
		t.Fatalf("api.EntryBundle.UnmarshalText(bundle %d) = %v with %d entries, want %d", n, err, len(eb.Entries), width)
	}
	for i, e := range eb.Entries {
		if !bytes.Equal(e, ref.Data[n*TileWidth+uint64(i)]) {
			t.Fatalf("bundle %d entry %d = %q, want %q", n, i, e, ref.Data[n*TileWidth+uint64(i)])
		}
	}
}

func TestTilesAndBundles(t *testing.T) {
	l, _ := newTestLedger(t)
	ref := &reftree.Tree{}
	// Entries of varied length, including empty ones.
	var data [][]byte
	for i := range 300 {
		data = append(data, bytes.Repeat([]byte{byte('a' + i%26)}, i%7*40))
	}
	appendData(t, l, data[:100]...)
	appendData(t, l, data[100:]...)
	ref.Add(t, data...)
	checkAllTiles(t, l, ref)

	full, err := l.ReadTile(bg, 0, 0, 0)
	if err != nil {
		t.Fatalf("ReadTile(0, 0, 0) = %v", err)
	}
	for i := range TileWidth {
		want := ref.LeafHash(uint64(i))
		if !bytes.Equal(full[i*32:(i+1)*32], want[:]) {
			t.Fatalf("ReadTile(0, 0, 0) hash %d = %x, want leaf hash %x", i, full[i*32:(i+1)*32], want)
		}
	}
	partial, err := l.ReadTile(bg, 0, 1, 44)
	if err != nil {
		t.Fatalf("ReadTile(0, 1, 44) = %v", err)
	}
	bundle, err := l.ReadEntryBundle(bg, 1, 44)
	if err != nil {
		t.Fatalf("ReadEntryBundle(1, 44) = %v", err)
	}
	tests := []struct {
		name  string
		read  func() ([]byte, error)
		want  []byte
		error error
	}{
		{"TilePrefixOfFull", func() ([]byte, error) { return l.ReadTile(bg, 0, 0, 100) }, full[:100*32], nil},
		{"TileWidth1", func() ([]byte, error) { return l.ReadTile(bg, 0, 0, 1) }, full[:32], nil},
		{"TilePrefixOfPartial", func() ([]byte, error) { return l.ReadTile(bg, 0, 1, 10) }, partial[:10*32], nil},
		{"TileBeyondStoredWidth", func() ([]byte, error) { return l.ReadTile(bg, 0, 1, 45) }, nil, ErrNotFound},
		{"PartialTileReadAsFull", func() ([]byte, error) { return l.ReadTile(bg, 0, 1, 0) }, nil, ErrNotFound},
		{"TileNotYetStarted", func() ([]byte, error) { return l.ReadTile(bg, 0, 2, 1) }, nil, ErrNotFound},
		{"Level1Tile", func() ([]byte, error) { return l.ReadTile(bg, 1, 0, 1) }, perfectRootBytes(ref, 0, 256), nil},
		{"Level1TileTooWide", func() ([]byte, error) { return l.ReadTile(bg, 1, 0, 2) }, nil, ErrNotFound},
		{"Level2Tile", func() ([]byte, error) { return l.ReadTile(bg, 2, 0, 1) }, nil, ErrNotFound},
		{"TileWidth256", func() ([]byte, error) { return l.ReadTile(bg, 0, 0, 256) }, nil, ErrInvalidArgument},
		{"TileWidthNegative", func() ([]byte, error) { return l.ReadTile(bg, 0, 0, -1) }, nil, ErrInvalidArgument},
		{"BundlePrefix", func() ([]byte, error) { return l.ReadEntryBundle(bg, 1, 3) }, bundlePrefix(bundle, 3), nil},
		{"BundleBeyondStoredWidth", func() ([]byte, error) { return l.ReadEntryBundle(bg, 1, 45) }, nil, ErrNotFound},
		{"PartialBundleReadAsFull", func() ([]byte, error) { return l.ReadEntryBundle(bg, 1, 0) }, nil, ErrNotFound},
		{"BundleNotYetStarted", func() ([]byte, error) { return l.ReadEntryBundle(bg, 2, 1) }, nil, ErrNotFound},
		{"BundleWidth256", func() ([]byte, error) { return l.ReadEntryBundle(bg, 0, 256) }, nil, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read()
			if tc.error != nil {
				if !errors.Is(err, tc.error) {
					t.Errorf("read = %x, %v; want %v", got, err, tc.error)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("read = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

func perfectRootBytes(ref *reftree.Tree, first, n int64) []byte {
	h := perfectRoot(ref, first, n)
	return h[:]
}

// bundlePrefix returns the first n entries of a bundle, parsed by hand.
func bundlePrefix(b []byte, n int) []byte {
	off := 0
	for range n {
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	return b[:off]
}

func TestInclusionProofByLeafHash(t *testing.T) {
	l, _ := newTestLedger(t)
	ref := &reftree.Tree{}
	data := [][]byte{[]byte("a"), []byte("b"), []byte("dup"), []byte("c"), []byte("dup"), []byte("d")}
	appendData(t, l, data[:3]...)
	appendData(t, l, data[3:]...)
	ref.Add(t, data...)
	size := ref.Size()
	root := ref.Root(t, size)

	tests := []struct {
		data  string
		size  uint64
		want  uint64
		error error
	}{
		{"a", size, 0, nil},
		{"d", size, 5, nil},
		{"dup", size, 2, nil}, // the first of two
		{"dup", 3, 2, nil},
		{"dup", 2, 0, ErrNotFound}, // not yet in the tree of size 2
		{"c", 3, 0, ErrNotFound},
		{"never appended", size, 0, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s@%d", tc.data, tc.size), func(t *testing.T) {
			leaf := rfc6962.DefaultHasher.HashLeaf([]byte(tc.data))
			got, err := l.IndexOf(bg, leaf, tc.size)
			if tc.error != nil {
				if !errors.Is(err, tc.error) {
					t.Errorf("IndexOf(%q, %d) = %d, %v; want %v", tc.data, tc.size, got, err, tc.error)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("IndexOf(%q, %d) = %d, %v; want %d", tc.data, tc.size, got, err, tc.want)
			}
			r := ref.Root(t, tc.size)
			if tc.size == size {
				r = root
			}
			checkInclusion(t, l, ref, got, tc.size, r)
		})
	}
	if _, err := l.IndexOf(bg, make([]byte, 31), size); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("IndexOf(31-byte hash) = %v, want ErrInvalidArgument", err)
	}
}

func TestProofArgumentErrors(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 10, 10)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"InclusionIndexEqualsSize", func() error { _, err := l.InclusionProof(bg, 10, 10); return err }, ErrInvalidArgument},
		{"InclusionIndexBeyondSize", func() error { _, err := l.InclusionProof(bg, 7, 5); return err }, ErrInvalidArgument},
		{"InclusionSizeBeyondTree", func() error { _, err := l.InclusionProof(bg, 0, 11); return err }, ErrInvalidArgument},
		{"InclusionEmptyTree", func() error { _, err := l.InclusionProof(bg, 0, 0); return err }, ErrInvalidArgument},
		{"ConsistencyFromZero", func() error { _, err := l.ConsistencyProof(bg, 0, 5); return err }, ErrInvalidArgument},
		{"ConsistencyFromAfterTo", func() error { _, err := l.ConsistencyProof(bg, 6, 5); return err }, ErrInvalidArgument},
		{"ConsistencyToBeyondTree", func() error { _, err := l.ConsistencyProof(bg, 5, 11); return err }, ErrInvalidArgument},
		{"RootBeyondTree", func() error { _, err := l.RootAt(bg, 11); return err }, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustErrIs(t, tc.name, tc.call(), tc.want)
		})
	}
}

func TestRootAtZeroIsEmptyRoot(t *testing.T) {
	l, _ := newTestLedger(t)
	want := reftree.EmptyRoot()
	if _, root := l.Size(); !bytes.Equal(root, want[:]) {
		t.Errorf("Size() root of a new log = %x, want %x", root, want)
	}
	appendN(t, l, 0, 3, 3)
	got, err := l.RootAt(bg, 0)
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Errorf("RootAt(0) = %x, %v; want %x", got, err, want)
	}
}

// TestHashChildren: the sequencer's node hash is RFC 6962's, as the
// transparency-dev hasher computes it, for hashes and for other lengths.
func TestHashChildren(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{32, 32}, {32, 32}, {0, 0}, {31, 33}, {64, 1}} {
		l, r := make([]byte, n[0]), make([]byte, n[1])
		for i := range l {
			l[i] = byte(rnd.Uint32())
		}
		for i := range r {
			r[i] = byte(rnd.Uint32())
		}
		if got, want := hashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Fatalf("hashChildren(%d bytes, %d bytes) = %x, want %x", n[0], n[1], got, want)
		}
	}
}
