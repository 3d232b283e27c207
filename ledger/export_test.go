package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestReadEntryBundleInto: for every bundle and width (full bundles in
// and out of the cache, stored compressed and not, the edge bundle, which
// is stored as chunks, and bundles beyond the log), ReadEntryBundleInto
// returns exactly what ReadEntryBundle does, reusing its buffer, and does
// not fill the cache.
func TestReadEntryBundleInto(t *testing.T) {
	l, cfg := newTestLedger(t)
	// Bundle 0 incompressible (stored raw), bundles 1-2 compressed,
	// bundle 3 partial (77 entries).
	random := make([][]byte, TileWidth)
	for i := range random {
		random[i] = make([]byte, 100)
		rand.Read(random[i])
	}
	appendData(t, l, random...)
	appendN(t, l, TileWidth, 2*TileWidth+77, 100)
	for b, codec := range []byte{codecRaw, codecZstd, codecZstd} {
		if err := l.view(func(txn *badger.Txn) error {
			stored, err := get(txn, bundleKey(uint64(b)))
			if err == nil && stored[0] != codec {
				t.Errorf("bundle %d stored with codec %d, want %d", b, stored[0], codec)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	cacheBytes := cfg.BundleCacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 32 << 20
	}
	var buf []byte
	for b := uint64(0); b <= 4; b++ {
		for _, width := range []int{0, 1, 2, 76, 77, 78, 255} {
			l.bundles = newBundleCache(cacheBytes) // empty
			want, wantErr := l.ReadEntryBundle(bg, b, width)
			cached := l.bundles.Bytes() != 0
			l.bundles = newBundleCache(cacheBytes)
			for pass := range 2 {
				got, nb, err := l.ReadEntryBundleInto(bg, b, width, buf)
				buf = nb
				if (err == nil) != (wantErr == nil) || errors.Is(wantErr, ErrNotFound) != errors.Is(err, ErrNotFound) {
					t.Fatalf("bundle %d width %d pass %d: error %v, want %v", b, width, pass, err, wantErr)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("bundle %d width %d pass %d: %d bytes, not ReadEntryBundle's %d", b, width, pass, len(got), len(want))
				}
				if l.bundles.Bytes() != 0 && pass == 0 {
					t.Fatalf("bundle %d width %d: ReadEntryBundleInto filled the cache (%d bytes)", b, width, l.bundles.Bytes())
				}
				if cached && pass == 0 {
					// Now from the cache.
					if _, err := l.ReadEntryBundle(bg, b, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if cap(buf) < TileWidth*100 {
		t.Errorf("the buffer was not reused: cap %d", cap(buf))
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, _, err := l.ReadEntryBundleInto(ctx, 0, 0, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadEntryBundleInto(cancelled) = %v, want context.Canceled", err)
	}
	if _, _, err := l.ReadEntryBundleInto(bg, 0, TileWidth, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ReadEntryBundleInto(width %d) = %v, want ErrInvalidArgument", TileWidth, err)
	}
}

// BenchmarkReadEntryBundleInto reads a full bundle of 256 event-sized
// entries (about 420 bytes each) as an export does, not cached, and, for
// comparison, its level-0 hash tile: reading the tile costs about what
// zstd's checksum of the bundle does (a tenth of the read), so checking
// exported entries against the tile instead of the checksum would not
// make exports cheaper.
//
//	go test ./ledger -run '^$' -bench ReadEntryBundleInto
func BenchmarkReadEntryBundleInto(b *testing.B) {
	l, _ := newTestLedger(b, func(c *Config) { c.BundleCacheBytes = 1 })
	data := make([][]byte, TileWidth)
	for i := range data {
		data[i] = fmt.Appendf(nil, `{"kind":"event","received_at":"2026-11-27T08:26:26.344203864Z","body":{"time":"2026-11-27T08:26:25.%09dZ",`+
			`"service":"billing-api","actor":{"id":"user-%d","type":"user","session":"s%x"},"source":{"ip":"10.0.%d.%d","port":%d,`+
			`"user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0","geo":{"country":"US"}},`+
			`"action":"login","category":"authentication","outcome":"success","mfa":true,"request_id":"%016x","tenant":"acme"}}`,
			i*7919, i*31%5000, i*7, i%200, i%250, 1024+i*13, uint64(i)*0x9e3779b97f4a7c15)
	}
	appendData(b, l, data...)
	var buf []byte
	b.Run("checked", func(b *testing.B) {
		for b.Loop() {
			var err error
			if _, buf, err = l.ReadEntryBundleInto(bg, 0, 0, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tile", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.ReadTile(bg, 0, 0, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
