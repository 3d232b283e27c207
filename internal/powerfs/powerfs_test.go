package powerfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests that map files of the mount or open Badger on it run that part
// in a child process (this test binary, re-executed with POWERFS_HELPER
// set): a goroutine of the serving process that faults on a page of the
// mount could deadlock with the garbage collector (see the package doc).

func TestMain(m *testing.M) {
	if h := os.Getenv("POWERFS_HELPER"); h != "" {
		os.Exit(runHelper(h, os.Getenv("POWERFS_ARG")))
	}
	os.Exit(m.Run())
}

// mount mounts f at a fresh directory, or skips the test if FUSE is not
// available here, and unmounts it when the test ends.
func mount(t *testing.T, f *FS) *Mount {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("powerfs cannot mount here: %v", err)
	}
	return mountAt(t, f, filepath.Join(t.TempDir(), "mnt"))
}

func mountAt(t *testing.T, f *FS, dir string) *Mount {
	t.Helper()
	m, err := f.Mount(dir)
	if err != nil {
		t.Fatalf("Mount(%s) = %v", dir, err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("Unmount() = %v", err)
		}
	})
	return m
}

// cutAndRemount cuts the power, unmounts m and mounts f again at the same
// place, with a fresh kernel page cache.
func cutAndRemount(t *testing.T, f *FS, m *Mount) *Mount {
	t.Helper()
	f.PowerCut()
	if err := m.Unmount(); err != nil {
		t.Fatalf("Unmount() after PowerCut = %v", err)
	}
	return mountAt(t, f, m.Dir())
}

func writeFile(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt(%s) = %v", path, err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatalf("Sync(%s) = %v", path, err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile(%s) = %v", path, err)
	}
	return b
}

func TestPowerCutLosesUnsyncedWrites(t *testing.T) {
	f := New()
	m := mount(t, f)
	p := filepath.Join(m.Dir(), "a")
	writeFile(t, p, []byte("synced version"), true)
	writeFile(t, p, []byte("UNSYNCED VERSION, longer"), false)
	if got := readFile(t, p); string(got) != "UNSYNCED VERSION, longer" {
		t.Fatalf("ReadFile before the cut = %q, want the unsynced write", got)
	}

	lost := f.PowerCut()
	if lost.Files != 1 || lost.Pages != 1 {
		t.Errorf("PowerCut() = %+v, want 1 file and 1 page lost", lost)
	}
	if err := m.Unmount(); err != nil {
		t.Fatalf("Unmount() = %v", err)
	}
	mountAt(t, f, m.Dir())
	if got := readFile(t, p); string(got) != "synced version" {
		t.Errorf("ReadFile after power cut = %q, want %q", got, "synced version")
	}
}

func TestDeadMountDropsWrites(t *testing.T) {
	f := New()
	m := mount(t, f)
	p := filepath.Join(m.Dir(), "a")
	writeFile(t, p, []byte("before"), true)
	fd, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer fd.Close()

	f.PowerCut()
	// The program is still running: it must not notice anything yet, and
	// nothing it does may land.
	if _, err := fd.WriteAt([]byte("AFTER!"), 0); err != nil {
		t.Errorf("WriteAt on the dead mount = %v, want nil", err)
	}
	if err := fd.Sync(); err != nil {
		t.Errorf("Sync on the dead mount = %v, want nil", err)
	}
	if err := fd.Truncate(1); err != nil {
		t.Errorf("Truncate on the dead mount = %v, want nil", err)
	}
	if _, err := os.Create(filepath.Join(m.Dir(), "new")); !errors.Is(err, syscall.EIO) {
		t.Errorf("Create on the dead mount = %v, want EIO", err)
	}
	// A dead mount does not keep the file system from being mounted
	// again, but there is only one live mount at a time.
	mountAt(t, f, filepath.Join(t.TempDir(), "other"))
	if third, err := f.Mount(filepath.Join(t.TempDir(), "third")); err == nil {
		third.Unmount()
		t.Errorf("Mount while another mount is live = nil error, want one")
	}
	must(t, fd.Close())
	must(t, m.Unmount())
	f.PowerCut() // kills the "other" mount too, so that remounting works
	m = mountAt(t, f, m.Dir())
	if got := readFile(t, p); string(got) != "before" {
		t.Errorf("after the cut, writes to the dead mount left %q, want %q", got, "before")
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(new) = %v, want not exist", err)
	}
}

