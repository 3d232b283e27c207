package powerfs

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is the go-fuse inode of an object within one mount. Each mount has
// its own nodes (go-fuse's inode tree belongs to one mount); the objects,
// and so the data, are shared by every mount of the FS.
type node struct {
	fs.Inode
	m   *Mount
	obj *object
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeReader    = (*node)(nil)
	_ fs.NodeWriter    = (*node)(nil)
	_ fs.NodeWritever  = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeFlusher   = (*node)(nil)
	_ fs.NodeReleaser  = (*node)(nil)
	_ fs.NodeAllocater = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeLinker    = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
	_ fs.NodeOpendirer = (*node)(nil)
	_ fs.NodeAccesser  = (*node)(nil)
	_ fs.InodeEmbedder = (*node)(nil)
)

// lock takes the FS mutex and reports whether the mount is dead.
func (n *node) lock() (dead bool) {
	n.m.fs.mu.Lock()
	return n.m.dead
}

func (n *node) unlock() { n.m.fs.mu.Unlock() }

var owner = fuse.Owner{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}

// fillAttr describes o; the caller holds the FS mutex.
func fillAttr(o *object, out *fuse.Attr) {
	out.Ino = o.ino
	out.Mode = o.mode
	out.Owner = owner
	out.Blksize = pageSize
	if o.isDir() {
		out.Nlink = 2
		out.Size = pageSize
	} else {
		out.Nlink = uint32(len(o.links))
		out.Size = uint64(o.data.cur.size)
		out.Blocks = uint64(o.data.cur.usedPages()) * pageSize / 512
	}
	out.SetTimes(&o.atime, &o.mtime, &o.ctime)
}

// child returns the inode of o in this mount; the caller holds the FS
// mutex (NewInode does not call back into the file system).
func (n *node) child(ctx context.Context, o *object, out *fuse.EntryOut) *fs.Inode {
	fillAttr(o, &out.Attr)
	return n.NewInode(ctx, &node{m: n.m, obj: o}, fs.StableAttr{Mode: o.mode & syscall.S_IFMT, Ino: o.ino})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lock()
	defer n.unlock()
	if !n.obj.isDir() {
		return nil, syscall.ENOTDIR
	}
	o := n.obj.children[name]
	if o == nil {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, o, out), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.lock()
	defer n.unlock()
	fillAttr(n.obj, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	dead := n.lock()
	defer n.unlock()
	o := n.obj
	if !dead {
		now := time.Now()
		if size, ok := in.GetSize(); ok {
			if o.isDir() {
				return syscall.EISDIR
			}
			o.data.truncate(int64(size))
			o.mtime, o.ctime = now, now
		}
		if mode, ok := in.GetMode(); ok {
			o.mode = o.mode&syscall.S_IFMT | mode&0o7777
			o.ctime = now
		}
		if t, ok := in.GetMTime(); ok {
			o.mtime = t
		}
		if t, ok := in.GetATime(); ok {
			o.atime = t
		}
	}
	fillAttr(o, &out.Attr)
	return 0
}

func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno { return 0 }

// handle is an open file. Writes through a handle opened with O_SYNC or
// O_DSYNC are synced at once.
type handle struct {
	sync bool
}

const openFlags = fuse.FOPEN_KEEP_CACHE

func newHandle(flags uint32) *handle {
	return &handle{sync: flags&syscall.O_DSYNC != 0}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	dead := n.lock()
	defer n.unlock()
	if n.obj.isDir() {
		return nil, 0, syscall.EISDIR
	}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY && !dead {
		n.obj.data.truncate(0)
		n.obj.mtime, n.obj.ctime = time.Now(), time.Now()
	}
	return newHandle(flags), openFlags, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return nil, nil, 0, syscall.EIO
	}
	f := n.m.fs
	o := n.obj.children[name]
	switch {
	case o == nil:
		o = f.newObject(syscall.S_IFREG | mode&0o7777)
		f.link(n.obj, name, o)
	case flags&syscall.O_EXCL != 0:
		return nil, nil, 0, syscall.EEXIST
	case o.isDir():
		return nil, nil, 0, syscall.EISDIR
	case flags&syscall.O_TRUNC != 0:
		o.data.truncate(0)
		o.mtime, o.ctime = time.Now(), time.Now()
	}
	return n.child(ctx, o, out), newHandle(flags), openFlags, 0
}

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.lock()
	defer n.unlock()
	if n.obj.isDir() {
		return nil, syscall.EISDIR
	}
	k := n.obj.data.cur.readAt(dest, off)
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return n.Writev(ctx, fh, [][]byte{data}, off)
}

func (n *node) Writev(ctx context.Context, fh fs.FileHandle, iov [][]byte, off int64) (uint32, syscall.Errno) {
	total := 0
	for _, b := range iov {
		total += len(b)
	}
	dead := n.lock()
	defer n.unlock()
	if dead {
		return uint32(total), 0
	}
	o := n.obj
	if errno := n.m.fs.takeFault(Write, o); errno != 0 {
		return 0, errno
	}
	for _, b := range iov {
		o.data.writeAt(b, off)
		off += int64(len(b))
	}
	o.mtime, o.ctime = time.Now(), time.Now()
	if h, ok := fh.(*handle); ok && h.sync {
		o.data.sync()
	}
	return uint32(total), 0
}

// Fsync makes the file's current state its synced state. fsync and
// fdatasync are the same here: the size is synced with the data. A
// directory has nothing to sync: namespace operations are durable at once.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return 0
	}
	if errno := n.m.fs.takeFault(Fsync, n.obj); errno != 0 {
		return errno
	}
	if !n.obj.isDir() {
		n.obj.data.sync()
	}
	return 0
}

