package ledger

import (
	"math"
	"testing"
)

// TestBundleCount: size/256 rounded up, also where (size+255)/256
// overflows.
func TestBundleCount(t *testing.T) {
	for _, tc := range []struct{ size, want uint64 }{
		{0, 0}, {1, 1}, {255, 1}, {256, 1}, {257, 2}, {512, 2},
		{math.MaxUint64 - 255, 1<<56 - 1}, {math.MaxUint64 - 254, 1 << 56}, {math.MaxUint64, 1 << 56},
	} {
		if got := bundleCount(tc.size); got != tc.want {
			t.Errorf("bundleCount(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}
