//go:build unix

package ledger

import (
	"os"

	"golang.org/x/sys/unix"
)

// removed reports whether the open file f has no name left: it, or its
// directory, was deleted. A file that cannot be examined is not reported.
func removed(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Nlink == 0
}
