package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/internal/reftree"
)

// editLive applies edit to the storage of the open ledger l, in one
// transaction, as a disk or an intruder would: behind its back.
func editLive(t *testing.T, l *Ledger, edit func(*badger.Txn) error) {
	t.Helper()
	if err := l.db.Update(edit); err != nil {
		t.Fatalf("editing storage: %v", err)
	}
}

// changeValue replaces the value under key with f(a copy of it).
func changeValue(key []byte, f func([]byte) []byte) func(*badger.Txn) error {
	return func(txn *badger.Txn) error {
		v, err := get(txn, key)
		if err != nil {
			return fmt.Errorf("reading %q: %w", key, err)
		}
		return txn.Set(key, f(v))
	}
}

func removeKeys(keys ...[]byte) func(*badger.Txn) error {
	return func(txn *badger.Txn) error {
		for _, k := range keys {
			if _, err := txn.Get(k); err != nil {
				return fmt.Errorf("reading %q: %w", k, err)
			}
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}
}

// chunkKeysOf returns the keys of the stored chunks of an edge bundle.
func chunkKeysOf(t *testing.T, l *Ledger, bundle uint64) [][]byte {
	t.Helper()
	var keys [][]byte
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = chunkPrefix(bundle)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		t.Fatalf("listing the chunks of bundle %d: %d found, err %v", bundle, len(keys), err)
	}
	return keys
}

