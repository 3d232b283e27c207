//go:build !unix

package ledger

import "math"

// freeSpace reports unlimited space where it cannot be measured.
func freeSpace(dir string) (uint64, error) { return math.MaxUint64, nil }
