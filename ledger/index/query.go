package index

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/dgraph-io/badger/v4"
)

// Query selects leaves. Fields combine with AND; the values of one field
// with OR. An empty field does not filter.
type Query struct {
	Kind         []string
	Service      []string
	Actor        []string // actor.id
	Action       []string
	Category     []string
	Outcome      []string
	ResourceType []string
	ResourceID   []string
	Tenant       []string
	// SubmittedBy names API keys: a leaf matches if its submitted_by is
	// one of them (events written before it was recorded have none).
	SubmittedBy []string
	// SourceIP holds addresses (as /32 or /128 prefixes) and prefixes;
	// a leaf matches if its source.ip is in any of them. IPv4-mapped
	// IPv6 prefixes are read as IPv4, as the log stores addresses.
	SourceIP []netip.Prefix
	// Since and Until bound the event time: Since <= time < Until. Each
	// bounds if it is not the zero time, or if HasSince (HasUntil) says
	// it was given: the zero time, 0001-01-01T00:00:00Z, is a time a
	// query may give (until it, nothing matches), and callers that take
	// times from users set them. A leaf without an event time matches no
	// bounded query.
	Since, Until time.Time
	// HasSince and HasUntil say that Since and Until bound even if zero.
	HasSince, HasUntil bool
}

// bounds reports whether Since and Until bound.
func (q *Query) bounds() (since, until bool) {
	return q.HasSince || !q.Since.IsZero(), q.HasUntil || !q.Until.IsZero()
}

// Empty reports whether q has no filter at all.
func (q *Query) Empty() bool {
	since, until := q.bounds()
	return len(q.equalities()) == 0 && len(q.SourceIP) == 0 && !since && !until
}

type equality struct {
	f      field
	values []string
}

func (q *Query) equalities() []equality {
	var eqs []equality
	for _, e := range []equality{
		{fieldKind, q.Kind}, {fieldService, q.Service}, {fieldActor, q.Actor},
		{fieldAction, q.Action}, {fieldCategory, q.Category}, {fieldOutcome, q.Outcome},
		{fieldResourceType, q.ResourceType}, {fieldResourceID, q.ResourceID}, {fieldTenant, q.Tenant},
		{fieldSubmittedBy, q.SubmittedBy},
	} {
		if len(e.values) > 0 {
			eqs = append(eqs, e)
		}
	}
	return eqs
}

// Search calls fn with the index of every leaf that matches q, below the
// indexed size and in [from, to), in log order (or in reverse if desc),
// until fn returns false. It returns the indexed size it searched: a
// search never sees a leaf the index has not reached when it starts.
// Callers page by passing the last index they got plus one as from (or, in
// reverse, as to); a page boundary stays valid as the log grows.
func (x *Index) Search(ctx context.Context, q Query, from, to uint64, desc bool, fn func(index uint64) bool) (uint64, error) {
	size := x.Size()
	to = min(to, size)
	if from >= to {
		return size, nil
	}
	first, last := chunkOf(from), chunkOf(to-1)
	for i := uint64(0); i <= uint64(last-first); i++ {
		c := first + uint32(i)
		if desc {
			c = last - uint32(i)
		}
		if err := ctx.Err(); err != nil {
			return size, err
		}
		base := uint64(c) << chunkBits
		lo := uint32(max(from, base) - base)
		hi := uint32(min(to, base+chunkSize) - base - 1) // inclusive
		bm, err := x.chunkMatch(c, q, size)
		if err != nil {
			return size, err
		}
		if !iterate(bm, lo, hi, desc, func(pos uint32) bool { return fn(base + uint64(pos)) }) {
			return size, nil
		}
	}
	return size, nil
}

// iterate calls fn for the positions of bm (all positions if bm is nil)
// in [lo, hi], ascending or descending, until fn returns false; it
// returns false if fn did.
func iterate(bm *roaring.Bitmap, lo, hi uint32, desc bool, fn func(uint32) bool) bool {
	switch {
	case bm == nil && !desc:
		for p := lo; p <= hi; p++ {
			if !fn(p) {
				return false
			}
		}
	case bm == nil:
		for p := int64(hi); p >= int64(lo); p-- {
			if !fn(uint32(p)) {
				return false
			}
		}
	case !desc:
		it := bm.Iterator()
		it.AdvanceIfNeeded(lo)
		for it.HasNext() {
			p := it.Next()
			if p > hi {
				break
			}
			if !fn(p) {
				return false
			}
		}
	default:
		if uint64(hi)+1 < chunkSize {
			bm = bm.Clone()
			bm.RemoveRange(uint64(hi)+1, chunkSize)
		}
		it := bm.ReverseIterator()
		for it.HasNext() {
			p := it.Next()
			if p < lo {
				break
			}
			if !fn(p) {
				return false
			}
		}
	}
	return true
}

