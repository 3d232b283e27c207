package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestAppendTile: AppendTile answers exactly what ReadTile does, for
// every tile and width, read in order (through the read-ahead windows),
// backwards, at random and concurrently; and keeps what dst held.
func TestAppendTile(t *testing.T) {
	l, _ := newTestLedger(t)
	const size = 100*TileWidth + 37 // 100 full level-0 tiles, a partial one
	appendN(t, l, 0, size, 4096)

	check := func(t *testing.T, level uint8, index uint64, width int) {
		t.Helper()
		want, werr := l.ReadTile(bg, level, index, width)
		prefix := []byte("prefix")
		got, err := l.AppendTile(bg, level, index, width, append(make([]byte, 0, 64), prefix...))
		if (err == nil) != (werr == nil) || werr != nil && !sameSentinel(err, werr) {
			t.Fatalf("AppendTile(%d, %d, %d) error %v, ReadTile's %v", level, index, width, err, werr)
		}
		if werr != nil {
			if !bytes.Equal(got, prefix) {
				t.Fatalf("AppendTile(%d, %d, %d) failed and changed dst to %q", level, index, width, got)
			}
			return
		}
		if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("AppendTile(%d, %d, %d) differs from ReadTile (%d bytes vs %d)", level, index, width, len(got)-len(prefix), len(want))
		}
	}
	t.Run("in order", func(t *testing.T) {
		for i := range uint64(102) {
			check(t, 0, i, 0)
		}
		check(t, 0, 100, 37)
		check(t, 1, 0, 100)
		check(t, 1, 0, 0)
	})
	t.Run("backwards", func(t *testing.T) {
		for i := int64(101); i >= 0; i-- {
			check(t, 0, uint64(i), 0)
		}
	})
	t.Run("random", func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for range 2000 {
			level := uint8(r.IntN(3))
			width := 0
			if r.IntN(4) == 0 {
				width = r.IntN(TileWidth+1) - 1 // -1 and 256 are invalid
			}
			check(t, level, uint64(r.IntN(104)), width)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		// Eight readers of consecutive tiles, as audit --full reads them.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range uint64(8) {
			wg.Go(func() {
				for i := w; i < 100; i += 8 {
					want, _ := l.ReadTile(bg, 0, i, 0)
					got, err := l.AppendTile(bg, 0, i, 0, nil)
					if err != nil || !bytes.Equal(got, want) {
						errs <- fmt.Errorf("tile 0/%d: %v, equal %v", i, err, bytes.Equal(got, want))
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{ErrNotFound, ErrInvalidArgument, ErrCorrupt, ErrClosed} {
		if errors.Is(b, s) {
			return errors.Is(a, s)
		}
	}
	return false
}

// BenchmarkAppendTile: serving full level-0 tiles in order (read ahead)
// or one at a time, and ReadTile.
//
//	go test -run X -bench AppendTile -benchmem ./ledger
func BenchmarkAppendTile(b *testing.B) {
	l, _ := newTestLedger(b)
	const tiles = 64
	appendN(b, l, 0, tiles*TileWidth, 4096)
	b.Run("in-order", func(b *testing.B) {
		buf := make([]byte, 0, TileWidth*hashSize)
		var i uint64
		for b.Loop() {
			var err error
			if buf, err = l.AppendTile(bg, 0, i%tiles, 0, buf[:0]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("lookup", func(b *testing.B) {
		buf := make([]byte, 0, TileWidth*hashSize)
		var i uint64
		for b.Loop() {
			var err error
			// Strides of 37 tiles: not in order.
			if buf, err = l.AppendTile(bg, 0, (i*37)%tiles, 0, buf[:0]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("ReadTile", func(b *testing.B) {
		var i uint64
		for b.Loop() {
			if _, err := l.ReadTile(bg, 0, i%tiles, 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
