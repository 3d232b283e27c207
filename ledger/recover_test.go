package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessledger/accessledger/internal/reftree"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// The storage keys, spelled out as documented in keys.go rather than
// taken from the code under test.
func rawBundleKey(n uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'b'}, n) }
func rawChunkKey(n uint64, first int) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{'q'}, n), byte(first))
}
func rawLegacyChunkKey(n uint64, first int) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{'p'}, n), byte(first))
}
func rawTileKey(level uint8, n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'t', level}, n)
}
func rawCheckpointKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'c'}, size)
}

var (
	rawSizeKey     = []byte("msize")
	rawLatestCPKey = []byte("mcheckpoint")
)

// editStore opens the closed ledger's Badger directory directly and runs
// edit in one read-write transaction.
func editStore(t *testing.T, dir string, edit func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatalf("badger.Open(%s) = %v", dir, err)
	}
	if err := db.Update(edit); err != nil {
		db.Close()
		t.Fatalf("editing storage: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("closing storage: %v", err)
	}
}

// editedCopy copies the closed log of template to a directory of its
// own, edits its storage there (see editStore) and returns its Config.
func editedCopy(t *testing.T, template Config, edit func(txn *badger.Txn) error) Config {
	t.Helper()
	cfg := template
	cfg.Dir = filepath.Join(t.TempDir(), "log")
	copyDir(t, template.Dir, cfg.Dir)
	editStore(t, cfg.Dir, edit)
	return cfg
}

// rewrite replaces the value of key with f(value).
func rewrite(key []byte, f func([]byte) []byte) func(*badger.Txn) error {
	return func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return fmt.Errorf("reading %q: %w", key, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		return txn.Set(key, f(v))
	}
}

func deleteKey(key []byte) func(*badger.Txn) error {
	return func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err != nil {
			return fmt.Errorf("reading %q: %w", key, err)
		}
		return txn.Delete(key)
	}
}

// setSize sets the size in the size record, keeping the root it holds.
func setSize(size uint64) func(*badger.Txn) error {
	return rewrite(rawSizeKey, func(v []byte) []byte {
		binary.BigEndian.PutUint64(v, size)
		return v
	})
}

// flipEntryByte changes one byte of entry i where it is stored, leaving
// the framing intact: inside its full bundle (decompressed, edited and
// stored again) or inside the chunk of the edge bundle that holds it.
func flipEntryByte(i uint64) func(*badger.Txn) error {
	flip := func(b []byte, k int) []byte {
		off := 0
		for range k {
			off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		b[off+2+n/2] ^= 0x20
		return b
	}
	return func(txn *badger.Txn) error {
		bundle, k := i/TileWidth, int(i%TileWidth)
		if _, err := txn.Get(rawBundleKey(bundle)); err == nil {
			return rewrite(rawBundleKey(bundle), func(stored []byte) []byte {
				raw, err := decodeBundle(stored)
				if err != nil {
					panic(err)
				}
				return encodeBundle(flip(raw, k))
			})(txn)
		}
		// The chunk holding entry k is the last one starting at or before it.
		first := -1
		for f := 0; f <= k; f++ {
			if _, err := txn.Get(rawChunkKey(bundle, f)); err == nil {
				first = f
			}
		}
		if first < 0 {
			return fmt.Errorf("no chunk holds entry %d", i)
		}
		return rewriteChunk(rawChunkKey(bundle, first), func(b []byte) []byte { return flip(b, k-first) })(txn)
	}
}

// rewriteChunk replaces the entries of the chunk under key with f(entries),
// stored as chunks are (compressed).
func rewriteChunk(key []byte, f func([]byte) []byte) func(*badger.Txn) error {
	return rewrite(key, func(stored []byte) []byte {
		raw, err := appendStored(nil, stored)
		if err != nil {
			panic(err)
		}
		return encodeBundle(f(raw))
	})
}

// flipTileByte changes one byte of hash k of a tile.
func flipTileByte(level uint8, n uint64, k int) func(*badger.Txn) error {
	return rewrite(rawTileKey(level, n), func(t []byte) []byte {
		t[k*hashSize+5] ^= 0x01
		return t
	})
}

// tamperLogSize is the size of the closed log the tamper tests edit: two
// full bundles and a partial one of 88 entries.
const tamperLogSize = 600

// newClosedLog creates a log of tamperLogSize entries and closes it.
func newClosedLog(t *testing.T) Config {
	t.Helper()
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, tamperLogSize, 250)
	closeLedger(t, l)
	return cfg
}

