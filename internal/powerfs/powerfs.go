// Package powerfs is an in-memory FUSE file system for power-loss tests, in
// the manner of LazyFS: it keeps the data written to each file but not yet
// synced apart from the synced data, and a simulated power cut throws the
// unsynced data away.
//
// A SIGKILLed process loses nothing that it wrote, since the kernel's page
// cache survives it; so a crash test alone cannot tell whether a program
// syncs what it acknowledges. Run the program on a powerfs mount instead,
// call [FS.PowerCut], kill the program, [Mount.Unmount], and [FS.Mount]
// again: the new mount has a fresh kernel page cache and shows only what was
// synced (fsync, fdatasync or msync with MS_SYNC, which the kernel turns into
// FUSE WRITE requests followed by FSYNC) before the cut.
//
// The model, and its limits:
//
//   - Each regular file has a current state (what readers see) and a synced
//     state (what survives a power cut), both sparse, in 4 KiB pages shared
//     copy-on-write. Writes, truncation and fallocate change the current
//     state; fsync or fdatasync of the file makes it the synced state.
//     Nothing is ever synced without an fsync: a power cut loses every
//     unsynced byte and size change, the worst a disk may do, and never
//     leaves part of them (no torn or reordered writes).
//   - Namespace operations (create, mkdir, link, unlink, rmdir, rename) are
//     durable at once, as in LazyFS: a power cut never undoes one, so this
//     file system cannot find a missing directory fsync. A file created and
//     never synced survives a cut empty.
//   - File locks are left to the kernel (the mount does not ask for FUSE
//     lock requests), which is enough for one process per mount.
//   - Hard links to regular files work; there are no symbolic links,
//     special files or extended attributes. Permissions are stored but not
//     checked.
//
// The mount does not use direct I/O, so MAP_SHARED writable mmap works and
// goes through the kernel's page cache like on a disk file system; it
// answers with zero entry and attribute timeouts and keeps the kernel's data
// cache across opens (the mount is the only writer of its files).
//
// [FS.FailNext] injects a one-shot error into the next matching WRITE or
// FSYNC request, for tests of how a program handles a failed write or sync.
//
// powerfs needs Linux with /dev/fuse, and root (it mounts with mount(2)) or
// fusermount3 from the fuse3 package; [Available] says whether it can mount
// here and what is missing.
//
// Do not access files of a powerfs mount through mmap from the process that
// serves it: a goroutine faulting on a page of the mount cannot be stopped,
// so a garbage collection that starts then waits forever for it while the
// goroutine that would answer the fault waits for the collection. Map them
// from another process (tests re-execute their binary for that).
package powerfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is the state of one simulated disk: a tree of directories and files
// that outlives its mounts. Its methods are safe for concurrent use; one
// mutex serialises every operation, FUSE requests included.
type FS struct {
	mu      sync.Mutex
	root    *object
	nextIno uint64
	// files are the regular files linked in the tree: what a power cut
	// acts on (an unlinked file is gone after a cut anyway).
	files map[*object]struct{}
	// mounted is the live mount, if any: the one whose requests change
	// the file system. A power cut kills it.
	mounted *Mount
	faults  []fault
}

// object is a directory or regular file. Its fields are guarded by FS.mu.
type object struct {
	ino  uint64
	mode uint32 // file type and permission bits
	// links are the names of the object: one for a directory (none for
	// the root), any number for a regular file (hard links).
	links    []dirent
	lastName string // its last name, once it has none
	atime    time.Time
	mtime    time.Time
	ctime    time.Time

	children map[string]*object // directories only
	data     *file              // regular files only
}

// dirent is a name of an object in a directory.
type dirent struct {
	dir  *object
	name string
}

func (o *object) isDir() bool { return o.mode&syscall.S_IFMT == syscall.S_IFDIR }

// parent returns the directory holding o's first name, if any.
func (o *object) parent() *object {
	if len(o.links) == 0 {
		return nil
	}
	return o.links[0].dir
}

// path is the path of o relative to the root of the file system (by its
// first name, for a file with several), or its last name if it has been
// unlinked.
func (o *object) path() string {
	if len(o.links) == 0 {
		return o.lastName
	}
	var names []string
	for p := o; len(p.links) > 0; p = p.links[0].dir {
		names = append(names, p.links[0].name)
	}
	slices.Reverse(names)
	return path.Join(names...)
}