// Count returns how many leaves below the indexed size match q, and the
// indexed size.
func (x *Index) Count(ctx context.Context, q Query) (uint64, uint64, error) {
	size := x.Size()
	if q.Empty() || size == 0 {
		return size, size, nil
	}
	var n uint64
	for c := uint32(0); c <= chunkOf(size-1); c++ {
		if err := ctx.Err(); err != nil {
			return 0, size, err
		}
		bm, err := x.chunkMatch(c, q, size)
		if err != nil {
			return 0, size, err
		}
		n += bm.GetCardinality()
	}
	return n, size, nil
}

// ValueCount is one answer of Top.
type ValueCount struct {
	Value string `json:"value"`
	Count uint64 `json:"count"`
}

// TopFields are the fields Top counts by.
var TopFields = []string{"source.ip", "actor.id", "service", "action", "category", "outcome", "resource.type", "resource.id", "tenant", "kind", "submitted_by"}

var topField = map[string]field{
	"source.ip": fieldIP, "actor.id": fieldActor, "service": fieldService, "action": fieldAction,
	"category": fieldCategory, "outcome": fieldOutcome, "resource.type": fieldResourceType,
	"resource.id": fieldResourceID, "tenant": fieldTenant, "kind": fieldKind,
	"submitted_by": fieldSubmittedBy,
}

// Top returns the n values of a field (one of TopFields) found most often
// among the leaves that match q, most frequent first (ties by value), and
// the indexed size. It fails with ErrUnknownField for another field.
func (x *Index) Top(ctx context.Context, q Query, name string, n int) ([]ValueCount, uint64, error) {
	fd, ok := topField[name]
	if !ok {
		return nil, 0, fmt.Errorf("%q (want one of %s): %w", name, strings.Join(TopFields, ", "), ErrUnknownField)
	}
	size := x.Size()
	counts := make(map[string]uint64)
	for c := uint32(0); size > 0 && c <= chunkOf(size-1); c++ {
		if err := ctx.Err(); err != nil {
			return nil, size, err
		}
		match, err := x.chunkMatch(c, q, size)
		if err != nil {
			return nil, size, err
		}
		if match != nil && match.IsEmpty() {
			continue
		}
		err = x.withChunk(c, func(p postings) error {
			return p.each(fd, func(value []byte, bm *roaring.Bitmap) {
				var k uint64
				if match == nil {
					k = bm.GetCardinality()
				} else {
					k = bm.AndCardinality(match)
				}
				if k > 0 {
					counts[string(value)] += k
				}
			})
		})
		if err != nil {
			return nil, size, fmt.Errorf("counting %s: %w", name, err)
		}
	}
	top := make([]ValueCount, 0, len(counts))
	for v, k := range counts {
		if fd == fieldIP {
			a, ok := ipFromValue([]byte(v))
			if !ok {
				continue
			}
			v = a.String()
		}
		top = append(top, ValueCount{Value: v, Count: k})
	}
	slices.SortFunc(top, func(a, b ValueCount) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Value, b.Value)
	})
	return top[:min(n, len(top))], size, nil
}

