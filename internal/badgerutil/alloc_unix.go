//go:build unix

package badgerutil

import (
	"io/fs"
	"syscall"
)

// allocated is the space a file occupies on disk: Badger sizes its
// value-log and memtable files at their largest when it creates them, and
// the file system allocates only what has been written.
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}
