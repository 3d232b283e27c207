package powerfs

import "maps"

// pageSize is the unit in which file content is stored and shared between
// the current and the synced state of a file.
const pageSize = 4096

type page [pageSize]byte

// content is the sparse content of a regular file: pages absent from the
// map read as zeros, so that a file truncated to 128 MiB costs nothing
// until it is written.
type content struct {
	size  int64
	pages map[int64]*page
}

func (c content) clone() content {
	return content{size: c.size, pages: maps.Clone(c.pages)}
}

// usedPages is how many pages hold data.
func (c content) usedPages() int { return len(c.pages) }

// readAt copies the content at off into dest and returns how many bytes it
// copied: fewer than len(dest) only at the end of the file.
func (c content) readAt(dest []byte, off int64) int {
	if off >= c.size {
		return 0
	}
	n := int(min(int64(len(dest)), c.size-off))
	for done := 0; done < n; {
		pi, po := (off+int64(done))/pageSize, (off+int64(done))%pageSize
		k := min(n-done, pageSize-int(po))
		if p := c.pages[pi]; p != nil {
			copy(dest[done:done+k], p[po:])
		} else {
			clear(dest[done : done+k])
		}
		done += k
	}
	return n
}

// file is the data of a regular file: what a power cut would leave
// (synced) and what readers see now (cur). The two share every page that
// has not been written since the last fsync; a write copies a shared page
// first (copy on write), so that synced is never changed by a write.
type file struct {
	cur    content
	synced content
	// dirty holds the indexes of the pages of cur that may differ from
	// synced: written, zeroed or dropped since the last fsync.
	dirty map[int64]struct{}
}

func newFile() *file {
	return &file{
		cur:    content{pages: map[int64]*page{}},
		synced: content{pages: map[int64]*page{}},
		dirty:  map[int64]struct{}{},
	}
}

// writable returns page pi of cur, ready to be changed: a page of its own,
// not shared with synced. whole says the caller overwrites all of it.
func (f *file) writable(pi int64, whole bool) *page {
	p := f.cur.pages[pi]
	if p == nil || p == f.synced.pages[pi] {
		np := new(page)
		if p != nil && !whole {
			*np = *p
		}
		p = np
		f.cur.pages[pi] = p
	}
	f.dirty[pi] = struct{}{}
	return p
}

// writeAt writes data at off into the current state, growing the file.
func (f *file) writeAt(data []byte, off int64) {
	end := off + int64(len(data))
	for len(data) > 0 {
		pi, po := off/pageSize, int(off%pageSize)
		k := min(len(data), pageSize-po)
		p := f.writable(pi, po == 0 && k == pageSize)
		copy(p[po:], data[:k])
		data, off = data[k:], off+int64(k)
	}
	f.cur.size = max(f.cur.size, end)
}

// truncate sets the size of the current state. Shrinking drops the pages
// past the end and zeroes the tail of the last one, so that growing the
// file again reads zeros there.
func (f *file) truncate(size int64) {
	if size < f.cur.size {
		first := (size + pageSize - 1) / pageSize // first page wholly past the end
		for pi := range f.cur.pages {
			if pi >= first {
				delete(f.cur.pages, pi)
				f.dirty[pi] = struct{}{}
			}
		}
		if po := size % pageSize; po != 0 {
			if pi := size / pageSize; f.cur.pages[pi] != nil {
				clear(f.writable(pi, false)[po:])
			}
		}
	}
	f.cur.size = size
}

// zeroRange zeroes [off, off+n) within the current size (a punched hole).
func (f *file) zeroRange(off, n int64) {
	end := min(off+n, f.cur.size)
	for off < end {
		pi, po := off/pageSize, off%pageSize
		k := min(end-off, pageSize-po)
		switch {
		case f.cur.pages[pi] == nil:
		case po == 0 && k == pageSize:
			delete(f.cur.pages, pi)
			f.dirty[pi] = struct{}{}
		default:
			clear(f.writable(pi, false)[po : po+k])
		}
		off += k
	}
}

// unsynced reports whether a power cut would change the file.
func (f *file) unsynced() bool {
	return len(f.dirty) > 0 || f.cur.size != f.synced.size
}

// sync makes the current state the synced one. The pages it hands over
// become shared, so the next write to them copies them.
func (f *file) sync() {
	for pi := range f.dirty {
		if p := f.cur.pages[pi]; p != nil {
			f.synced.pages[pi] = p
		} else {
			delete(f.synced.pages, pi)
		}
	}
	f.synced.size = f.cur.size
	clear(f.dirty)
}

// revert discards every unsynced change and returns how many pages it
// threw away.
func (f *file) revert() int {
	n := len(f.dirty)
	f.cur = f.synced.clone()
	clear(f.dirty)
	return n
}