func TestOpenDetectsTampering(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*badger.Txn) error
		quick bool   // open with QuickOpen
		msg   string // the error must mention this
	}{
		{"EntryInFirstBundle", flipEntryByte(5), false, "entry 5 "},
		{"EntryInFullBundle", flipEntryByte(300), false, "entry 300 "},
		{"LastEntryOfFullBundle", flipEntryByte(511), false, "entry 511 "},
		// The edge's level-0 tile is not stored: an edited entry there
		// is found by the root (TestOpenChecksEntriesBeyondCheckpoint
		// for entries the checkpoint does not cover).
		{"EntryInEdgeBundle", flipEntryByte(550), false, "has root"},
		{"EntryInEdgeBundleQuickOpen", flipEntryByte(550), true, "has root"},
		{"LeafHashInFullTile", flipTileByte(0, 0, 7), false, "entry 7 "},
		{"Level1TileHash", flipTileByte(1, 0, 1), false, "8/1"},
		{"Level1TileHashQuickOpen", flipTileByte(1, 0, 0), true, ""},
		{"BundleDeleted", deleteKey(rawBundleKey(1)), false, "bundle 1"},
		{"EdgeBundleDeleted", deleteKey(rawChunkKey(2, 0)), false, ""},
		{"EdgeBundleDeletedQuickOpen", deleteKey(rawChunkKey(2, 0)), true, ""},
		{"TileDeleted", deleteKey(rawTileKey(0, 1)), false, ""},
		{"TileDeletedQuickOpen", deleteKey(rawTileKey(1, 0)), true, ""},
		{"ChunkWithinSizeAfterGap", func(txn *badger.Txn) error {
			return txn.Set(rawChunkKey(2, 50), encodeBundle(appendBundleEntry(nil, []byte("extra"))))
		}, true, "does not follow"},
		{"ChunkOfFullBundleLeftOver", func(txn *badger.Txn) error {
			return txn.Set(rawChunkKey(1, 0), encodeBundle(appendBundleEntry(nil, []byte("extra"))))
		}, false, "stray chunk"},
		{"LegacyChunkOfFullBundleLeftOver", func(txn *badger.Txn) error {
			return txn.Set(rawLegacyChunkKey(1, 0), appendBundleEntry(nil, []byte("extra")))
		}, false, "stray chunk"},
		{"EntryAddedToEdgeBundle", rewriteChunk(rawChunkKey(2, 0), func(b []byte) []byte {
			return appendBundleEntry(b, []byte("extra"))
		}), false, ""},
		{"EdgeBundleTruncated", rewriteChunk(rawChunkKey(2, 0), func(b []byte) []byte { return b[:len(b)-3] }), true, ""},
		{"EdgeBundleCompressedByteFlipped", rewrite(rawChunkKey(2, 0), func(b []byte) []byte {
			b[len(b)/2] ^= 0x01
			return b
		}), true, "chunk at 0"},
		{"EdgeBundleUnknownCodec", rewrite(rawChunkKey(2, 0), func(b []byte) []byte {
			b[0] = 7
			return b
		}), true, "unknown bundle codec 7"},
		{"FullBundleCompressedByteFlipped", rewrite(rawBundleKey(1), func(b []byte) []byte {
			b[len(b)/2] ^= 0x01
			return b
		}), false, "bundle 1"},
		{"SizePlusOne", setSize(tamperLogSize + 1), false, ""},
		{"SizePlusOneQuickOpen", setSize(tamperLogSize + 1), true, ""},
		{"SizeMinusOne", setSize(tamperLogSize - 1), false, ""},
		{"SizeMinusOneQuickOpen", setSize(tamperLogSize - 1), true, ""},
		{"SizeNextBundle", setSize(tamperLogSize + TileWidth), false, ""},
		{"SizeNextBundleQuickOpen", setSize(tamperLogSize + TileWidth), true, ""},
		{"SizeMalformed", func(txn *badger.Txn) error { return txn.Set(rawSizeKey, []byte{1, 2, 3}) }, false, ""},
		{"SizeDeleted", deleteKey(rawSizeKey), false, ""},
		{"CheckpointSignatureFlipped", rewrite(rawCheckpointKey(tamperLogSize), func(b []byte) []byte {
			b[len(b)-5] ^= 0x01
			return b
		}), true, ""},
		{"LatestCheckpointRecordDeleted", deleteKey(rawLatestCPKey), true, ""},
	}
	template := newClosedLog(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := editedCopy(t, template, tc.edit)
			cfg.QuickOpen = tc.quick
			l, err := Open(bg, cfg)
			if err == nil {
				l.Close(bg)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open(QuickOpen=%v) after %s = %v, want ErrCorrupt", tc.quick, tc.name, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Open() = %q, want it to mention %q", err, tc.msg)
			}
		})
	}
}

