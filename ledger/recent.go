package ledger

import "sync"

// Followers (the detector, the index, the responders) read every entry
// soon after it is committed, and each decoded it on its own. The ledger
// keeps the entries of its last commits in memory, with what the appender
// decoded each entry from (Entry.Decoded), so that a follower that keeps
// up reads neither storage nor JSON. One that falls behind reads storage
// as before.

// Bounds of the recent entries: by count, and by the bytes of the entries
// (what the appender decoded them from is about as large).
const (
	recentEntries = 1 << 15
	recentBytes   = 8 << 20
)

// recentLeaves is a ring of the last committed entries, consecutive
// indexes. It is safe for concurrent use.
type recentLeaves struct {
	mu    sync.Mutex
	ring  []Leaf // ring[i % len(ring)] is entry i, for first <= i < first+n
	first uint64
	n     int
	bytes int
}

func newRecentLeaves() *recentLeaves {
	return &recentLeaves{ring: make([]Leaf, recentEntries)}
}

// add appends committed entries, which must follow the last ones added
// (otherwise the ring starts again from them), dropping the oldest ones
// beyond the bounds.
func (r *recentLeaves) add(leaves []Leaf) {
	if len(leaves) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n > 0 && leaves[0].Index != r.first+uint64(r.n) {
		r.dropLocked(r.n)
	}
	if r.n == 0 {
		r.first = leaves[0].Index
	}
	for _, lf := range leaves {
		if r.n == len(r.ring) || r.bytes+len(lf.Data) > recentBytes {
			r.dropLocked(max(1, r.n/8))
		}
		r.ring[(r.first+uint64(r.n))%uint64(len(r.ring))] = lf
		r.n++
		r.bytes += len(lf.Data)
	}
}

// dropLocked forgets the k oldest entries.
func (r *recentLeaves) dropLocked(k int) {
	for range min(k, r.n) {
		i := r.first % uint64(len(r.ring))
		r.bytes -= len(r.ring[i].Data)
		r.ring[i] = Leaf{}
		r.first++
		r.n--
	}
}

// read appends to out the held entries from index from on, at most limit
// of them; none if entry from is not held.
func (r *recentLeaves) read(out []Leaf, from uint64, limit int) []Leaf {
	r.mu.Lock()
	defer r.mu.Unlock()
	if from < r.first || from >= r.first+uint64(r.n) {
		return out
	}
	end := min(r.first+uint64(r.n), from+uint64(limit))
	for i := from; i < end; i++ {
		out = append(out, r.ring[i%uint64(len(r.ring))])
	}
	return out
}