// chunkMatch returns the positions of the chunk's leaves below size that
// match q, or nil for every position if q has no filter and the chunk is
// full.
func (x *Index) chunkMatch(c uint32, q Query, size uint64) (*roaring.Bitmap, error) {
	base := uint64(c) << chunkBits
	end := min(size-base, chunkSize) // positions below end are indexed
	var out *roaring.Bitmap
	err := x.withChunk(c, func(r postings) error {
		var terms []*roaring.Bitmap
		for _, e := range q.equalities() {
			bm, err := anyOf(r, e.f, e.values)
			if err != nil {
				return err
			}
			terms = append(terms, bm)
		}
		if len(q.SourceIP) > 0 {
			bm, err := prefixes(r, q.SourceIP)
			if err != nil {
				return err
			}
			terms = append(terms, bm)
		}
		var cand *roaring.Bitmap
		if len(terms) > 0 {
			slices.SortFunc(terms, func(a, b *roaring.Bitmap) int {
				return int(a.GetCardinality()) - int(b.GetCardinality())
			})
			cand = terms[0]
			for _, t := range terms[1:] {
				if cand.IsEmpty() {
					break
				}
				cand.And(t)
			}
		}
		if hasSince, hasUntil := q.bounds(); hasSince || hasUntil {
			if cand != nil && cand.IsEmpty() {
				out = cand
				return nil
			}
			t, err := timeRange(r, q.Since, q.Until, hasSince, hasUntil, cand, base)
			if err != nil {
				return err
			}
			cand = t
		}
		if cand == nil && end == chunkSize {
			return nil
		}
		if cand == nil {
			cand = roaring.New()
			cand.AddRange(0, end)
		} else if end < chunkSize {
			// A write interrupted by a crash may have stored lists
			// beyond the indexed size.
			cand.RemoveRange(end, chunkSize)
		}
		out = cand
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("searching chunk %d of the index: %w", c, err)
	}
	return out, nil
}

// postings are the posting lists and event times of one chunk, in
// storage (chunkReader) or in memory (memReader).
type postings interface {
	// list returns the list of (f, value), empty if there is none; the
	// caller may modify it.
	list(f field, value []byte) (*roaring.Bitmap, error)
	// scan ORs the lists of f whose values lie in [lo, hi] (byte order)
	// into out.
	scan(f field, lo, hi []byte, out *roaring.Bitmap) error
	// each calls fn with every value of f and its list (not to be
	// modified or kept).
	each(f field, fn func(value []byte, bm *roaring.Bitmap)) error
	// time returns a leaf's event time (noTime if it has none).
	time(index uint64) (int64, error)
}

// withChunk calls fn with the postings of chunk c: the open chunk from
// memory (holding memMu shared), any other from storage.
func (x *Index) withChunk(c uint32, fn func(postings) error) error {
	x.memMu.RLock()
	if m := x.mem; m != nil && m.chunk == c {
		defer x.memMu.RUnlock()
		return fn(memReader{m: m})
	}
	x.memMu.RUnlock()
	return x.view(func(txn *badger.Txn) error { return fn(&chunkReader{segmentReader: newSegmentReader(txn, c)}) })
}

// memReader reads the open chunk. Index.memMu must be held shared.
type memReader struct{ m *memChunk }

func (r memReader) list(f field, value []byte) (*roaring.Bitmap, error) {
	l := r.m.lists[f][string(value)]
	if l == nil {
		return roaring.New(), nil
	}
	if l.bm != nil {
		return l.bm.Clone(), nil
	}
	return l.bitmap(), nil
}

func (r memReader) scan(f field, lo, hi []byte, out *roaring.Bitmap) error {
	for v, l := range r.m.lists[f] {
		if v >= string(lo) && v <= string(hi) {
			out.Or(l.bitmap())
		}
	}
	return nil
}

func (r memReader) each(f field, fn func([]byte, *roaring.Bitmap)) error {
	for v, l := range r.m.lists[f] {
		fn([]byte(v), l.bitmap())
	}
	return nil
}

func (r memReader) time(index uint64) (int64, error) {
	if i := index & (chunkSize - 1); i < uint64(len(r.m.times)) {
		return r.m.times[i], nil
	}
	return noTime, nil
}

// chunkReader reads a written chunk in one transaction: its segments
// and its event times.
type chunkReader struct {
	*segmentReader
	times map[uint64][]int64 // event time blocks read so far
}

// anyOf returns the union of the lists of f's values.
func anyOf(r postings, f field, values []string) (*roaring.Bitmap, error) {
	out := roaring.New()
	for _, v := range values {
		if v == "" {
			continue
		}
		bm, err := r.list(f, []byte(v))
		if err != nil {
			return nil, err
		}
		out.Or(bm)
	}
	return out, nil
}

// prefixes returns the positions whose source IP is in any of ps. Each
// prefix reads the lists of the finest indexed prefix length at least as
// long as its own: one list when the lengths match, else every stored
// list of that length within the prefix.
func prefixes(r postings, ps []netip.Prefix) (*roaring.Bitmap, error) {
	out := roaring.New()
	for _, p := range ps {
		p = normalizePrefix(p)
		if !p.IsValid() {
			continue
		}
		for _, lv := range ipLevels(p.Addr()) {
			bits := lv.bits
			if bits < p.Bits() {
				continue
			}
			lo, hi := ipValue(p.Addr(), bits), ipValue(lastAddr(p), bits)
			if bytes.Equal(lo, hi) {
				bm, err := r.list(lv.f, lo)
				if err != nil {
					return nil, err
				}
				out.Or(bm)
			} else if err := r.scan(lv.f, lo, hi, out); err != nil {
				return nil, err
			}
			break
		}
	}
	return out, nil
}

// normalizePrefix masks p and reads an IPv4-mapped IPv6 prefix as IPv4.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
}

