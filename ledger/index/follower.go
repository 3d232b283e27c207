package index

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// memChunk is the open chunk: its posting lists and event times, for the
// leaves indexed so far. The follower changes it holding Index.memMu
// exclusively; queries read it holding memMu shared.
type memChunk struct {
	chunk uint32
	lists [numFields]map[string]*plist // by field, then value
	times []int64                      // event times, by position
	// The lists and their keys are cut from slabs (newList): most values
	// are new ones, and two allocations for each were the index's most.
	// Nothing is written into a slab twice, and the chunk drops them all.
	slab []plist
	keys []byte
}

// newList returns a new, empty list of key (the field byte and value).
func (m *memChunk) newList(key []byte) *plist {
	if len(m.slab) == cap(m.slab) {
		m.slab = make([]plist, 0, 1024)
	}
	m.slab = append(m.slab, plist{})
	l := &m.slab[len(m.slab)-1]
	if cap(m.keys)-len(m.keys) < len(key) {
		m.keys = make([]byte, 0, max(32<<10, len(key)))
	}
	start := len(m.keys)
	m.keys = append(m.keys, key...)
	l.key = unsafe.String(&m.keys[start], len(key))
	l.pos = l.first[:0]
	return l
}

func newMemChunk(c uint32) *memChunk {
	m := &memChunk{chunk: c}
	for i := range m.lists {
		m.lists[i] = make(map[string]*plist)
	}
	return m
}

// plist is one posting list of the open chunk. A short list keeps its
// positions in a slice (most values of actors, addresses and resources
// occur a few times in a chunk); a longer one in a roaring bitmap.
type plist struct {
	key   string // field byte and value
	pos   []uint16
	bm    *roaring.Bitmap
	first [4]uint16 // pos's first array: most lists stay this short
}

// shortList is the most positions a plist keeps in its slice.
const shortList = 24

func (l *plist) add(pos uint32) {
	if l.bm == nil && len(l.pos) < shortList {
		l.pos = append(l.pos, uint16(pos))
		return
	}
	if l.bm == nil {
		l.bm = l.bitmap()
		l.pos = nil
	}
	l.bm.Add(pos)
}

// appendBytes appends the list in roaring's portable serialization, the
// bytes roaring.Bitmap.ToBytes writes. A short list is written directly:
// a chunk's positions are below 2^16, so it is one array container
// (RoaringFormatSpec: cookie 12346, one container, key 0 and cardinality
// - 1, its offset, then the positions as little-endian uint16s), and
// building a bitmap only to serialize it was most of writing a chunk.
func (l *plist) appendBytes(dst []byte) ([]byte, error) {
	if l.bm != nil {
		b, err := l.bm.ToBytes()
		return append(dst, b...), err
	}
	const header = 16
	dst = binary.LittleEndian.AppendUint32(dst, serialCookieNoRunContainer)
	dst = binary.LittleEndian.AppendUint32(dst, 1)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(l.pos)-1))
	dst = binary.LittleEndian.AppendUint32(dst, header)
	for _, p := range l.pos {
		dst = binary.LittleEndian.AppendUint16(dst, p)
	}
	return dst, nil
}

// serialCookieNoRunContainer opens a roaring serialization without run
// containers.
const serialCookieNoRunContainer = 12346

// bitmap returns the list as a bitmap: its own if it has one (not to be
// modified), else a new one.
func (l *plist) bitmap() *roaring.Bitmap {
	if l.bm != nil {
		return l.bm
	}
	bm := roaring.New()
	for _, p := range l.pos {
		bm.Add(uint32(p))
	}
	return bm
}

// follower is the state of Run. It is owned by the Run goroutine; mem is
// shared with queries (see memChunk).
type follower struct {
	x       *Index
	next    uint64 // the next leaf to index
	mem     *memChunk
	last    [numFields]*plist // the list each field's last value went to
	key     []byte            // scratch
	val     []byte            // scratch
	entries [][]byte          // scratch
	recent  []ledger.Leaf     // scratch
}

