package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestEdgeBundleFromMemory: the edge bundle a reader gets is the one
// stored in its chunks, a read keeps its bytes while later appends extend
// and then seal the bundle, and after a reopen (nothing published yet by
// a commit) reads give the same bytes.
func TestEdgeBundleFromMemory(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 300, 7) // bundle 1 holds 44 entries
	first, err := l.ReadEntryBundle(bg, 1, 44)
	if err != nil {
		t.Fatal(err)
	}
	held := bytes.Clone(first)
	var stored []byte
	if err := l.view(func(txn *badger.Txn) error {
		raw, n, _, _, err := readChunks(txn, 1)
		if n != 44 {
			t.Errorf("chunks hold %d entries, want 44", n)
		}
		stored = raw
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, stored) {
		t.Fatalf("edge bundle read (%d bytes) differs from its stored chunks (%d bytes)", len(first), len(stored))
	}
	appendN(t, l, 300, 250, 9) // extends bundle 1, seals it, starts bundle 2
	if !bytes.Equal(first, held) {
		t.Fatal("bytes of an edge bundle already read changed when the bundle grew")
	}
	full, err := l.ReadEntryBundle(bg, 1, 0)
	if err != nil || !bytes.HasPrefix(full, held) {
		t.Fatalf("full bundle 1 (%v) does not start with the edge read earlier", err)
	}
	edge, err := l.ReadEntryBundle(bg, 2, 550-512)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(bg); err != nil {
		t.Fatal(err)
	}
	l2 := openTestLedger(t, cfg)
	again, err := l2.ReadEntryBundle(bg, 2, 550-512)
	if err != nil || !bytes.Equal(again, edge) {
		t.Fatalf("after reopening, edge bundle 2 = %d bytes (%v), want the %d read before", len(again), err, len(edge))
	}
}

// TestEdgeBundleKeepsUpWithSize: while one-entry commits follow each
// other, whatever size a reader sees, the edge bundle it reads next holds
// at least that many entries, and a follower never fails. (The edge was
// once published after the size: readers then found fewer entries than
// the size promised, and followers stopped with ErrCorrupt.)
func TestEdgeBundleKeepsUpWithSize(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	done := make(chan error, 2)
	go func() {
		for i := 0; ctx.Err() == nil && i < 3000; i++ {
			if _, err := l.Append(ctx, Entry{Data: entryData(i)}); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		cancel()
		done <- nil
	}()
	go func() {
		next := uint64(0)
		for lf, err := range l.Follow(ctx, 0) {
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				done <- fmt.Errorf("Follow at %d: %w", next, err)
				return
			}
			if lf.Index != next {
				done <- fmt.Errorf("Follow yielded %d, want %d", lf.Index, next)
				return
			}
			next++
		}
		done <- nil
	}()
	for ctx.Err() == nil {
		size, _ := l.Size()
		if w := int(size % TileWidth); w > 0 {
			if _, err := l.ReadEntryBundle(bg, size/TileWidth, w); err != nil {
				t.Fatalf("size %d, ReadEntryBundle(%d, %d) = %v", size, size/TileWidth, w, err)
			}
		}
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestEdgeChunksStoredCompressed: the edge bundle's chunks are stored
// zstd-compressed under 'q' (keys.go), and decompress to its entries.
func TestEdgeChunksStoredCompressed(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 300, 20) // bundle 1 holds 44 entries, in three chunks
	want, err := l.ReadEntryBundle(bg, 1, 44)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	stored, chunks := 0, 0
	if err := l.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'q', 0, 0, 0, 0, 0, 0, 0, 1}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if v[0] != codecZstd {
				t.Errorf("chunk %x has codec %d, want zstd", it.Item().Key(), v[0])
			}
			raw, err := zstdDecoder.DecodeAll(v[1:], nil)
			if err != nil {
				return err
			}
			got = append(got, raw...)
			stored += len(v)
			chunks++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if chunks != 3 || !bytes.Equal(got, want) {
		t.Fatalf("%d chunks decompress to %d bytes; want 3 chunks holding the %d bytes of the edge bundle", chunks, len(got), len(want))
	}
	if stored >= len(want) {
		t.Errorf("chunks take %d bytes stored, the entries %d: not compressed", stored, len(want))
	}
}

// TestEdgeChunksOfEarlierVersions: a log whose edge bundle earlier
// versions stored as uncompressed 'p' chunks opens (both ways), reads the
// same entries, continues the bundle with compressed chunks, reopens with
// both kinds, and deletes both when the bundle is sealed.
func TestEdgeChunksOfEarlierVersions(t *testing.T) {
	for _, quick := range []bool{false, true} {
		t.Run(fmt.Sprintf("QuickOpen=%v", quick), func(t *testing.T) {
			l, cfg := newTestLedger(t)
			appendN(t, l, 0, 300, 20) // bundle 1 holds 44 entries, in three chunks
			want, err := l.ReadEntryBundle(bg, 1, 44)
			if err != nil {
				t.Fatal(err)
			}
			closeLedger(t, l)
			// Store the chunks as earlier versions did.
			converted := 0
			editStore(t, cfg.Dir, func(txn *badger.Txn) error {
				for first := range TileWidth {
					item, err := txn.Get(rawChunkKey(1, first))
					if errors.Is(err, badger.ErrKeyNotFound) {
						continue
					}
					if err != nil {
						return err
					}
					v, err := item.ValueCopy(nil)
					if err != nil {
						return err
					}
					raw, err := zstdDecoder.DecodeAll(v[1:], nil)
					if err != nil {
						return err
					}
					if err := txn.Delete(rawChunkKey(1, first)); err != nil {
						return err
					}
					if err := txn.Set(rawLegacyChunkKey(1, first), raw); err != nil {
						return err
					}
					converted++
				}
				return nil
			})
			if converted != 3 {
				t.Fatalf("converted %d chunks, want 3", converted)
			}

			cfg.QuickOpen = quick
			l = openTestLedger(t, cfg)
			if got, err := l.ReadEntryBundle(bg, 1, 44); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("edge bundle from chunks of earlier versions = %d bytes (%v), want the %d stored", len(got), err, len(want))
			}
			appendN(t, l, 300, 60, 30) // two compressed chunks follow the three old ones
			want, err = l.ReadEntryBundle(bg, 1, 104)
			if err != nil {
				t.Fatal(err)
			}
			closeLedger(t, l)

			l = openTestLedger(t, cfg)
			if got, err := l.ReadEntryBundle(bg, 1, 104); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("edge bundle from both kinds of chunks = %d bytes (%v), want the %d read before", len(got), err, len(want))
			}
			appendN(t, l, 360, 200, 100) // seals bundle 1
			closeLedger(t, l)
			editStore(t, cfg.Dir, func(txn *badger.Txn) error {
				for _, prefix := range []byte{'p', 'q'} {
					it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix, 0, 0, 0, 0, 0, 0, 0, 1}})
					if it.Rewind(); it.Valid() {
						t.Errorf("chunk %x of bundle 1 left after it was sealed", it.Item().Key())
					}
					it.Close()
				}
				return nil
			})
			cfg.QuickOpen = false
			l = openTestLedger(t, cfg)
			for i := range 560 {
				if data, _, err := l.Entry(bg, uint64(i)); err != nil || !bytes.Equal(data, entryData(i)) {
					t.Fatalf("Entry(%d) = %q, %v; want %q", i, data, err, entryData(i))
				}
			}
		})
	}
}
