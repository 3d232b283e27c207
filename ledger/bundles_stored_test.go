package ledger

import (
	"bytes"
	"errors"
	"testing"
)

// TestReadEntryBundleStored: a full bundle's stored form decompresses to
// exactly what ReadEntryBundle serves and is appended to dst; a bundle
// that is not full in the durable tree is ErrNotFound.
func TestReadEntryBundleStored(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 600, 100) // bundles 0 and 1 full, bundle 2 holds 88
	for _, index := range []uint64{0, 1} {
		want, err := l.ReadEntryBundle(bg, index, 0)
		if err != nil {
			t.Fatalf("ReadEntryBundle(%d, 0) = %v", index, err)
		}
		dst := []byte("prefix")
		got, compressed, err := l.ReadEntryBundleStored(bg, index, dst)
		if err != nil || !compressed || !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("ReadEntryBundleStored(%d) = %d bytes, %v, %v; want a zstd frame after dst", index, len(got), compressed, err)
		}
		raw, err := zstdDecoder.DecodeAll(got[len("prefix"):], nil)
		if err != nil || !bytes.Equal(raw, want) {
			t.Fatalf("ReadEntryBundleStored(%d) decompresses to %d bytes (%v), want the %d of ReadEntryBundle", index, len(raw), err, len(want))
		}
		if len(got)-len("prefix") >= len(want) {
			t.Errorf("ReadEntryBundleStored(%d) = %d bytes, not smaller than the %d uncompressed", index, len(got)-len("prefix"), len(want))
		}
	}
	for _, index := range []uint64{2, 3, 1 << 60} {
		if got, _, err := l.ReadEntryBundleStored(bg, index, []byte("x")); !errors.Is(err, ErrNotFound) || string(got) != "x" {
			t.Errorf("ReadEntryBundleStored(%d) = %q, %v; want dst and ErrNotFound", index, got, err)
		}
	}
}

func TestStoredBundle(t *testing.T) {
	for _, tc := range []struct {
		stored     []byte
		payload    string
		compressed bool
		err        error
	}{
		{[]byte{codecRaw, 'a', 'b'}, "ab", false, nil},
		{[]byte{codecZstd, 'z'}, "z", true, nil},
		{nil, "", false, ErrCorrupt},
		{[]byte{7, 'a'}, "", false, ErrCorrupt},
	} {
		p, c, err := storedBundle(tc.stored)
		if string(p) != tc.payload || c != tc.compressed || !errors.Is(err, tc.err) {
			t.Errorf("storedBundle(%q) = %q, %v, %v; want %q, %v, %v", tc.stored, p, c, err, tc.payload, tc.compressed, tc.err)
		}
	}
}