// lastAddr returns the highest address in p (masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// timeRange returns the positions among cand (all if nil) whose event
// time t satisfies since <= t < until (each bound only if hasSince,
// hasUntil). Whole days and minutes inside the range come from their
// lists; the minutes at its ends from the event times.
func timeRange(r postings, since, until time.Time, hasSince, hasUntil bool, cand *roaring.Bitmap, base uint64) (*roaring.Bitmap, error) {
	s, u := int64(math.MinInt64), int64(math.MaxInt64)
	mLo, dLo := int64(math.MinInt64), int64(math.MinInt64)
	mHi, dHi := int64(math.MaxInt64), int64(math.MaxInt64)
	if hasSince {
		s = unixNano(since)
		mLo, dLo = -floorDiv(-s, minuteNano), -floorDiv(-s, dayNano)
	}
	if hasUntil {
		u = unixNano(until)
		mHi, dHi = floorDiv(u, minuteNano), floorDiv(u, dayNano)
	}
	out := roaring.New()
	if s >= u {
		return out, nil
	}
	scan := func(f field, lo, hi int64) error { // buckets [lo, hi)
		if lo >= hi {
			return nil
		}
		return r.scan(f, bucketValue(lo), bucketValue(hi-1), out)
	}
	// Whole days, then the whole minutes around them, from their lists.
	if dLo < dHi {
		if err := scan(fieldDay, dLo, dHi); err != nil {
			return nil, err
		}
		if hasSince {
			if err := scan(fieldMinute, mLo, dLo*1440); err != nil {
				return nil, err
			}
		}
		if hasUntil {
			if err := scan(fieldMinute, dHi*1440, mHi); err != nil {
				return nil, err
			}
		}
	} else if err := scan(fieldMinute, mLo, mHi); err != nil {
		return nil, err
	}
	if cand != nil {
		out.And(cand)
	}
	// The minutes the range cuts: check each leaf's time.
	var edges []int64
	if hasSince && s%minuteNano != 0 {
		edges = append(edges, floorDiv(s, minuteNano))
	}
	if hasUntil && u%minuteNano != 0 && (len(edges) == 0 || edges[0] != floorDiv(u, minuteNano)) {
		edges = append(edges, floorDiv(u, minuteNano))
	}
	for _, m := range edges {
		bm, err := r.list(fieldMinute, bucketValue(m))
		if err != nil {
			return nil, err
		}
		if cand != nil {
			bm.And(cand)
		}
		for it := bm.Iterator(); it.HasNext(); {
			pos := it.Next()
			t, err := r.time(base + uint64(pos))
			if err != nil {
				return nil, err
			}
			if t != noTime && s <= t && t < u {
				out.Add(pos)
			}
		}
	}
	return out, nil
}

// time returns the event time of a leaf from the time column.
func (r *chunkReader) time(index uint64) (int64, error) {
	blk := index >> blockBits
	ts, ok := r.times[blk]
	if !ok {
		item, err := r.txn.Get(timesKey(blk))
		if err == badger.ErrKeyNotFound {
			ts = nil
		} else if err != nil {
			return 0, err
		} else {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return 0, err
			}
			ts = decodeTimes(v)
		}
		if r.times == nil {
			r.times = make(map[uint64][]int64)
		}
		r.times[blk] = ts
	}
	if i := index & (blockSize - 1); i < uint64(len(ts)) {
		return ts[i], nil
	}
	return noTime, nil
}
