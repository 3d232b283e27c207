package ledger

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestAppendEntryBundleStored: AppendEntryBundleStored answers exactly
// what ReadEntryBundleStored does, read in order (through the read-ahead
// window), backwards, beyond the log, and concurrently.
func TestAppendEntryBundleStored(t *testing.T) {
	l, _ := newTestLedger(t)
	const bundles = 70
	appendN(t, l, 0, bundles*TileWidth+5, 4096)
	check := func(t *testing.T, index uint64) {
		t.Helper()
		want, wz, werr := l.ReadEntryBundleStored(bg, index, nil)
		got, z, err := l.AppendEntryBundleStored(bg, index, []byte("prefix"))
		if (err == nil) != (werr == nil) || werr != nil && !sameSentinel(err, werr) {
			t.Fatalf("AppendEntryBundleStored(%d) error %v, ReadEntryBundleStored's %v", index, err, werr)
		}
		if werr == nil && (!bytes.Equal(got, append([]byte("prefix"), want...)) || z != wz) {
			t.Fatalf("AppendEntryBundleStored(%d) = %d bytes (zstd %v), want %d bytes (zstd %v)", index, len(got)-6, z, len(want), wz)
		}
	}
	for i := range uint64(bundles + 2) {
		check(t, i)
	}
	for i := int64(bundles + 1); i >= 0; i-- {
		check(t, uint64(i))
	}
	for i := uint64(0); i < bundles+2; i += 3 {
		check(t, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range uint64(8) {
		wg.Go(func() {
			for i := w; i < bundles; i += 8 {
				want, _, _ := l.ReadEntryBundleStored(bg, i, nil)
				got, _, err := l.AppendEntryBundleStored(bg, i, nil)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("bundle %d: %v, equal %v", i, err, bytes.Equal(got, want))
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
}
