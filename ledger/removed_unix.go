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

// locked reports whether another process holds the lock Badger takes on
// dir (flock on the directory): it has the database open.
func locked(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