// TestTamperedFullBundleEntryMissedByQuickOpenCaughtByFullOpen documents
// the limit of QuickOpen: it re-hashes only the edge bundle, so an edited
// entry in a full bundle goes unnoticed (and is served) until a full Open.
func TestTamperedFullBundleEntryMissedByQuickOpenCaughtByFullOpen(t *testing.T) {
	cfg := newClosedLog(t)
	editStore(t, cfg.Dir, flipEntryByte(300))

	cfg.QuickOpen = true
	l, err := Open(bg, cfg)
	if err != nil {
		t.Fatalf("Open(QuickOpen) after editing entry 300 = %v, want nil (quick open does not re-hash full bundles)", err)
	}
	data, leaf, err := l.Entry(bg, 300)
	if err != nil {
		t.Fatalf("Entry(300) = %v", err)
	}
	if bytes.Equal(data, entryData(300)) {
		t.Errorf("Entry(300) = %q, want the edited entry", data)
	}
	stored, err := l.ReadTile(bg, 0, 1, 0)
	if err != nil {
		t.Fatalf("ReadTile(0, 1, 0) = %v", err)
	}
	if bytes.Equal(leaf, stored[44*hashSize:45*hashSize]) {
		t.Errorf("edited entry 300 hashes to its stored leaf hash")
	}
	closeLedger(t, l)

	cfg.QuickOpen = false
	l, err = Open(bg, cfg)
	if err == nil {
		l.Close(bg)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry 300 ") {
		t.Errorf("Open() after editing entry 300 = %v, want ErrCorrupt naming entry 300", err)
	}
}

// TestOpenDetectsForgedCheckpoint stores a checkpoint that is properly
// signed with the log's key but commits to another tree: Open must notice
// that the stored tree does not match it.
func TestOpenDetectsForgedCheckpoint(t *testing.T) {
	for _, quick := range []bool{false, true} {
		t.Run(fmt.Sprintf("QuickOpen=%v", quick), func(t *testing.T) {
			cfg := newClosedLog(t)
			const size = 400
			body := log.Checkpoint{Origin: testOrigin, Size: size, Hash: bytes.Repeat([]byte{7}, 32)}.Marshal()
			signed, err := note.Sign(&note.Note{Text: string(body)}, cfg.Signer)
			if err != nil {
				t.Fatal(err)
			}
			editStore(t, cfg.Dir, func(txn *badger.Txn) error {
				latest := binary.BigEndian.AppendUint64(nil, size)
				latest = binary.BigEndian.AppendUint64(latest, 0)
				if err := txn.Set(rawCheckpointKey(size), signed); err != nil {
					return err
				}
				return txn.Set(rawLatestCPKey, latest)
			})
			cfg.QuickOpen = quick
			l, err := Open(bg, cfg)
			if err == nil {
				l.Close(bg)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "size 400") {
				t.Errorf("Open() with a forged checkpoint = %v, want ErrCorrupt about the tree of size 400", err)
			}
		})
	}
}