// alterEntry changes one byte in the middle of entry i where it is stored:
// inside its full bundle (decompressed, edited, stored again) or inside the
// chunk of the edge bundle that holds it. The framing stays intact.
func alterEntry(i uint64) func(*badger.Txn) error {
	flip := func(b []byte, k int) []byte {
		ends, err := entryEnds(b)
		if err != nil || k >= len(ends) {
			panic(fmt.Sprintf("entry %d not in %d entries (%v)", k, len(ends), err))
		}
		e := entryAt(b, ends, k)
		e[len(e)/2] ^= 0x20
		return b
	}
	return func(txn *badger.Txn) error {
		bundle, k := i/TileWidth, int(i%TileWidth)
		if _, err := txn.Get(bundleKey(bundle)); err == nil {
			return changeValue(bundleKey(bundle), func(stored []byte) []byte {
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
			if _, err := txn.Get(chunkKey(bundle, f)); err == nil {
				first = f
			}
		}
		if first < 0 {
			return fmt.Errorf("no chunk holds entry %d", i)
		}
		return changeValue(chunkKey(bundle, first), func(stored []byte) []byte {
			raw, err := appendStored(nil, stored)
			if err != nil {
				panic(err)
			}
			return encodeBundle(flip(raw, k-first))
		})(txn)
	}
}

// alterTileHash changes one byte of hash k of a stored tile. Applied twice,
// it restores the tile.
func alterTileHash(level uint8, index uint64, k int) func(*badger.Txn) error {
	return changeValue(tileKey(level, index), func(t []byte) []byte {
		t[k*hashSize+5] ^= 0x01
		return t
	})
}

// tilesOf returns how many tiles, of every level, the tree of size n has.
func tilesOf(n uint64) uint64 {
	var tiles uint64
	for nodes := n; nodes > 0; nodes >>= TileHeight {
		tiles += (nodes + TileWidth - 1) / TileWidth
	}
	return tiles
}

// signNow signs a checkpoint over everything appended so far.
func signNow(t *testing.T, l *Ledger) *Checkpoint {
	t.Helper()
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatalf("SignCheckpoint() = %v", err)
	}
	return cp
}

// mustAuditClean runs SelfAudit and fails unless it passes over the
// whole checkpoint cp.
func mustAuditClean(t *testing.T, l *Ledger, cp *Checkpoint) SelfAuditReport {
	t.Helper()
	rep, err := l.SelfAudit(bg)
	if err != nil {
		t.Fatalf("SelfAudit() at size %d = %v", cp.Size, err)
	}
	want := SelfAuditReport{
		Size: cp.Size, Root: cp.Hash, Leaves: cp.Size, Bundles: (cp.Size + TileWidth - 1) / TileWidth,
		Tiles: tilesOf(cp.Size), Duration: rep.Duration, Clean: true,
	}
	if rep.Size != want.Size || !bytes.Equal(rep.Root, want.Root) || rep.Leaves != want.Leaves ||
		rep.Bundles != want.Bundles || rep.Tiles != want.Tiles || !rep.Clean || rep.Failure != nil {
		t.Errorf("SelfAudit() = %+v, want %+v", rep, want)
	}
	return rep
}

func TestSelfAuditCleanLog(t *testing.T) {
	l, _ := newTestLedger(t)
	ref := &reftree.Tree{}

	rep := mustAuditClean(t, l, l.Latest())
	if empty := reftree.EmptyRoot(); !bytes.Equal(rep.Root, empty[:]) {
		t.Errorf("SelfAudit() of the empty log: root %x, want %x", rep.Root, empty)
	}
	if s := rep.String(); !strings.HasPrefix(s, "self-audit result=ok size=0 leaves=0 ") {
		t.Errorf("SelfAuditReport.String() = %q, want a clean line", s)
	}

	// Edge bundles of many widths, full bundles and tiles, a partial
	// level-1 tile; batches of 100 leave edge bundles of several chunks.
	for _, n := range []int{1, 254, 1, 256, 300, 700, 1488} {
		first := int(ref.Size())
		appendN(t, l, first, n, 100)
		addN(t, ref, first, n)
		cp := signNow(t, l)
		rep := mustAuditClean(t, l, cp)
		if want := ref.Root(t, cp.Size); !bytes.Equal(rep.Root, want[:]) {
			t.Errorf("SelfAudit() at size %d: root %x, want %x (reference tree)", cp.Size, rep.Root, want)
		}
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() after clean audits = %v, want nil", err)
	}
	if rep, _ := l.SelfAudit(bg); !strings.Contains(rep.String(), " size=3000 leaves=3000 bundles=12 tiles=13 ") {
		t.Errorf("SelfAuditReport.String() = %q, want size, leaves, bundles and tiles", rep.String())
	}
}

// oldEdgeHashes stores the leaf hashes of the corruption tests' edge
// tile, 0/11, as chunks, as earlier versions did (one per chunk of the
// edge bundle: entries 0-83 and 84-183), after edit has changed them.
// The audit checks the entries against them while they are there.
func oldEdgeHashes(edit func(c0, c84 []byte) ([]byte, []byte)) func(*badger.Txn) error {
	return func(txn *badger.Txn) error {
		c0, c84 := edit(leafHashes(11*TileWidth, 84), leafHashes(11*TileWidth+84, 100))
		if err := txn.Set(rawHashChunkKey(11, 0), c0); err != nil {
			return err
		}
		return txn.Set(rawHashChunkKey(11, 84), c84)
	}
}

// TestSelfAuditTakesOldEdgeHashes: the hash chunks of the edge tile an
// earlier version stored, intact, pass the audit.
func TestSelfAuditTakesOldEdgeHashes(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, corruptLogSize, 100)
	cp := signNow(t, l)
	editLive(t, l, oldEdgeHashes(func(c0, c84 []byte) ([]byte, []byte) { return c0, c84 }))
	mustAuditClean(t, l, cp)
}

// corruptLogSize is the size of the log the corruption tests damage: 11
// full bundles and a partial one of 184 entries (two chunks, from first
// entries 0 and 84), and level-1 tile 0 with 11 hashes.
const corruptLogSize = 3000

