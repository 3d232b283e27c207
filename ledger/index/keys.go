package index

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Storage layout. The index owns its Badger directory; nothing else reads
// or writes it.
//
//	p | chunk (4) | field (1)  the chunk's segment of that field (segment.go): for
//	                           each value, a roaring bitmap of the positions
//	                           (index - chunk<<chunkBits) of the leaves that have it
//	p | chunk (4) | 0xff | block (8)
//	                           event times of the 4,096 leaves of the block
//	                           (int64 Unix ns each)
//	z                          meta: the stored size and the leaf hash below it
//
// A chunk is 65,536 consecutive leaves, written once when full (and when
// Run stops); the open chunk is in memory. A query in log order reads one
// chunk after another and stops as soon as its page is full.
//
// Everything a chunk's write stores sorts after every earlier chunk, and
// the meta after all of them: a compaction of the newest tables then
// overlaps only the tables at the end of the key space, where version 2
// (meta under m, times under t, the posting lists between them) made every
// compaction copy the whole index again (bursts of 40-55 tables in
// 10 s during the 10-minute run, BENCHMARKS.md). An index of an earlier
// version is rebuilt from the log.
const (
	prefixPosting = 'p'
	prefixMeta    = 'z'
	prefixMetaV2  = 'm' // the meta of version 2 and before
	fieldTimes    = 0xff

	chunkBits  = 16
	chunkSize  = 1 << chunkBits
	blockBits  = 12
	blockSize  = 1 << blockBits
	noTime     = int64(-1 << 63) // a leaf without an event time
	minuteNano = int64(time.Minute)
	dayNano    = int64(24 * time.Hour)
)

// field identifies a posting list family.
type field byte

// Indexed fields. The IP levels index prefixes so that a CIDR query reads
// a few lists rather than one per address: levels 1, 2, 3 are /8, /16,
// /24 of IPv4; levels 1, 2, 3, 4 are /16, /32, /48, /64 of IPv6. Time is
// indexed by minute and by day; the time column resolves the minutes at a
// range's ends.
const (
	fieldKind field = 1 + iota
	fieldService
	fieldActor
	fieldAction
	fieldCategory
	fieldOutcome
	fieldResourceType
	fieldResourceID
	fieldTenant
	fieldIP
	fieldIP1
	fieldIP2
	fieldIP3
	fieldMinute
	fieldDay
	fieldIP4
	// fieldSubmittedBy is the leaf's submitted_by, the API key that
	// submitted an event. Chunks written before it was indexed have no
	// list of it, nor had their leaves one: no rebuild is needed.
	fieldSubmittedBy
	numFields // one more than the last field
)

// ipLevel is one indexed prefix length of one address family.
type ipLevel struct {
	f    field
	bits int
}

// ipLevels4 and ipLevels6 are the indexed prefix lengths of each family,
// coarsest first, ending with the exact address.
var (
	ipLevels4 = []ipLevel{{fieldIP1, 8}, {fieldIP2, 16}, {fieldIP3, 24}, {fieldIP, 32}}
	ipLevels6 = []ipLevel{{fieldIP1, 16}, {fieldIP2, 32}, {fieldIP3, 48}, {fieldIP4, 64}, {fieldIP, 128}}
)

func ipLevels(a netip.Addr) []ipLevel {
	if a.Is4() {
		return ipLevels4
	}
	return ipLevels6
}

func chunkOf(index uint64) uint32 { return uint32(index >> chunkBits) }

// postingPrefix is the key prefix of a field's lists in a chunk.
func postingPrefix(chunk uint32, f field) []byte {
	k := make([]byte, 6, 6+17)
	k[0] = prefixPosting
	binary.BigEndian.PutUint32(k[1:], chunk)
	k[5] = byte(f)
	return k
}

// timesKey is the key of a block's event times, in the block's chunk.
func timesKey(block uint64) []byte {
	k := postingPrefix(uint32(block>>(chunkBits-blockBits)), fieldTimes)
	return binary.BigEndian.AppendUint64(k, block)
}

// ipValue is the posting value of an address at a prefix length that is
// a multiple of 8: the family (4 or 6) and the prefix's bytes.
func ipValue(a netip.Addr, bits int) []byte {
	return appendIPValue(make([]byte, 0, 17), a, bits)
}

func appendIPValue(v []byte, a netip.Addr, bits int) []byte {
	if a.Is4() {
		b := a.As4()
		return append(append(v, 4), b[:bits/8]...)
	}
	b := a.As16()
	return append(append(v, 6), b[:bits/8]...)
}

// ipFromValue turns an exact IP posting value back into an address.
func ipFromValue(v []byte) (netip.Addr, bool) {
	if len(v) < 1 {
		return netip.Addr{}, false
	}
	switch {
	case v[0] == 4 && len(v) == 5:
		return netip.AddrFrom4([4]byte(v[1:])), true
	case v[0] == 6 && len(v) == 17:
		return netip.AddrFrom16([16]byte(v[1:])), true
	}
	return netip.Addr{}, false
}

// bucketValue encodes a time bucket so that buckets sort as numbers,
// negative ones (before 1970) included.
func bucketValue(b int64) []byte {
	return appendBucket(make([]byte, 0, 8), b)
}

func appendBucket(v []byte, b int64) []byte {
	return binary.BigEndian.AppendUint64(v, uint64(b)^(1<<63))
}

// floorDiv divides rounding towards minus infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// unixNano returns t in Unix nanoseconds, saturated at the range an int64
// holds (years 1678 to 2262).
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, -1<<63+1)):
		return -1<<63 + 1
	case t.After(time.Unix(0, 1<<63-1)):
		return 1<<63 - 1
	}
	return t.UnixNano()
}

func putUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
func getUint64(b []byte) uint64    { return binary.BigEndian.Uint64(b) }