// New returns an empty file system: a root directory and nothing else.
func New() *FS {
	now := time.Now()
	return &FS{
		root: &object{
			ino: 1, mode: syscall.S_IFDIR | 0o755,
			atime: now, mtime: now, ctime: now,
			children: map[string]*object{},
		},
		nextIno: 2,
		files:   map[*object]struct{}{},
	}
}

// newObject makes an unlinked object; the caller holds f.mu.
func (f *FS) newObject(mode uint32) *object {
	now := time.Now()
	o := &object{ino: f.nextIno, mode: mode, atime: now, mtime: now, ctime: now}
	f.nextIno++
	if o.isDir() {
		o.children = map[string]*object{}
	} else {
		o.data = newFile()
	}
	return o
}

// link adds o to dir as name; the caller holds f.mu.
func (f *FS) link(dir *object, name string, o *object) {
	dir.children[name] = o
	o.links = append(o.links, dirent{dir: dir, name: name})
	now := time.Now()
	dir.mtime, dir.ctime, o.ctime = now, now, now
	if !o.isDir() {
		f.files[o] = struct{}{}
	}
}

// unlink removes the entry name of dir; the caller holds f.mu. A file
// whose last name goes is out of reach of a power cut: it is gone after
// one anyway.
func (f *FS) unlink(dir *object, name string) {
	o := dir.children[name]
	delete(dir.children, name)
	o.links = slices.DeleteFunc(o.links, func(d dirent) bool { return d.dir == dir && d.name == name })
	now := time.Now()
	dir.mtime, dir.ctime, o.ctime = now, now, now
	if len(o.links) == 0 {
		o.lastName = name
		delete(f.files, o)
	}
}

// Lost says what a power cut threw away of the data that had reached the
// file system. Dirty pages still in the kernel's page cache (mmap'd writes
// never msynced, for one) are lost too, but the file system never saw them.
type Lost struct {
	// Files is how many files had unsynced changes, and Paths their
	// paths, sorted.
	Files int
	Paths []string
	// Pages is how many 4 KiB pages of them were written, zeroed or
	// dropped since their last sync (a size change alone counts none).
	Pages int
}

// PowerCut simulates a power failure: atomically, every file loses its
// unsynced data and size changes, and the live mount goes dead. A dead
// mount still answers reads, from the surviving data (the kernel may still
// serve the lost data from its page cache until the mount is gone), and
// accepts and drops every write, truncation, fallocate and fsync, such as
// the dirty pages that the kernel writes back when the program is killed or
// the mount is unmounted; namespace operations on it fail with EIO. Unmount
// the dead mount and Mount the file system again to see what survived.
func (f *FS) PowerCut() Lost {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lost Lost
	for o := range f.files {
		if o.data.unsynced() {
			lost.Files++
			lost.Paths = append(lost.Paths, o.path())
			lost.Pages += o.data.revert()
		}
	}
	slices.Sort(lost.Paths)
	if f.mounted != nil {
		f.mounted.dead = true
		f.mounted = nil
	}
	return lost
}

// Op is a kind of FUSE request that FailNext can make fail.
type Op int

const (
	// Write is a WRITE request: a write(2), or the kernel writing back
	// dirty pages of a file, including mmap'd ones on msync.
	Write Op = iota + 1
	// Fsync is an FSYNC or FSYNCDIR request: fsync(2), fdatasync(2), or
	// msync(2) with MS_SYNC after the write-back.
	Fsync
)