func TestFsyncedDataSurvivesPowerCut(t *testing.T) {
	f := New()
	m := mount(t, f)
	dir := filepath.Join(m.Dir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 1000) // crosses pages
	writeFile(t, filepath.Join(dir, "synced"), data, true)
	writeFile(t, filepath.Join(dir, "never-synced"), data, false)
	writeFile(t, filepath.Join(dir, "tmp"), []byte("renamed"), true)
	if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "final")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "tmp2"), []byte("linked"), true)
	if err := os.Link(filepath.Join(dir, "tmp2"), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "tmp2")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "removed"), []byte("x"), true)
	if err := os.Remove(filepath.Join(dir, "removed")); err != nil {
		t.Fatal(err)
	}

	cutAndRemount(t, f, m)
	if got := readFile(t, filepath.Join(dir, "synced")); !bytes.Equal(got, data) {
		t.Errorf("synced file after power cut: %d bytes, want the %d written", len(got), len(data))
	}
	// Namespace operations are durable at once; unsynced data is not.
	if got := readFile(t, filepath.Join(dir, "never-synced")); len(got) != 0 {
		t.Errorf("never-synced file after power cut = %d bytes, want empty", len(got))
	}
	if got := readFile(t, filepath.Join(dir, "final")); string(got) != "renamed" {
		t.Errorf("renamed file after power cut = %q, want %q", got, "renamed")
	}
	if got := readFile(t, filepath.Join(dir, "linked")); string(got) != "linked" {
		t.Errorf("hard-linked file after power cut = %q, want %q", got, "linked")
	}
	if _, err := os.Stat(filepath.Join(dir, "removed")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(removed) after power cut = %v, want not exist", err)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range names {
		got = append(got, e.Name())
	}
	if want := "final,linked,never-synced,synced"; strings.Join(got, ",") != want {
		t.Errorf("ReadDir after power cut = %v, want %s", got, want)
	}
}