func TestSelfAuditDetectsCorruption(t *testing.T) {
	tests := []struct {
		name string
		// edit damages storage; cfg is the ledger's.
		edit func(t *testing.T, l *Ledger, cfg Config) func(*badger.Txn) error
		want IntegrityError // Detail is not compared
	}{
		{"EntryByteInFullBundle", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return alterEntry(300) },
			IntegrityError{Record: IntegrityBundle, Index: 1, Offset: 44}},
		{"EntryByteInEdgeBundle", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return alterEntry(2950) },
			IntegrityError{Record: IntegrityBundle, Index: 11, Offset: 134}},
		{"Level0TileHash", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return alterTileHash(0, 2, 7) },
			IntegrityError{Record: IntegrityTile, Level: 0, Index: 2, Offset: 7}},
		{"Level0EdgeTileHash", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return oldEdgeHashes(func(c0, c84 []byte) ([]byte, []byte) {
				c0[3*hashSize+5] ^= 0x01
				return c0, c84
			})
		},
			IntegrityError{Record: IntegrityTile, Level: 0, Index: 11, Offset: 3}},
		{"Level1TileHash", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return alterTileHash(1, 0, 5) },
			IntegrityError{Record: IntegrityTile, Level: 1, Index: 0, Offset: 5}},
		{"BundleMissing", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return removeKeys(bundleKey(4)) },
			IntegrityError{Record: IntegrityBundle, Index: 4, Offset: -1}},
		{"EdgeBundleMissing", func(t *testing.T, l *Ledger, _ Config) func(*badger.Txn) error {
			return removeKeys(chunkKeysOf(t, l, 11)...)
		}, IntegrityError{Record: IntegrityBundle, Index: 11, Offset: -1}},
		{"EdgeBundleChunkMissing", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return removeKeys(chunkKey(11, 84))
		}, IntegrityError{Record: IntegrityBundle, Index: 11, Offset: -1}},
		{"CompressedBundleGarbled", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return changeValue(bundleKey(3), func(b []byte) []byte {
				if b[0] != codecZstd {
					panic("bundle 3 is not compressed")
				}
				b[len(b)/2] ^= 0x01
				return b
			})
		}, IntegrityError{Record: IntegrityBundle, Index: 3, Offset: -1}},
		{"TileMissing", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return removeKeys(tileKey(0, 6)) },
			IntegrityError{Record: IntegrityTile, Level: 0, Index: 6, Offset: -1}},
		{"Level1TileMissing", func(*testing.T, *Ledger, Config) func(*badger.Txn) error { return removeKeys(tileKey(1, 0)) },
			IntegrityError{Record: IntegrityTile, Level: 1, Index: 0, Offset: -1}},
		{"EdgeTileTruncated", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return oldEdgeHashes(func(c0, c84 []byte) ([]byte, []byte) { return c0, c84[:16*hashSize] })
		}, IntegrityError{Record: IntegrityTile, Level: 0, Index: 11, Offset: -1}},
		{"EdgeTileHashChunkMalformed", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return oldEdgeHashes(func(c0, c84 []byte) ([]byte, []byte) { return c0[:len(c0)-1], c84 })
		}, IntegrityError{Record: IntegrityTile, Level: 0, Index: 11, Offset: -1}},
		{"CheckpointSignature", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return changeValue(checkpointKey(corruptLogSize), func(b []byte) []byte {
				b[len(b)-5] ^= 0x01
				return b
			})
		}, IntegrityError{Record: IntegrityCheckpoint, Index: corruptLogSize, Offset: -1}},
		{"LatestCheckpointMissing", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return removeKeys(checkpointKey(corruptLogSize))
		}, IntegrityError{Record: IntegrityCheckpoint, Index: corruptLogSize, Offset: -1}},
		{"CheckpointSignedOverWrongRoot", func(t *testing.T, _ *Ledger, cfg Config) func(*badger.Txn) error {
			body := log.Checkpoint{Origin: cfg.Origin, Size: corruptLogSize, Hash: bytes.Repeat([]byte{7}, hashSize)}.Marshal()
			signed, err := note.Sign(&note.Note{Text: string(body)}, cfg.Signer)
			if err != nil {
				t.Fatalf("note.Sign() = %v", err)
			}
			return changeValue(checkpointKey(corruptLogSize), func([]byte) []byte { return signed })
		}, IntegrityError{Record: IntegrityCheckpoint, Index: corruptLogSize, Offset: -1}},
		{"TreeSizeBelowCheckpoint", func(*testing.T, *Ledger, Config) func(*badger.Txn) error {
			return changeValue(keySize, func([]byte) []byte { return encodeUint64(corruptLogSize - 1) })
		}, IntegrityError{Record: IntegrityTreeSize, Offset: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, cfg := newTestLedger(t)
			appendN(t, l, 0, corruptLogSize, 100)
			mustAuditClean(t, l, signNow(t, l))

			editLive(t, l, tc.edit(t, l, cfg))
			rep, err := l.SelfAudit(bg)
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("SelfAudit() after %s = %v, want ErrIntegrity", tc.name, err)
			}
			var ie *IntegrityError
			if !errors.As(err, &ie) {
				t.Fatalf("SelfAudit() = %v, want an *IntegrityError", err)
			}
			got := *ie
			got.Detail = ""
			if got != tc.want {
				t.Errorf("SelfAudit() failed at %+v (%v), want %+v (%s)", got, ie, tc.want, tc.want.Place())
			}
			if !strings.Contains(err.Error(), tc.want.Place()+":") {
				t.Errorf("SelfAudit() = %q, want it to name %q", err, tc.want.Place())
			}
			if rep.Failure != ie || rep.Clean || rep.Size != corruptLogSize {
				t.Errorf("SelfAudit() report = %+v, want Failure %v, not Clean, Size %d", rep, ie, corruptLogSize)
			}
			if s := rep.String(); !strings.Contains(s, "result=integrity_failure") || !strings.Contains(s, fmt.Sprintf("at=%q", tc.want.Place())) {
				t.Errorf("SelfAuditReport.String() = %q, want the failure and its place", s)
			}
			t.Logf("%v", err)

			herr := l.Healthy()
			var hie *IntegrityError
			if !errors.Is(herr, ErrIntegrity) || !errors.As(herr, &hie) || hie != ie {
				t.Errorf("Healthy() after a failed audit = %v, want %v", herr, ie)
			}
			// Appends and signing go on; the ledger stays unhealthy.
			appendN(t, l, corruptLogSize, 10, 10)
			signNow(t, l)
			if err := l.Healthy(); !errors.Is(err, ErrIntegrity) {
				t.Errorf("Healthy() after appending = %v, want ErrIntegrity", err)
			}
		})
	}
}

