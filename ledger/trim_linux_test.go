package ledger

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestTrimMappingsKeepsData trims Badger's mappings while the log is
// written and read, and checks that nothing changes: every entry reads
// back, and the log reopens with full verification.
func TestTrimMappingsKeepsData(t *testing.T) {
	l, cfg := newTestLedger(t)
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 40000) }
	// Trim continuously too, while Badger flushes memtables and compacts
	// tables (unmapping files under the trimmer's feet).
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := trimMappings(cfg.Dir, false); err != nil {
				errs <- err
				return
			}
		}
	}()
	var trimmed int64
	for i := 0; i < 600; i += 20 {
		entries := make([]Entry, 20)
		for j := range entries {
			entries[j] = Entry{Data: big(i + j)}
		}
		if _, err := l.Append(bg, entries...); err != nil {
			t.Fatalf("Append() = %v", err)
		}
		n, err := trimMappings(cfg.Dir, false)
		if err != nil {
			t.Fatalf("trimMappings(%s) = %v", cfg.Dir, err)
		}
		trimmed += n
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Errorf("trimMappings(%s) while Badger works = %v", cfg.Dir, err)
	}
	if trimmed == 0 {
		t.Errorf("trimMappings() trimmed nothing, want Badger's mapped files trimmed")
	}
	for i := range 600 {
		if data, _, err := l.Entry(bg, uint64(i)); err != nil || !bytes.Equal(data, big(i)) {
			t.Fatalf("Entry(%d) after trimming = %d bytes, %v; want %d bytes", i, len(data), err, len(big(i)))
		}
	}
	closeLedger(t, l)
	l = openTestLedger(t, cfg)
	if size, _ := l.Size(); size != 600 {
		t.Errorf("Size() after reopen = %d, want 600", size)
	}
}

// TestTrimRangeKeepsAnonymousMemory trims anonymous memory, as the
// trimmer does when Badger unmapped a file after /proc/self/maps was read
// and the Go runtime mapped its own memory in the hole: the contents must
// stay as they were (MADV_DONTNEED zeroed them).
func TestTrimRangeKeepsAnonymousMemory(t *testing.T) {
	const size = 1 << 20
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	for i := range m {
		m[i] = byte(i%251) + 1
	}
	start := uintptr(unsafe.Pointer(&m[0]))
	if errno := trimRange(start, start+size); errno != 0 {
		t.Fatalf("trimRange(anonymous memory) = %v", errno)
	}
	for i := range m {
		if m[i] != byte(i%251)+1 {
			t.Fatalf("byte %d of anonymous memory after trimRange = %d, want %d", i, m[i], byte(i%251)+1)
		}
	}
}

// TestTrimLoopCoversTrimDir checks that the ledger's trim loop drops the
// pages of files mapped under TrimDir, beside its own directory (a
// server's other databases), from the process's RSS.
func TestTrimLoopCoversTrimDir(t *testing.T) {
	const size = 4 << 20
	m := ledgerBesideMapping(t, size, func(c *Config) { c.TrimAbove = -1 })
	waitFor(t, "the sibling's pages trimmed", func() bool { return residentPages(t, m) == 0 })
	for i := 0; i < size; i += 4096 {
		if m[i] != 1 {
			t.Fatalf("byte %d of the trimmed mapping = %d, want 1", i, m[i])
		}
	}
}