// TestCrashCopies copies the directory of a running ledger, as a crash
// would leave it, at several points, and checks that each copy opens with
// everything acknowledged before the copy and verifies in full.
func TestCrashCopies(t *testing.T) {
	l, cfg := newTestLedger(t, func(c *Config) {
		prev := c.BadgerOptions
		c.BadgerOptions = func(o badger.Options) badger.Options {
			return prev(o).WithValueLogFileSize(1 << 20)
		}
	})
	ref := &reftree.Tree{}
	type snapshot struct {
		dir        string
		size, cpAt uint64
	}
	var snaps []snapshot
	take := func(signed uint64) {
		dir := filepath.Join(t.TempDir(), "copy")
		copyDir(t, cfg.Dir, dir)
		snaps = append(snaps, snapshot{dir, ref.Size(), signed})
	}
	for _, n := range []int{1, 255, 300, 1000} {
		appendN(t, l, int(ref.Size()), n, 128)
		addN(t, ref, int(ref.Size()), n)
		take(l.Latest().Size)
		cp, err := l.SignCheckpoint(bg)
		if err != nil {
			t.Fatalf("SignCheckpoint() = %v", err)
		}
		take(cp.Size)
	}
	closeLedger(t, l)

	for _, s := range snaps {
		t.Run(fmt.Sprintf("size%d-checkpoint%d", s.size, s.cpAt), func(t *testing.T) {
			c := cfg
			c.Dir = s.dir
			l, err := Open(bg, c)
			if err != nil {
				t.Fatalf("Open(copy at size %d) = %v", s.size, err)
			}
			defer l.Close(bg)
			size, root := l.Size()
			want := ref.Root(t, s.size)
			if size != s.size || !bytes.Equal(root, want[:]) {
				t.Errorf("Size() = %d, %x; want %d, %x", size, root, s.size, want)
			}
			if got := l.Latest().Size; got != s.cpAt {
				t.Errorf("Latest().Size = %d, want %d", got, s.cpAt)
			}
			// The copy goes on from where it was.
			more := &reftree.Tree{}
			more.Add(t, ref.Data[:s.size]...)
			more.Add(t, []byte("after the crash"))
			appendData(t, l, []byte("after the crash"))
			size, root = l.Size()
			want = more.Root(t, s.size+1)
			if size != s.size+1 || !bytes.Equal(root, want[:]) {
				t.Errorf("Size() after one more append = %d, %x; want %d, %x", size, root, s.size+1, want)
			}
		})
	}
}

// copyDir copies the files of a Badger directory, except its lock file.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenDetectsTamperedRecords checks that a full Open verifies the
// records derived from the entries, the hash runs and the dedup records,
// and that QuickOpen, as documented, does not.
func TestOpenDetectsTamperedRecords(t *testing.T) {
	// Chunks of 256 entries: the 600 entries have two with runs.
	leafHash := func(i int) []byte { return rfc6962.DefaultHasher.HashLeaf(entryData(i)) }
	runKey := func(i int) []byte { return hashRunKey(uint64(i>>8), leafHash(i)[0], 0) }
	// editPair applies f to the pair of entry i in its run.
	editPair := func(i int, f func(pair []byte)) func(*badger.Txn) error {
		return rewrite(runKey(i), func(v []byte) []byte {
			for o := 0; o < len(v); o += runPairBytes {
				if binary.BigEndian.Uint16(v[o+8:]) == uint16(i%256) {
					f(v[o : o+runPairBytes])
					return v
				}
			}
			t.Fatalf("no pair of entry %d in its run", i)
			return v
		})
	}
	rawDedupKey := func(i int) []byte { return fmt.Appendf(nil, "did-%d", i) }
	tests := []struct {
		name string
		edit func(*badger.Txn) error
		msg  string
	}{
		{"HashRunDeleted", deleteKey(runKey(10)), "hash runs"},
		{"HashRunPairMoved", editPair(10, func(p []byte) {
			binary.BigEndian.PutUint16(p[8:], 11)
		}), "hash runs"},
		{"HashRunPairOtherHash", editPair(300, func(p []byte) {
			p[7] ^= 0x01 // the last byte: still in its bucket, order unchanged but for a tie
		}), "hash run"},
		{"HashRunOtherBucket", editPair(10, func(p []byte) { p[0] ^= 0x80 }), "another bucket"},
		{"HashRunBeyondCount", func(txn *badger.Txn) error {
			return txn.Set(hashRunKey(2, 0, 0), make([]byte, runPairBytes))
		}, "only 2 chunks have runs"},
		{"HashRunPartSkipped", func(txn *badger.Txn) error {
			return txn.Set(hashRunKey(0, leafHash(10)[0], 2), make([]byte, runPairBytes))
		}, "out of sequence"},
		{"HashRunTruncated", rewrite(runKey(10), func(v []byte) []byte { return v[:len(v)-1] }), "bytes"},
		{"DedupRecordOtherLeafHash", rewrite(rawDedupKey(7), func(v []byte) []byte {
			v[10] ^= 0x01 // the folded leaf hash
			return v
		}), "entry 7 "},
		{"DedupRecordOtherIndex", rewrite(rawDedupKey(7), func(v []byte) []byte {
			binary.BigEndian.PutUint64(v, 8)
			return v
		}), "entry 8 "},
		{"DedupRecordBeyondSize", rewrite(rawDedupKey(7), func(v []byte) []byte {
			binary.BigEndian.PutUint64(v, tamperLogSize)
			return v
		}), "beyond the tree size"},
		{"DedupRecordTruncated", rewrite(rawDedupKey(7), func(v []byte) []byte { return v[:20] }), "malformed"},
	}
	l, template := newTestLedger(t, func(c *Config) { c.hashRunBits = 8 })
	for i := 0; i < tamperLogSize; i += 100 {
		entries := make([]Entry, 100)
		for j := range entries {
			entries[j] = Entry{Data: entryData(i + j), DedupKey: fmt.Appendf(nil, "id-%d", i+j)}
		}
		if _, err := l.Append(bg, entries...); err != nil {
			t.Fatalf("Append() = %v", err)
		}
	}
	waitRuns(t, l, tamperLogSize>>8)
	closeLedger(t, l)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := editedCopy(t, template, tc.edit)
			l, err := Open(bg, cfg)
			if err == nil {
				l.Close(bg)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Open() after %s = %v, want ErrCorrupt mentioning %q", tc.name, err, tc.msg)
			}
			cfg.QuickOpen = true
			l, err = Open(bg, cfg)
			if err != nil {
				t.Fatalf("Open(QuickOpen) after %s = %v, want nil: quick open does not check derived records", tc.name, err)
			}
			l.Close(bg)
		})
	}
}