// newFollower loads the state at the stored size: the lists and event
// times of its chunk, as Run last wrote them when it stopped, and makes
// them the open chunk queries read.
func (x *Index) newFollower() (*follower, error) {
	next := x.stored.Load()
	f := &follower{x: x, next: next, mem: newMemChunk(chunkOf(next))}
	base := uint64(f.mem.chunk) << chunkBits
	err := x.view(func(txn *badger.Txn) error {
		r := newSegmentReader(txn, f.mem.chunk)
		for fd := field(1); fd < numFields; fd++ {
			err := r.each(fd, func(v []byte, bm *roaring.Bitmap) {
				bm = bm.Clone()
				if end := next - base; end < chunkSize {
					bm.RemoveRange(end, chunkSize) // beyond what is stored as indexed
				}
				key := string(append([]byte{byte(fd)}, v...))
				f.mem.lists[fd][key[1:]] = &plist{key: key, bm: bm}
			})
			if err != nil {
				return fmt.Errorf("reading posting lists: %w", err)
			}
		}
		for b := base; b < next; b += blockSize {
			item, err := txn.Get(timesKey(b >> blockBits))
			if err != nil {
				return fmt.Errorf("reading event times of block %d: %w", b>>blockBits, err)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			ts := decodeTimes(v)
			f.mem.times = append(f.mem.times, ts[:min(uint64(len(ts)), next-b)]...)
		}
		if uint64(len(f.mem.times)) != next-base {
			return fmt.Errorf("event times: %d stored, want %d: %w", len(f.mem.times), next-base, ledger.ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading index state at %d: %w", next, err)
	}
	x.memMu.Lock()
	x.mem = f.mem
	x.memMu.Unlock()
	return f, nil
}

// follow indexes the log's entry bundles from f.next on until ctx ends or
// reading or writing fails. Every full chunk is written (persist) before
// the next one starts.
func (f *follower) follow(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Take the commit signal before reading the size, so that a
		// commit in between is not missed.
		var committed <-chan struct{}
		if cl, ok := f.x.cfg.Log.(committedLog); ok {
			committed = cl.Committed()
		}
		size, _ := f.x.cfg.Log.Size()
		if f.next >= size {
			f.x.progress.Store(time.Now().UnixNano())
			if committed != nil {
				select {
				case <-committed:
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			t := time.NewTimer(f.x.cfg.PollInterval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			continue
		}
		if uint64(f.mem.chunk) != f.next>>chunkBits {
			// The open chunk is full: write it, then start the next.
			if err := f.persist(ctx, true); err != nil {
				return err
			}
		}
		// The entries the log still holds in memory, up to the chunk's end.
		chunkEnd := (f.next>>chunkBits + 1) << chunkBits
		if rl, ok := f.x.cfg.Log.(recentLog); ok {
			f.recent = rl.RecentLeaves(f.recent[:0], f.next, int(min(size, chunkEnd)-f.next))
			if len(f.recent) > 0 {
				f.x.memMu.Lock()
				for _, lf := range f.recent {
					if d, ok := lf.Decoded.(*event.Decoded); ok {
						f.addDecoded(lf.Index, d)
					} else {
						f.add(lf.Index, lf.Data)
					}
				}
				f.x.memMu.Unlock()
				clear(f.recent)
				f.advance(f.next+uint64(len(f.recent)), size)
				continue
			}
		}
		b := f.next / ledger.TileWidth
		first := b * ledger.TileWidth
		width := 0
		if size-first < ledger.TileWidth {
			width = int(size - first)
		}
		raw, err := f.x.cfg.Log.ReadEntryBundle(ctx, b, width)
		if err != nil {
			return fmt.Errorf("reading entry bundle %d: %w", b, err)
		}
		if f.entries, err = splitBundle(f.entries[:0], raw); err != nil {
			return fmt.Errorf("entry bundle %d: %w", b, err)
		}
		end := first + uint64(len(f.entries))
		f.x.memMu.Lock()
		for i := f.next; i < end; i++ {
			f.add(i, f.entries[i-first])
		}
		f.x.memMu.Unlock()
		f.advance(end, size)
	}
}

// advance records that the leaves before end are indexed, of a log of
// the given size.
func (f *follower) advance(end, size uint64) {
	f.next = end
	f.x.setSize(end)
	f.x.progress.Store(time.Now().UnixNano())
	if size <= end+f.x.cfg.MaxLag {
		f.x.caughtUp.Store(true)
	}
}

// committedLog is a Log that signals its commits, as *ledger.Ledger
// does: a follower that has caught up waits for the next one instead of
// polling every Config.PollInterval, so an idle index costs nothing.
type committedLog interface {
	Committed() <-chan struct{}
}

// recentLog is a Log that holds its last entries in memory
// (ledger.Ledger does), with what they were appended with.
type recentLog interface {
	RecentLeaves(out []ledger.Leaf, from uint64, limit int) []ledger.Leaf
}

// splitBundle appends the entries of a C2SP entry bundle (uint16
// big-endian length prefixes) to out.
func splitBundle(out [][]byte, b []byte) ([][]byte, error) {
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("truncated entry: %w", ledger.ErrCorrupt)
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, fmt.Errorf("truncated entry: %w", ledger.ErrCorrupt)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

// add indexes the leaf at index in the open chunk. f.x.memMu must be held
// exclusively.
func (f *follower) add(index uint64, data []byte) {
	pos := uint32(index & (chunkSize - 1))
	fl, err := extract(data)
	if err != nil {
		// Every leaf the log writes parses; one that does not is found
		// by unfiltered queries only.
		f.x.metrics.unparsable.Inc()
		f.x.log.Warn("an entry of the log is not JSON the index can read; it is found only by unfiltered queries", "index", index)
	}
	f.put(fieldKind, fl.kind, pos)
	f.put(fieldService, fl.service, pos)
	f.put(fieldActor, fl.actor, pos)
	f.put(fieldAction, fl.action, pos)
	f.put(fieldCategory, fl.category, pos)
	f.put(fieldOutcome, fl.outcome, pos)
	f.put(fieldResourceType, fl.resourceType, pos)
	f.put(fieldResourceID, fl.resourceID, pos)
	f.put(fieldTenant, fl.tenant, pos)
	f.put(fieldSubmittedBy, fl.submittedBy, pos)
	if fl.ip != nil {
		if a, err := netip.ParseAddr(string(fl.ip)); err == nil {
			f.putAddr(a, pos)
		}
	}
	ns := noTime
	if fl.time != nil {
		if t, ok := parseTime(fl.time); ok {
			ns = unixNano(t)
			f.putTime(ns, pos)
		}
	}
	f.mem.times = append(f.mem.times, ns)
}

// putAddr adds pos to the lists of a source address and its prefixes.
func (f *follower) putAddr(a netip.Addr, pos uint32) {
	a = a.Unmap().WithZone("")
	for _, lv := range ipLevels(a) {
		f.val = appendIPValue(f.val[:0], a, lv.bits)
		f.put(lv.f, f.val, pos)
	}
}

// putTime adds pos to the lists of the minute and the day of an event
// time (Unix nanoseconds).
func (f *follower) putTime(ns int64, pos uint32) {
	f.val = appendBucket(f.val[:0], floorDiv(ns, minuteNano))
	f.put(fieldMinute, f.val, pos)
	f.val = appendBucket(f.val[:0], floorDiv(ns, dayNano))
	f.put(fieldDay, f.val, pos)
}

// addDecoded indexes the event leaf at index from what the API decoded it
// from, as add would from its bytes. f.x.memMu must be held exclusively.
func (f *follower) addDecoded(index uint64, d *event.Decoded) {
	pos := uint32(index & (chunkSize - 1))
	ev := d.Event
	f.put(fieldKind, bytesOf(string(event.KindEvent)), pos)
	f.put(fieldService, bytesOf(ev.Service), pos)
	f.put(fieldActor, bytesOf(ev.Actor.ID), pos)
	f.put(fieldAction, bytesOf(ev.Action), pos)
	f.put(fieldCategory, bytesOf(ev.Category), pos)
	f.put(fieldOutcome, bytesOf(ev.Outcome), pos)
	if r := ev.Resource; r != nil {
		f.put(fieldResourceType, bytesOf(r.Type), pos)
		f.put(fieldResourceID, bytesOf(r.ID), pos)
	}
	f.put(fieldTenant, bytesOf(ev.Tenant), pos)
	f.put(fieldSubmittedBy, bytesOf(d.SubmittedBy), pos)
	if a := ev.Source.IP; a.IsValid() {
		f.putAddr(a, pos)
	}
	ns := unixNano(ev.Time)
	f.putTime(ns, pos)
	f.mem.times = append(f.mem.times, ns)
}

// bytesOf returns the bytes of s, without copying: put only reads them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// put adds pos to the list of (fd, value); an empty value is not indexed.
func (f *follower) put(fd field, value []byte, pos uint32) {
	if len(value) == 0 {
		return
	}
	// Consecutive leaves often share a value (kind, minute, day, ...):
	// skip the map then.
	l := f.last[fd]
	if l == nil || l.key[1:] != string(value) {
		l = f.mem.lists[fd][string(value)]
		if l == nil {
			f.key = append(append(f.key[:0], byte(fd)), value...)
			l = f.mem.newList(f.key)
			f.mem.lists[fd][l.key[1:]] = l
		}
		f.last[fd] = l
	}
	l.add(pos)
}

// persist writes the open chunk's lists and event times, then the stored
// size; with seal (the chunk is full) it then starts the next chunk.
// Queries read the chunk from memory until it is written.
func (f *follower) persist(ctx context.Context, seal bool) error {
	stored := f.x.stored.Load()
	if f.next == stored && !seal {
		return nil
	}
	start := time.Now()
	// Compress the lists' runs; queries must not read them meanwhile.
	f.x.memMu.Lock()
	for _, byValue := range f.mem.lists {
		for _, l := range byValue {
			if l.bm != nil {
				l.bm.RunOptimize()
			}
		}
	}
	f.x.memMu.Unlock()
	base := uint64(f.mem.chunk) << chunkBits
	err := f.x.write(func(wb *badger.WriteBatch) error {
		for fd, byValue := range f.mem.lists {
			if len(byValue) == 0 {
				continue
			}
			entries := make([]segmentEntry, 0, len(byValue))
			var buf []byte // the lists, one after the other
			for v, l := range byValue {
				start := len(buf)
				var err error
				if buf, err = l.appendBytes(buf); err != nil {
					return err
				}
				// If buf grows, the lists before stay in the old array.
				entries = append(entries, segmentEntry{value: v, list: buf[start:len(buf):len(buf)]})
			}
			if err := writeSegment(wb, f.mem.chunk, field(fd), entries); err != nil {
				return err
			}
		}
		for b := max(base, stored&^(blockSize-1)); b < f.next; b += blockSize {
			end := min(f.next, b+blockSize)
			if err := wb.Set(timesKey(b>>blockBits), encodeTimes(f.mem.times[b-base:end-base])); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = f.writeMeta(ctx)
	}
	if err != nil {
		return fmt.Errorf("writing the index: %w", err)
	}
	f.x.stored.Store(f.next)
	f.x.metrics.flushes.Observe(time.Since(start).Seconds())
	if seal {
		m := newMemChunk(chunkOf(f.next))
		f.x.memMu.Lock()
		f.mem, f.x.mem = m, m
		f.last = [numFields]*plist{}
		f.x.memMu.Unlock()
	}
	return nil
}

// writeMeta records the stored size and the leaf hash below it. The size
// goes last, in its own transaction: storage never says a leaf is indexed
// before its lists are written.
func (f *follower) writeMeta(ctx context.Context) error {
	m := meta{Version: metaVersion, Origin: f.x.cfg.Log.Origin(), Size: f.next}
	if f.next > 0 {
		_, h, err := f.x.cfg.Log.Entry(ctx, f.next-1)
		if err != nil {
			return err
		}
		m.LeafHash = h
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return f.x.update(func(txn *badger.Txn) error { return txn.Set(keyMeta, raw) })
}