func (n *node) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func (n *node) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

// fallocate modes (linux/falloc.h).
const (
	fallocKeepSize  = 0x1
	fallocPunchHole = 0x2
)

// Allocate implements fallocate: plain allocation grows the file (an
// unsynced size change), FALLOC_FL_KEEP_SIZE alone does nothing, and
// FALLOC_FL_PUNCH_HOLE zeroes the range.
func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	dead := n.lock()
	defer n.unlock()
	if n.obj.isDir() {
		return syscall.EISDIR
	}
	if dead {
		return 0
	}
	d := n.obj.data
	switch mode {
	case 0:
		if end := int64(off + size); end > d.cur.size {
			d.truncate(end)
		}
	case fallocKeepSize:
	case fallocKeepSize | fallocPunchHole:
		d.zeroRange(int64(off), int64(size))
	default:
		return syscall.EOPNOTSUPP
	}
	n.obj.mtime, n.obj.ctime = time.Now(), time.Now()
	return 0
}

func (n *node) Opendir(ctx context.Context) syscall.Errno {
	n.lock()
	defer n.unlock()
	if !n.obj.isDir() {
		return syscall.ENOTDIR
	}
	return 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return nil, syscall.EIO
	}
	if n.obj.children[name] != nil {
		return nil, syscall.EEXIST
	}
	f := n.m.fs
	o := f.newObject(syscall.S_IFDIR | mode&0o7777)
	f.link(n.obj, name, o)
	return n.child(ctx, o, out), 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return syscall.EIO
	}
	o := n.obj.children[name]
	switch {
	case o == nil:
		return syscall.ENOENT
	case o.isDir():
		return syscall.EISDIR
	}
	n.m.fs.unlink(n.obj, name)
	return 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return syscall.EIO
	}
	o := n.obj.children[name]
	switch {
	case o == nil:
		return syscall.ENOENT
	case !o.isDir():
		return syscall.ENOTDIR
	case len(o.children) > 0:
		return syscall.ENOTEMPTY
	}
	n.m.fs.unlink(n.obj, name)
	return 0
}

// rename flags (linux/fs.h).
const (
	renameNoReplace = 0x1
	renameExchange  = 0x2
)

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return syscall.EIO
	}
	np, ok := newParent.(*node)
	if !ok || np.m.fs != n.m.fs {
		return syscall.EXDEV
	}
	from, to := n.obj, np.obj
	src := from.children[name]
	if src == nil {
		return syscall.ENOENT
	}
	dst := to.children[newName]
	if src == dst {
		return 0
	}
	// A directory cannot move into itself or below.
	if src.isDir() {
		for p := to; p != nil; p = p.parent() {
			if p == src {
				return syscall.EINVAL
			}
		}
	}
	f := n.m.fs
	switch {
	case flags&renameExchange != 0:
		if dst == nil {
			return syscall.ENOENT
		}
		if dst.isDir() {
			for p := from; p != nil; p = p.parent() {
				if p == dst {
					return syscall.EINVAL
				}
			}
		}
		f.unlink(from, name)
		f.unlink(to, newName)
		f.link(from, name, dst)
		f.link(to, newName, src)
		return 0
	case flags&^renameNoReplace != 0:
		return syscall.EINVAL
	case dst == nil:
	case flags&renameNoReplace != 0:
		return syscall.EEXIST
	case src.isDir() && !dst.isDir():
		return syscall.ENOTDIR
	case !src.isDir() && dst.isDir():
		return syscall.EISDIR
	case dst.isDir() && len(dst.children) > 0:
		return syscall.ENOTEMPTY
	}
	if dst != nil {
		f.unlink(to, newName)
	}
	f.unlink(from, name)
	f.link(to, newName, src)
	return 0
}

// Link adds a name to a regular file (a hard link).
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	dead := n.lock()
	defer n.unlock()
	if dead {
		return nil, syscall.EIO
	}
	t, ok := target.(*node)
	switch {
	case !ok || t.m.fs != n.m.fs:
		return nil, syscall.EXDEV
	case t.obj.isDir():
		return nil, syscall.EPERM
	case n.obj.children[name] != nil:
		return nil, syscall.EEXIST
	}
	n.m.fs.link(n.obj, name, t.obj)
	return n.child(ctx, t.obj, out), 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	n.lock()
	defer n.unlock()
	if !n.obj.isDir() {
		return nil, syscall.ENOTDIR
	}
	entries := make([]fuse.DirEntry, 0, len(n.obj.children))
	for name, o := range n.obj.children {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: o.mode, Ino: o.ino})
	}
	slices.SortFunc(entries, func(a, b fuse.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return fs.NewListDirStream(entries), 0
}

// statfsBlocks is the size the file system claims, in pages: 64 GiB.
const statfsBlocks = 16 << 20

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.lock()
	defer n.unlock()
	used := 0
	for o := range n.m.fs.files {
		used += o.data.cur.usedPages()
	}
	free := uint64(max(statfsBlocks-used, 0))
	*out = fuse.StatfsOut{
		Blocks:  statfsBlocks,
		Bfree:   free,
		Bavail:  free,
		Files:   1 << 20,
		Ffree:   1<<20 - uint64(len(n.m.fs.files)),
		Bsize:   pageSize,
		NameLen: 255,
		Frsize:  pageSize,
	}
	return 0
}