func TestSelfAuditFailureLastsUntilRestart(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, corruptLogSize, 1000)
	cp := signNow(t, l)

	editLive(t, l, alterTileHash(0, 2, 7))
	if _, err := l.SelfAudit(bg); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("SelfAudit() after changing tile 0/2 = %v, want ErrIntegrity", err)
	}
	editLive(t, l, alterTileHash(0, 2, 7)) // repaired
	mustAuditClean(t, l, cp)
	if err := l.Healthy(); !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "tile 0/2 hash 7") {
		t.Errorf("Healthy() after a failed then a clean audit = %v, want the first failure (tile 0/2 hash 7)", err)
	}

	closeLedger(t, l)
	l = openTestLedger(t, cfg)
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() after restart = %v, want nil", err)
	}
	mustAuditClean(t, l, l.Latest())
}

// TestSelfAuditLevel2 audits a log with a level-2 tile: 257 full bundles
// and a partial one, level-1 tiles 0 (full) and 1 (one hash), level-2
// tile 0 (one hash).
func TestSelfAuditLevel2(t *testing.T) {
	const size = TileWidth*TileWidth + 300
	l, _ := newTestLedger(t)
	appendN(t, l, 0, size, 4096)
	cp := signNow(t, l)
	if rep := mustAuditClean(t, l, cp); rep.Tiles != 258+2+1 {
		t.Errorf("SelfAudit() checked %d tiles, want 261", rep.Tiles)
	}
	for _, tc := range []struct {
		level uint8
		index uint64
		k     int
	}{{1, 0, 200}, {1, 0, 255}, {1, 1, 0}, {2, 0, 0}} {
		editLive(t, l, alterTileHash(tc.level, tc.index, tc.k))
		_, err := l.SelfAudit(bg)
		want := IntegrityError{Record: IntegrityTile, Level: tc.level, Index: tc.index, Offset: tc.k}
		var ie *IntegrityError
		if !errors.As(err, &ie) || ie.Record != want.Record || ie.Level != want.Level || ie.Index != want.Index || ie.Offset != want.Offset {
			t.Errorf("SelfAudit() after changing %s = %v, want a failure there", want.Place(), err)
		}
		editLive(t, l, alterTileHash(tc.level, tc.index, tc.k)) // repaired
	}
	mustAuditClean(t, l, cp)
}