// TestTrimAbove: the trim loop leaves mapped pages in RSS (and in the
// page cache) while the process's file-backed resident memory stays within
// half of TrimAbove; above half of it, it drops the pages of write-ahead
// logs (.mem) and value logs (.vlog) only, which Badger does not read back
// in normal operation; above TrimAbove, it drops all of them.
func TestTrimAbove(t *testing.T) {
	const size = 16 << 20
	files := []string{"000001.mem", "000002.vlog", "000003.sst"}
	base := func(t *testing.T) int64 {
		t.Helper()
		base, err := fileResident()
		if err != nil {
			t.Fatalf("fileResident() = %v", err)
		}
		if base <= 0 {
			t.Fatalf("fileResident() = %d, want the test binary's pages at least", base)
		}
		return base
	}
	resident := func(t *testing.T, m [][]byte) []int {
		n := make([]int, len(m))
		for i := range m {
			n[i] = residentPages(t, m[i])
		}
		return n
	}
	all := size / 4096
	t.Run("within half", func(t *testing.T) {
		// The ledger's own files and the siblings fit in half, with room.
		above := 2 * (base(t) + 3*size + 64<<20)
		m := ledgerBesideMappings(t, size, func(c *Config) { c.TrimAbove = above }, files...)
		time.Sleep(4 * trimInterval) // four checks at the default interval
		if n := resident(t, m); n[0] != all || n[1] != all || n[2] != all {
			t.Errorf("pages resident of %v with file-backed RSS within half of TrimAbove: %v, want all %d", files, n, all)
		}
		if got, err := fileResident(); err != nil || got < 3*size {
			t.Errorf("fileResident() with %d more bytes mapped = %d, %v; want at least that", 3*size, got, err)
		}
	})
	t.Run("above half", func(t *testing.T) {
		// All three exceed half of TrimAbove; the table alone stays
		// within all of it, with 32 MiB of room for the ledger's own.
		above := base(t) + 3*size + 32<<20
		m := ledgerBesideMappings(t, size, func(c *Config) { c.TrimAbove = above }, files...)
		waitFor(t, "the logs' pages trimmed above half of TrimAbove", func() bool {
			n := resident(t, m)
			return n[0] == 0 && n[1] == 0
		})
		time.Sleep(4 * trimInterval)
		if n := residentPages(t, m[2]); n != all {
			t.Errorf("%d of %d pages of the table resident with file-backed RSS within TrimAbove, want all", n, all)
		}
	})
	t.Run("above", func(t *testing.T) {
		// The table alone exceeds this one.
		above := base(t) + size/2
		m := ledgerBesideMappings(t, size, func(c *Config) { c.TrimAbove = above }, files[2])
		waitFor(t, "the table's pages trimmed above TrimAbove", func() bool { return residentPages(t, m[0]) == 0 })
	})
}

// TestTrimIntervalOff: with a negative TrimInterval the ledger never
// drops mapped pages, its own or those under TrimDir.
func TestTrimIntervalOff(t *testing.T) {
	const size = 1 << 20
	m := ledgerBesideMapping(t, size, func(c *Config) { c.TrimInterval = -1 })
	time.Sleep(4 * trimInterval) // four passes of the default interval
	if n := residentPages(t, m); n != size/4096 {
		t.Errorf("%d of %d pages resident with trimming off, want all", n, size/4096)
	}
}

// ledgerBesideMapping opens a test ledger, adjusted by adjust if not nil,
// whose TrimDir also holds a write-ahead log of size bytes mapped by
// mapSibling, and returns that mapping.
func ledgerBesideMapping(t *testing.T, size int, adjust func(*Config)) []byte {
	t.Helper()
	return ledgerBesideMappings(t, size, adjust, "000001.mem")[0]
}

// ledgerBesideMappings is ledgerBesideMapping with a file of each name.
func ledgerBesideMappings(t *testing.T, size int, adjust func(*Config), names ...string) [][]byte {
	t.Helper()
	parent := t.TempDir()
	sibling := filepath.Join(parent, "index")
	if err := os.Mkdir(sibling, 0o700); err != nil {
		t.Fatal(err)
	}
	m := make([][]byte, len(names))
	for i, name := range names {
		m[i] = mapSibling(t, filepath.Join(sibling, name), size)
	}
	newTestLedger(t, func(c *Config) {
		c.Dir = filepath.Join(parent, "badger")
		c.TrimDir = parent
		if adjust != nil {
			adjust(c)
		}
	})
	return m
}

// mapSibling maps a file of size bytes at path (in the directory of
// another database of a server), writes every page of it so that all are
// resident, and returns the mapping (unmapped at the test's end).
func mapSibling(t *testing.T, path string, size int) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	for i := 0; i < size; i += 4096 {
		m[i] = 1 // every page resident
	}
	if n := residentPages(t, m); n != size/4096 {
		t.Fatalf("%d of %d pages resident after writing them", n, size/4096)
	}
	return m
}

// residentPages returns the Rss of mapping m in /proc/self/smaps in 4 KiB
// pages: its pages mapped in this process's page tables.
func residentPages(t *testing.T, m []byte) int {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	start := uint64(uintptr(unsafe.Pointer(&m[0])))
	head := []byte(strconv.FormatUint(start, 16) + "-")
	i := bytes.Index(smaps, head)
	if i < 0 {
		t.Fatalf("mapping at %x not in /proc/self/smaps", start)
	}
	rest := smaps[i:]
	j := bytes.Index(rest, []byte("\nRss:"))
	if j < 0 {
		t.Fatal("no Rss line")
	}
	fields := bytes.Fields(rest[j+len("\nRss:"):])
	kb, err := strconv.Atoi(string(fields[0]))
	if err != nil {
		t.Fatal(err)
	}
	return kb / 4
}