func (op Op) String() string {
	switch op {
	case Write:
		return "write"
	case Fsync:
		return "fsync"
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

type fault struct {
	op    Op
	match func(path string) bool
	errno syscall.Errno
}

// FailNext makes the next op request on a file whose path (relative to the
// root of the file system, e.g. "data/badger/000001.vlog") satisfies match
// (nil matches every path) fail with errno, once; the requests after it
// succeed again. Faults queue up in the order they are registered, and each
// is used by one request.
//
// A failed Write changes nothing. A failed Fsync leaves the file's data
// unsynced: still visible, lost by a power cut unless a later fsync
// succeeds. A failed Write of dirty mmap'd pages is reported by the kernel
// to the next fsync or msync of the file, which fails without sending
// FSYNC; the kernel does not retry the write-back (the pages stay cached
// and clean), so a retried msync then succeeds without writing them: a
// power cut loses them all the same (TestFailedWritebackIsNotRetried).
func (f *FS) FailNext(op Op, match func(path string) bool, errno syscall.Errno) {
	if match == nil {
		match = func(string) bool { return true }
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{op: op, match: match, errno: errno})
}

// takeFault returns the errno of the first queued fault for op on o and
// removes it; the caller holds f.mu.
func (f *FS) takeFault(op Op, o *object) syscall.Errno {
	if len(f.faults) == 0 {
		return 0
	}
	p := o.path()
	for i, ft := range f.faults {
		if ft.op == op && ft.match(p) {
			f.faults = slices.Delete(f.faults, i, i+1)
			return ft.errno
		}
	}
	return 0
}

// Mount is one FUSE mount of an FS.
type Mount struct {
	fs  *FS
	dir string
	srv *fuse.Server
	// dead is set by PowerCut; guarded by fs.mu.
	dead bool
}

// Dir returns the mount point.
func (m *Mount) Dir() string { return m.dir }

// Mount mounts the file system at dir, creating the directory if needed,
// and serves it until Unmount. There is at most one live mount at a time:
// Mount fails while another mount is live, i.e. neither unmounted nor
// killed by PowerCut. As root it mounts with mount(2), otherwise with
// fusermount3.
func (f *FS) Mount(dir string) (*Mount, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("powerfs: creating mount point: %w", err)
	}
	m := &Mount{fs: f, dir: dir}
	f.mu.Lock()
	if f.mounted != nil {
		other := f.mounted.dir
		f.mu.Unlock()
		return nil, fmt.Errorf("powerfs: already mounted at %s: unmount it or cut the power first", other)
	}
	f.mounted = m
	f.mu.Unlock()

	zero := time.Duration(0)
	srv, err := fs.Mount(dir, &node{m: m, obj: f.root}, &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			FsName:      "powerfs",
			Name:        "powerfs",
			// The kernel must not drop cached pages on its own
			// when attributes change: this mount is the only
			// writer of its files.
			ExplicitDataCacheControl: true,
			DisableXAttrs:            true,
			MaxWrite:                 1 << 20,
		},
	})
	if err != nil {
		f.mu.Lock()
		if f.mounted == m {
			f.mounted = nil
		}
		f.mu.Unlock()
		return nil, fmt.Errorf("powerfs: mounting at %s: %w", dir, err)
	}
	m.srv = srv
	return m, nil
}

// Unmount unmounts the file system and waits until its requests are
// served. It fails (EBUSY) while a process still has a file of the mount
// open or mapped, or its working directory there.
func (m *Mount) Unmount() error {
	if err := m.srv.Unmount(); err != nil {
		return fmt.Errorf("powerfs: unmounting %s: %w", m.dir, err)
	}
	m.fs.mu.Lock()
	if m.fs.mounted == m {
		m.fs.mounted = nil
	}
	m.fs.mu.Unlock()
	return nil
}

var availability struct {
	once sync.Once
	err  error
}

// Available reports whether a powerfs file system can be mounted here. If
// not, the error says what is missing and how to get it, for a test to
// skip with. It mounts and unmounts a probe file system the first time.
func Available() error {
	availability.once.Do(func() { availability.err = probe() })
	return availability.err
}

func probe() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("powerfs needs Linux FUSE; this is %s", runtime.GOOS)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse (%v): load the fuse kernel module (modprobe fuse); in a container, pass the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)", err)
	}
	if os.Geteuid() != 0 {
		_, err3 := exec.LookPath("fusermount3")
		_, err2 := exec.LookPath("fusermount")
		if err3 != nil && err2 != nil {
			return errors.New("not root and no fusermount3 in PATH: install fuse3 (apt-get install fuse3), or run the tests as root")
		}
	}
	dir, err := os.MkdirTemp("", "powerfs-probe-")
	if err != nil {
		return fmt.Errorf("powerfs probe: %w", err)
	}
	defer os.Remove(dir)
	m, err := New().Mount(dir)
	if err != nil {
		return fmt.Errorf("cannot mount FUSE here: %w (as root, mount(2) needs CAP_SYS_ADMIN and /dev/fuse; otherwise install fuse3: apt-get install fuse3)", err)
	}
	if err := m.Unmount(); err != nil {
		return fmt.Errorf("powerfs probe: %w", err)
	}
	return nil
}
