package ledger

import (
	"bytes"
	"context"
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
		raw, n, _, err := readChunks(txn, 1)
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
