package ledger

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// trimMappings drops from this process's page tables every page of the
// files it has mapped under dir, and returns how many bytes of mappings it
// trimmed.
//
// Badger maps its value-log, memtable and table files (MAP_SHARED) and
// never unmaps them while open, so every page it ever wrote or read stays
// counted in the process's RSS: under a stream of 64 KiB events RSS grows
// by the bytes written, over a gigabyte a minute, though the kernel could
// reclaim those pages. MADV_DONTNEED on a shared file mapping only removes
// the page-table entries: the pages stay in the page cache (dirty ones stay
// dirty and are written back as usual, msync still syncs them), and the
// next access maps them again with the file's current contents. Nothing is
// lost or changed; RSS then counts what the process really holds.
func trimMappings(dir string) (int64, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, err
	}
	prefix := []byte(abs + string(filepath.Separator))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var trimmed int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// start-end perms offset dev inode path
		line := sc.Bytes()
		fields := bytes.Fields(line)
		if len(fields) < 6 || !bytes.HasPrefix(fields[5], prefix) || len(fields[1]) < 4 || fields[1][3] != 's' {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte{'-'})
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
		switch errno {
		case 0:
			trimmed += int64(end - start)
		case unix.ENOMEM, unix.EINVAL:
			// Badger unmapped the file (a table compacted away, a
			// memtable flushed) since /proc/self/maps was read.
		default:
			return trimmed, fmt.Errorf("madvise %s: %w", fields[5], errno)
		}
	}
	return trimmed, sc.Err()
}