func TestTruncate(t *testing.T) {
	const big = 128 << 20
	for _, tc := range []struct {
		name string
		// do runs on a file holding 10000 synced bytes of 'a'.
		do func(t *testing.T, fd *os.File)
		// want after a power cut: size and a check of the content.
		wantSize int64
		check    func(b []byte) bool
	}{
		{
			name:     "unsynced shrink is undone",
			do:       func(t *testing.T, fd *os.File) { must(t, fd.Truncate(5000)) },
			wantSize: 10000,
			check:    func(b []byte) bool { return bytes.Count(b, []byte("a")) == 10000 },
		},
		{
			name:     "synced shrink stays",
			do:       func(t *testing.T, fd *os.File) { must(t, fd.Truncate(5000)); must(t, fd.Sync()) },
			wantSize: 5000,
			check:    func(b []byte) bool { return bytes.Count(b, []byte("a")) == 5000 },
		},
		{
			name: "shrink then grow reads zeros",
			do: func(t *testing.T, fd *os.File) {
				must(t, fd.Truncate(5000))
				must(t, fd.Truncate(9000))
				must(t, fd.Sync())
			},
			wantSize: 9000,
			check: func(b []byte) bool {
				return bytes.Count(b[:5000], []byte("a")) == 5000 && bytes.Count(b[5000:], []byte{0}) == 4000
			},
		},
		{
			name: "sparse 128 MiB preallocation",
			do: func(t *testing.T, fd *os.File) {
				must(t, fd.Truncate(big))
				_, err := fd.WriteAt([]byte("end"), big-3)
				must(t, err)
				must(t, fd.Sync())
			},
			wantSize: big,
			check: func(b []byte) bool {
				return bytes.Count(b[:10000], []byte("a")) == 10000 && string(b[big-3:]) == "end" &&
					bytes.Count(b[10000:20000], []byte{0}) == 10000
			},
		},
		{
			name:     "unsynced preallocation is undone",
			do:       func(t *testing.T, fd *os.File) { must(t, fd.Truncate(big)) },
			wantSize: 10000,
			check:    func(b []byte) bool { return bytes.Count(b, []byte("a")) == 10000 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			m := mount(t, f)
			p := filepath.Join(m.Dir(), "f")
			writeFile(t, p, bytes.Repeat([]byte("a"), 10000), true)
			fd, err := os.OpenFile(p, os.O_RDWR, 0)
			must(t, err)
			tc.do(t, fd)
			must(t, fd.Close())
			cutAndRemount(t, f, m)
			b := readFile(t, p)
			if int64(len(b)) != tc.wantSize || !tc.check(b) {
				t.Errorf("after power cut: %d bytes (check ok: %v), want %d", len(b), tc.check(b), tc.wantSize)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// helper runs this test binary as a child process doing what runHelper
// says for name, and returns its output.
func helper(t *testing.T, name, arg string) string {
	t.Helper()
	cmd := helperCmd(name, arg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s %s: %v\n%s", name, arg, err, out)
	}
	return strings.TrimSpace(string(out))
}

func helperCmd(name, arg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POWERFS_HELPER="+name, "POWERFS_ARG="+arg)
	return cmd
}

// runHelper is the child process side: it does the named job on arg and
// prints what the parent checks.
func runHelper(name, arg string) int {
	var err error
	switch name {
	case "mmap":
		err = helperMmap(arg)
	case "msync":
		err = helperMsync(arg)
	case "msync-retry":
		err = helperMsyncRetry(arg)
	case "badger-write", "badger-write-nosync":
		err = helperBadgerWrite(arg, name == "badger-write")
	case "badger-read":
		err = helperBadgerRead(arg)
	default:
		err = fmt.Errorf("unknown helper %q", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperMmap writes to two pages of a mapped file, syncs the first one
// with msync and exits without syncing the second.
func helperMmap(path string) error {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	data, err := unix.Mmap(int(fd.Fd()), 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	copy(data, "msynced")
	if err := unix.Msync(data[:pageSize], unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync: %w", err)
	}
	copy(data[5*pageSize:], "never msynced")
	return unix.Munmap(data)
}

// helperMsync changes a mapped page and msyncs it twice, printing each
// msync's result.
func helperMsync(path string) error {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	data, err := unix.Mmap(int(fd.Fd()), 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(data)
	for i := range 2 {
		copy(data, fmt.Sprintf("attempt %d", i))
		fmt.Println(errnoName(unix.Msync(data, unix.MS_SYNC)))
	}
	return nil
}

// helperMsyncRetry changes a mapped page once and msyncs it twice, as a
// program retrying a failed msync would, printing each msync's result.
func helperMsyncRetry(path string) error {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	data, err := unix.Mmap(int(fd.Fd()), 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(data)
	copy(data, "written once")
	for range 2 {
		fmt.Println(errnoName(unix.Msync(data, unix.MS_SYNC)))
	}
	return nil
}

func errnoName(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	default:
		return err.Error()
	}
}

func TestMmapWritesSurviveOnlyIfMsynced(t *testing.T) {
	f := New()
	m := mount(t, f)
	p := filepath.Join(m.Dir(), "mapped")
	fd, err := os.Create(p)
	must(t, err)
	must(t, fd.Truncate(1<<20))
	must(t, fd.Sync())
	must(t, fd.Close())

	helper(t, "mmap", p)
	// The kernel's page cache holds both writes until the mount is gone.
	b := readFile(t, p)
	if !bytes.HasPrefix(b, []byte("msynced")) || !bytes.HasPrefix(b[5*pageSize:], []byte("never msynced")) {
		t.Fatalf("before the cut the file reads %q ... %q, want both writes", b[:8], b[5*pageSize:5*pageSize+13])
	}

	cutAndRemount(t, f, m)
	b = readFile(t, p)
	if len(b) != 1<<20 {
		t.Fatalf("after power cut the file has %d bytes, want %d", len(b), 1<<20)
	}
	if !bytes.HasPrefix(b, []byte("msynced")) {
		t.Errorf("after power cut page 0 reads %q, want the msynced write", b[:8])
	}
	if page5 := b[5*pageSize : 6*pageSize]; !bytes.Equal(page5, make([]byte, pageSize)) {
		t.Errorf("after power cut page 5 reads %q, want zeros: it was never msynced", page5[:13])
	}
}

func TestFailNext(t *testing.T) {
	f := New()
	m := mount(t, f)
	isVlog := func(p string) bool { return strings.HasSuffix(p, ".vlog") }
	other, err := os.Create(filepath.Join(m.Dir(), "other"))
	must(t, err)
	defer other.Close()
	fd, err := os.Create(filepath.Join(m.Dir(), "000001.vlog"))
	must(t, err)
	defer fd.Close()

	t.Run("fsync", func(t *testing.T) {
		f.FailNext(Fsync, isVlog, syscall.EIO)
		must(t, other.Sync()) // does not match
		_, err := fd.Write([]byte("x"))
		must(t, err)
		if err := fd.Sync(); !errors.Is(err, syscall.EIO) {
			t.Errorf("first Sync() = %v, want EIO", err)
		}
		if err := fd.Sync(); err != nil {
			t.Errorf("second Sync() = %v, want nil: faults are one-shot", err)
		}
	})
	t.Run("write", func(t *testing.T) {
		f.FailNext(Write, nil, syscall.ENOSPC)
		if _, err := fd.WriteAt([]byte("y"), 0); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("first WriteAt() = %v, want ENOSPC", err)
		}
		if _, err := fd.WriteAt([]byte("z"), 0); err != nil {
			t.Errorf("second WriteAt() = %v, want nil", err)
		}
	})
	t.Run("msync", func(t *testing.T) {
		p := filepath.Join(m.Dir(), "000002.vlog")
		writeFile(t, p, make([]byte, pageSize), true)
		for _, tc := range []struct {
			op   Op
			want string
		}{
			// A failed FSYNC fails msync(MS_SYNC).
			{Fsync, "EIO\nok"},
			// So does a failed write-back of the dirty page: the
			// kernel reports it to the next msync, and does not send
			// FSYNC then.
			{Write, "EIO\nok"},
		} {
			f.FailNext(tc.op, isVlog, syscall.EIO)
			if got := helper(t, "msync", p); got != tc.want {
				t.Errorf("msync twice with FailNext(%v) = %q, want %q", tc.op, got, tc.want)
			}
		}
	})

}

// TestFailedWritebackIsNotRetried shows what a program that retries a
// failed msync gets: the kernel does not retry a failed write-back (the
// pages stay in its cache, clean), so the retried msync succeeds without
// writing them, and a power cut loses them. A successful retry is no proof
// of durability.
func TestFailedWritebackIsNotRetried(t *testing.T) {
	f := New()
	m := mount(t, f)
	p := filepath.Join(m.Dir(), "000001.vlog")
	writeFile(t, p, make([]byte, pageSize), true)
	f.FailNext(Write, nil, syscall.EIO)
	if got, want := helper(t, "msync-retry", p), "EIO\nok"; got != want {
		t.Errorf("msync, then msync again = %q, want %q", got, want)
	}
	if got := readFile(t, p); !bytes.HasPrefix(got, []byte("written once")) {
		t.Errorf("before the cut the page reads %q, want the write (from the page cache)", got[:12])
	}
	cutAndRemount(t, f, m)
	if got := readFile(t, p); !bytes.Equal(got, make([]byte, pageSize)) {
		t.Errorf("after power cut the page reads %q, want zeros: the retried msync succeeded without writing it", got[:12])
	}
}

// helperBadgerWrite opens Badger at dir, commits keys one by one, printing
// "committed N" after each, then "done", and waits to be killed.
func helperBadgerWrite(dir string, syncWrites bool) error {
	db, err := openBadger(dir, syncWrites)
	if err != nil {
		return err
	}
	for i := range badgerKeys {
		if err := db.Update(func(txn *badgerTxn) error {
			return txn.Set(badgerKey(i), badgerValue(i))
		}); err != nil {
			return fmt.Errorf("commit %d: %w", i, err)
		}
		fmt.Println("committed", i)
	}
	fmt.Println("done")
	time.Sleep(time.Hour)
	return nil
}

// helperBadgerRead opens Badger at dir and prints how many of the keys it
// holds, with the right values. Like the ledger, it first removes the empty
// memtable and value-log files that a cut between their creation and their
// first sync leaves: Badger refuses to open them ("Create a new file").
func helperBadgerRead(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return err
		}
		if ext := filepath.Ext(e.Name()); (ext == ".mem" || ext == ".vlog") && info.Size() == 0 {
			fmt.Println("removing empty", e.Name())
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	db, err := openBadger(dir, true)
	if err != nil {
		return err
	}
	defer db.Close()
	n := 0
	err = db.View(func(txn *badgerTxn) error {
		for i := range badgerKeys {
			item, err := txn.Get(badgerKey(i))
			if err != nil {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if bytes.Equal(v, badgerValue(i)) {
				n++
			}
		}
		return nil
	})
	fmt.Println("present", n)
	return err
}

func TestBadgerOnPowerfs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		helper  string
		wantAll bool
	}{
		{name: "SyncWrites keeps every commit", helper: "badger-write", wantAll: true},
		{name: "without SyncWrites commits are lost", helper: "badger-write-nosync", wantAll: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			m := mount(t, f)
			dir := filepath.Join(m.Dir(), "badger")

			w := helperCmd(tc.helper, dir)
			stdout, err := w.StdoutPipe()
			must(t, err)
			var stderr bytes.Buffer
			w.Stderr = &stderr
			must(t, w.Start())
			committed := -1
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				if line == "done" {
					break
				}
				if n, ok := strings.CutPrefix(line, "committed "); ok {
					committed, _ = strconv.Atoi(n)
				}
			}
			lost := f.PowerCut()
			w.Process.Kill()
			go io.Copy(io.Discard, stdout)
			w.Wait()
			if committed != badgerKeys-1 {
				t.Fatalf("Badger writer committed up to key %d, want %d\nstderr:\n%s", committed, badgerKeys-1, stderr.String())
			}
			t.Logf("power cut lost %d pages of %v", lost.Pages, lost.Paths)
			must(t, m.Unmount())
			mountAt(t, f, m.Dir())

			out := helper(t, "badger-read", dir)
			var present int
			if _, err := fmt.Sscanf(out[strings.LastIndex(out, "present"):], "present %d", &present); err != nil {
				t.Fatalf("badger-read printed %q", out)
			}
			switch {
			case tc.wantAll && present != badgerKeys:
				t.Errorf("after power cut Badger holds %d of the %d committed keys, want all", present, badgerKeys)
			case !tc.wantAll && present == badgerKeys:
				t.Errorf("after power cut Badger holds all %d keys committed without sync, want some lost (is powerfs dropping anything?)", badgerKeys)
			}
		})
	}
}
