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
// files it has mapped under dir (with logsOnly, of its write-ahead logs
// and value logs only), and returns how many bytes of mappings it trimmed.
//
// Badger maps its value-log, memtable and table files (MAP_SHARED) and
// never unmaps them while open, so every page it ever wrote or read stays
// counted in the process's RSS: under a stream of 64 KiB events RSS grows
// by the bytes written, over a gigabyte a minute, though the kernel could
// reclaim those pages. trimRange hands them back to the kernel.
//
// Badger reads a memtable's write-ahead log (.mem) only when it opens,
// and a value log (.vlog) only for values above the value threshold and in
// its value-log GC, so dropping their pages costs little; its tables
// (.sst) are what lookups, iterators and compactions read, and pages
// dropped of them come back from the disk.
func trimMappings(dir string, logsOnly bool) (int64, error) {
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
		if logsOnly && !bytes.HasSuffix(fields[5], []byte(".mem")) && !bytes.HasSuffix(fields[5], []byte(".vlog")) {
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
		switch errno := trimRange(uintptr(start), uintptr(end)); errno {
		case 0:
			trimmed += int64(end - start)
		case unix.ENOMEM, unix.EINVAL:
			// Badger unmapped the file (a table compacted away, a
			// memtable flushed) since /proc/self/maps was read; or
			// the kernel predates MADV_PAGEOUT (Linux 5.4), and RSS
			// keeps counting the mapped pages.
		default:
			return trimmed, fmt.Errorf("madvise %s: %w", fields[5], errno)
		}
	}
	return trimmed, sc.Err()
}

// trimRange asks the kernel to reclaim the pages of [start, end), a range
// that held a mapping of one of the storage files when /proc/self/maps was
// read. It may hold something else by now: Badger unmaps files (a memtable
// flushed, a table compacted away) while the trimmer works, and the hole
// is where the kernel puts the next anonymous mapping: the Go runtime's
// own memory, or the stack of a new OS thread (8 MiB, from glibc, when a
// goroutine blocks in a syscall). So the advice must be harmless on any
// memory.
//
// MADV_PAGEOUT is: on a shared file mapping it removes the pages from the
// page tables and lets the kernel evict them from the page cache (a dirty
// page stays until written back; msync still syncs it), and the next
// access reads the file again; on anonymous memory it swaps pages out, or
// does nothing without swap; the contents never change. MADV_DONTNEED,
// used before, would zero anonymous memory that took the place of an
// unmapped file (TestTrimRangeKeepsAnonymousMemory). A zeroed thread stack
// kills the process by SIGSEGV without a Go traceback, when the thread
// runs the scheduler: a server died that way once under load, and could
// not be made to again. Measured, PAGEOUT costs no RSS and no throughput
// against DONTNEED (BENCHMARKS.md, "Late afternoon session").
func trimRange(start, end uintptr) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_PAGEOUT)
	return errno
}

// fileResident returns the file-backed memory in this process's page
// tables: RssFile and RssShmem, the third field of /proc/self/statm, in
// bytes. Besides Badger's mapped files it counts the executable's pages
// and its libraries', a few tens of MiB.
func fileResident() (int64, error) {
	var buf [256]byte
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	n, err := f.Read(buf[:])
	f.Close()
	if err != nil {
		return 0, err
	}
	fields := bytes.Fields(buf[:n])
	if len(fields) < 3 {
		return 0, fmt.Errorf("/proc/self/statm: %q has fewer than 3 fields", buf[:n])
	}
	pages, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