// errAfter is a context whose Err reports cancellation from its n+1-th
// call on: a cancellation at a known point of an audit.
type errAfter struct {
	context.Context
	n atomic.Int64
}

func (c *errAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestSelfAuditCancel(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 5*auditChunk*TileWidth, 4096)
	cp := signNow(t, l)

	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := l.SelfAudit(ctx); err != context.Canceled {
		t.Errorf("SelfAudit(cancelled ctx) = %v, want %v", err, context.Canceled)
	}

	// Cancelled at the third pause: after two chunks.
	ctx = &errAfter{Context: bg}
	ctx.(*errAfter).n.Store(3)
	rep, err := l.SelfAudit(ctx)
	if err != context.Canceled {
		t.Errorf("SelfAudit(ctx cancelled during the audit) = %v, want %v", err, context.Canceled)
	}
	if want := uint64(2 * auditChunk * TileWidth); rep.Leaves != want || rep.Clean || rep.Failure != nil {
		t.Errorf("SelfAudit(ctx cancelled during the audit) = %+v, want %d leaves, not clean, no failure", rep, want)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() after cancelled audits = %v, want nil", err)
	}
	mustAuditClean(t, l, cp)

	closeLedger(t, l)
	if _, err := l.SelfAudit(bg); !errors.Is(err, ErrClosed) {
		t.Errorf("SelfAudit() after Close = %v, want ErrClosed", err)
	}
}

// TestSelfAuditDuringAppends audits again and again while appends and
// checkpoints go on: every audit covers the checkpoint it started from,
// and passes, whatever the log grew to meanwhile.
func TestSelfAuditDuringAppends(t *testing.T) {
	l, _ := newTestLedger(t, func(c *Config) { c.CheckpointInterval = 2 * time.Millisecond })
	appendN(t, l, 0, 500, 500)
	const target = 30_000

	var wg sync.WaitGroup
	var appended atomic.Int64
	appended.Store(500)
	stop := make(chan struct{})
	wg.Go(func() {
		for n := 1; ; n = n*7%301 + 1 {
			select {
			case <-stop:
				return
			default:
			}
			first := int(appended.Load())
			if first >= target {
				return
			}
			data := make([]Entry, n)
			for i := range data {
				data[i] = Entry{Data: entryData(first + i)}
			}
			if _, err := l.Append(bg, data...); err != nil {
				t.Errorf("Append(%d entries) = %v", n, err)
				return
			}
			appended.Add(int64(n))
		}
	})
	audits, behind := 0, 0
	for appended.Load() < target && !t.Failed() {
		rep, err := l.SelfAudit(bg)
		if err != nil {
			t.Errorf("SelfAudit() during appends = %v", err)
			break
		}
		if !rep.Clean || rep.Leaves != rep.Size || rep.Tiles != tilesOf(rep.Size) {
			t.Errorf("SelfAudit() during appends = %+v, want clean over the whole checkpoint", rep)
		}
		if size, _ := l.Size(); size > rep.Size {
			behind++
		}
		audits++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d audits while the log grew to %d entries; %d ended with the log ahead of the checkpoint audited", audits, appended.Load(), behind)
	if audits < 3 {
		t.Errorf("only %d audits ran during the appends", audits)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() = %v, want nil", err)
	}
}