// TestOpenRemovesLeftoversBeyondSize checks that Open removes what the
// value-log phase of a commit that never completed may leave beyond the
// stored size (full bundles not full at that size, chunks at or beyond
// it), and that the log is then intact: such records were never
// acknowledged or signed.
func TestOpenRemovesLeftoversBeyondSize(t *testing.T) {
	leftovers := map[string][]byte{
		"BundleBeyondSize":        rawBundleKey(3),
		"EdgeBundleSealedEarly":   rawBundleKey(2),
		"ChunkOfNextBundle":       rawChunkKey(3, 0),
		"ChunkAtSize":             rawChunkKey(2, tamperLogSize%TileWidth),
		"ChunkAfterGap":           rawChunkKey(2, 100),
		"LegacyChunkOfNextBundle": rawLegacyChunkKey(3, 0),
		"LegacyChunkAtSize":       rawLegacyChunkKey(2, tamperLogSize%TileWidth),
	}
	template := newClosedLog(t)
	for name, key := range leftovers {
		for _, quick := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/QuickOpen=%v", name, quick), func(t *testing.T) {
				cfg := editedCopy(t, template, func(txn *badger.Txn) error {
					return txn.Set(key, encodeBundle(appendBundleEntry(nil, bytes.Repeat([]byte("x"), 9000))))
				})
				cfg.QuickOpen = quick
				l := openTestLedger(t, cfg)
				if size, _ := l.Size(); size != tamperLogSize {
					t.Errorf("Size() = %d, want %d", size, tamperLogSize)
				}
				res := appendData(t, l, []byte("next"))
				if res[0].Index != tamperLogSize {
					t.Errorf("Append() after the clean-up got index %d, want %d", res[0].Index, tamperLogSize)
				}
				closeLedger(t, l)
				cfg.QuickOpen = false
				l = openTestLedger(t, cfg)
				for i := range uint64(tamperLogSize) {
					if data, _, err := l.Entry(bg, i); err != nil || !bytes.Equal(data, entryData(int(i))) {
						t.Fatalf("Entry(%d) = %q, %v; want %q", i, data, err, entryData(int(i)))
					}
				}
			})
		}
	}
}
