package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// auditChunk is how many entry bundles (of 256 entries) SelfAudit checks
// between pauses, in which it lets other goroutines run and Close proceed,
// and notices a cancelled ctx: a few milliseconds of work.
const auditChunk = 16

// leafPrefix starts the input of an RFC 6962 leaf hash.
var leafPrefix = []byte{rfc6962.RFC6962LeafHashPrefix}

// IntegrityRecord names the kind of stored record an IntegrityError is
// about.
type IntegrityRecord string

// The records an IntegrityError can be about.
const (
	IntegrityBundle     IntegrityRecord = "entry bundle"
	IntegrityTile       IntegrityRecord = "tile"
	IntegrityCheckpoint IntegrityRecord = "checkpoint"
	IntegrityTreeSize   IntegrityRecord = "tree size"
)

// IntegrityError is the first place where a SelfAudit found stored data
// disagreeing with itself or with the latest signed checkpoint. It wraps
// ErrIntegrity.
type IntegrityError struct {
	// Record is the kind of record at fault.
	Record IntegrityRecord
	// Level is the tile level (IntegrityTile only).
	Level uint8
	// Index is the index of the entry bundle or tile, or the size of
	// the checkpoint.
	Index uint64
	// Offset is the entry within the bundle or the hash within the tile
	// that is wrong, or -1 if the record as a whole is (missing,
	// undecodable, too short).
	Offset int
	// Detail says what is wrong.
	Detail string
}

// Place names the record, for example "tile 1/0 hash 5" or "entry bundle 3
// entry 17 (leaf 785)".
func (e *IntegrityError) Place() string {
	switch e.Record {
	case IntegrityBundle:
		if e.Offset >= 0 {
			return fmt.Sprintf("entry bundle %d entry %d (leaf %d)", e.Index, e.Offset, e.Index*TileWidth+uint64(e.Offset))
		}
		return fmt.Sprintf("entry bundle %d", e.Index)
	case IntegrityTile:
		if e.Offset >= 0 {
			return fmt.Sprintf("tile %d/%d hash %d", e.Level, e.Index, e.Offset)
		}
		return fmt.Sprintf("tile %d/%d", e.Level, e.Index)
	case IntegrityCheckpoint:
		return fmt.Sprintf("checkpoint of size %d", e.Index)
	}
	return string(e.Record)
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("%s: %s", e.Place(), e.Detail)
}

// Unwrap returns ErrIntegrity.
func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

// SelfAuditReport is what a SelfAudit checked and found.
type SelfAuditReport struct {
	// Size and Root are those of the checkpoint audited: the latest
	// signed one when the audit started.
	Size uint64
	Root []byte
	// Leaves is the number of entries read and hashed, Bundles the entry
	// bundles read, Tiles the hash tiles (of every level) checked.
	Leaves, Bundles, Tiles uint64
	// Duration is how long the audit took.
	Duration time.Duration
	// Clean is true if the audit went through to the end and everything
	// matched.
	Clean bool
	// Failure is the first mismatch found, nil if none was (Clean, or
	// the audit ended early on an I/O error, Close or ctx).
	Failure *IntegrityError
}

// LeavesPerSecond returns the audit's speed.
func (r SelfAuditReport) LeavesPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Leaves) / r.Duration.Seconds()
}

func (r SelfAuditReport) result() string {
	switch {
	case r.Clean:
		return "ok"
	case r.Failure != nil:
		return "integrity_failure"
	}
	return "incomplete"
}

// String formats the report as one logfmt line, for example
//
//	self-audit result=ok size=3000 leaves=3000 bundles=12 tiles=13 took=4ms leaves_per_s=750000
//
// followed, on a mismatch, by at="tile 1/0 hash 5" detail="...".
func (r SelfAuditReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "self-audit result=%s size=%d leaves=%d bundles=%d tiles=%d took=%s leaves_per_s=%.0f",
		r.result(), r.Size, r.Leaves, r.Bundles, r.Tiles, r.Duration.Round(time.Millisecond), r.LeavesPerSecond())
	if r.Failure != nil {
		fmt.Fprintf(&b, " at=%q detail=%q", r.Failure.Place(), r.Failure.Detail)
	}
	return b.String()
}

// LogValue makes the report a group of attributes for log/slog.
func (r SelfAuditReport) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("result", r.result()),
		slog.Uint64("size", r.Size),
		slog.String("root", base64.StdEncoding.EncodeToString(r.Root)),
		slog.Uint64("leaves", r.Leaves),
		slog.Uint64("bundles", r.Bundles),
		slog.Uint64("tiles", r.Tiles),
		slog.Duration("took", r.Duration),
		slog.Float64("leaves_per_s", r.LeavesPerSecond()),
	}
	if r.Failure != nil {
		attrs = append(attrs, slog.String("at", r.Failure.Place()), slog.String("detail", r.Failure.Detail))
	}
	return slog.GroupValue(attrs...)
}

// SelfAudit checks the stored log against its latest signed checkpoint,
// reading storage directly. In one storage snapshot it reads the latest
// checkpoint and verifies its signature with the log's own key; then,
// for exactly the checkpoint's N entries (the durable tree may be larger
// by then, and is not looked at), it reads every entry bundle, hashes
// every entry (RFC 6962 leaf hash) and checks that the level-0 hash tiles
// hold exactly those hashes, checks that every hash of every higher tile
// is the hash of the 256 children stored in the tile below, and
// recomputes the root from the leaves (a compact range) and compares it
// with the checkpoint's. It does not check the records derived from the
// entries (hash runs, dedup records): a full Open does.
//
// It returns an error wrapping an *IntegrityError, which wraps
// ErrIntegrity, at the first mismatch (which it also puts in the report);
// ctx.Err() if ctx ends first; ErrClosed if the ledger closes first; any
// other error is a storage (I/O) error that says nothing about the data.
// A storage checksum failure counts as a mismatch. A value-log GC that
// deletes a value-log file during the audit can make it fail with such an
// I/O error (never with ErrIntegrity): schedule the two apart, or retry.
//
// A mismatch is recorded in the ledger: Healthy reports it, wrapping
// ErrIntegrity, until the process restarts (Open then verifies everything
// and refuses to start on corrupt storage unless QuickOpen is set). A
// later audit that passes does not clear it: corruption is not
// transient, and data that fails once cannot be trusted because it
// passes again. The ledger does not fail stop on it: appends, reads and
// checkpoint signing go on, so that a damaged old bundle does not stop
// the intake of new events; raising the alert is the caller's job.
//
// SelfAudit is safe to call concurrently with everything else. It runs
// in the calling goroutine, holds one bundle and one tile per level in
// memory, and pauses every few milliseconds so that the server keeps
// serving and Close waits for at most one pause.
func (l *Ledger) SelfAudit(ctx context.Context) (SelfAuditReport, error) {
	start := l.cfg.Clock()
	var rep SelfAuditReport
	err := l.selfAudit(ctx, &rep)
	rep.Duration = l.cfg.Clock().Sub(start)
	var ie *IntegrityError
	if errors.As(err, &ie) {
		rep.Failure = ie
		if l.integrity.CompareAndSwap(nil, ie) {
			l.log.ErrorContext(ctx, "self-audit found stored data that disagrees with itself or with the signed checkpoint; the ledger reports unhealthy until restarted, appends go on",
				"report", rep)
		}
		return rep, fmt.Errorf("self-audit of the tree of size %d: %w", rep.Size, err)
	}
	if err != nil {
		return rep, err
	}
	rep.Clean = true
	l.log.DebugContext(ctx, "self-audit passed", "report", rep)
	return rep, nil
}

func (l *Ledger) selfAudit(ctx context.Context, rep *SelfAuditReport) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a := &auditor{
		l:      l,
		rep:    rep,
		rng:    rangeFactory.NewEmptyRange(0),
		leaf:   sha256.New(),
		leaves: make([]byte, 0, TileWidth*hashSize),
	}
	var cp *Checkpoint
	err := l.withDB(func() error {
		a.txn = l.db.NewTransaction(false)
		var err error
		if cp, err = l.readLatestCheckpoint(a.txn); err != nil {
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
				// Name the checkpoint by the size the latest-checkpoint
				// record gives, if it gives one.
				if v, _ := get(a.txn, keyLatestCP); len(v) == 16 {
					rep.Size, _ = decodeUint64(v[:8])
				}
				return &IntegrityError{Record: IntegrityCheckpoint, Index: rep.Size, Offset: -1, Detail: err.Error()}
			}
			return fmt.Errorf("reading the latest checkpoint: %w", err)
		}
		rep.Size, rep.Root, a.size = cp.Size, cp.Hash, cp.Size
		v, err := get(a.txn, keySize)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("reading the tree size: %w", err)
		}
		if size, _, derr := decodeSizeRecord(v); err != nil || derr != nil || size < cp.Size {
			return &IntegrityError{Record: IntegrityTreeSize, Offset: -1,
				Detail: fmt.Sprintf("the stored tree size record (%x) is missing, malformed or below the checkpoint's %d", v, cp.Size)}
		}
		return nil
	})
	if a.txn != nil {
		defer func() {
			// A transaction of a closed database is left alone.
			_ = l.withDB(func() error { a.txn.Discard(); return nil })
		}()
	}
	if err != nil {
		return err
	}

	bundles := bundleCount(a.size)
	for b := uint64(0); b < bundles; {
		if err := l.pauseAudit(ctx); err != nil {
			return err
		}
		end := min(bundles, b+auditChunk)
		err := l.withDB(func() error {
			for ; b < end; b++ {
				if err := a.bundle(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if a.rng.End() != a.size {
		panic(fmt.Sprintf("ledger: self-audit hashed %d leaves of %d", a.rng.End(), a.size))
	}
	root, err := rootOf(a.rng)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, cp.Hash) {
		return &IntegrityError{Record: IntegrityCheckpoint, Index: cp.Size, Offset: -1,
			Detail: fmt.Sprintf("the stored entries and tiles agree on root %s, but the signed checkpoint says %s",
				base64.StdEncoding.EncodeToString(root), base64.StdEncoding.EncodeToString(cp.Hash))}
	}
	return nil
}

// withDB runs fn unless storage is closed, and keeps Close from closing
// it meanwhile.
func (l *Ledger) withDB(fn func() error) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return ErrClosed
	}
	return fn()
}

// pauseAudit lets other goroutines run between chunks of an audit, and
// ends it if ctx has ended or the ledger is closing.
func (l *Ledger) pauseAudit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-l.stop:
		return ErrClosed
	default:
	}
	runtime.Gosched()
	return nil
}

// auditor is the state of one SelfAudit, owned by its goroutine.
type auditor struct {
	l    *Ledger
	txn  *badger.Txn
	size uint64 // the checkpoint's tree size
	rep  *SelfAuditReport
	// rng is the compact range of the leaves checked so far; full
	// bundles enter it as the roots of their 256-leaf subtrees.
	rng *compact.Range

	leaf   hash.Hash // SHA-256, reset for every leaf
	raw    []byte    // the current bundle, decompressed (reused)
	leaves []byte    // leaf hashes of the current bundle (reused)
	tile0  []byte    // the current level-0 tile (reused)
	// upper[L] is the tile of level L >= 1 being checked.
	upper   []auditTile
	scratch [TileWidth][hashSize]byte
}

type auditTile struct {
	index  uint64
	hashes []byte // nil until one is read
}

// nodes returns how many nodes tile level level has in the audited tree.
func (a *auditor) nodes(level int) uint64 {
	return a.size >> (uint(level) * TileHeight)
}

// bundle checks entry bundle b: its entries, their hashes in level-0 tile
// b, and (if the bundle is full) the hash of that tile in level 1 and up.
func (a *auditor) bundle(b uint64) error {
	w := int(min(TileWidth, a.size-b*TileWidth))
	ends, err := a.readBundle(b, w)
	if err != nil {
		return err
	}
	a.rep.Bundles++
	a.leaves = a.leaves[:0]
	for i := range w {
		a.leaf.Reset()
		a.leaf.Write(leafPrefix)
		a.leaf.Write(entryAt(a.raw, ends, i))
		a.leaves = a.leaf.Sum(a.leaves)
	}
	a.rep.Leaves += uint64(w)
	tile, err := a.readTile(0, b, w, a.tile0)
	if err != nil {
		return err
	}
	a.tile0 = tile
	if !bytes.Equal(a.leaves, tile[:w*hashSize]) {
		return a.blameLeaf(b, w, tile)
	}
	if w < TileWidth {
		// The edge: only the last bundle, whose leaves enter the range
		// one by one.
		for i := range w {
			if err := a.rng.Append(bytes.Clone(a.leaves[i*hashSize:(i+1)*hashSize]), nil); err != nil {
				return err
			}
		}
		return nil
	}
	root := a.subtreeRoot(a.leaves)
	sub, err := rangeFactory.NewRange(b*TileWidth, (b+1)*TileWidth, [][]byte{root[:]})
	if err != nil {
		return err
	}
	if err := a.rng.AppendRange(sub, nil); err != nil {
		return err
	}
	return a.checkParent(1, b, root)
}

// checkParent checks that the hash of full tile child of level level-1,
// root, is stored in its parent tile at level; if that completes the
// parent tile, it checks the parent's hash one level up, and so on.
func (a *auditor) checkParent(level int, child uint64, root [hashSize]byte) error {
	t, err := a.upperTile(level, child/TileWidth)
	if err != nil {
		return err
	}
	k := int(child % TileWidth)
	if stored := t[k*hashSize : (k+1)*hashSize]; !bytes.Equal(stored, root[:]) {
		return &IntegrityError{Record: IntegrityTile, Level: uint8(level), Index: child / TileWidth, Offset: k,
			Detail: fmt.Sprintf("is %x, but the hash of the 256 hashes of tile %d/%d below it is %x", stored, level-1, child, root)}
	}
	if k < TileWidth-1 {
		return nil
	}
	return a.checkParent(level+1, child/TileWidth, a.subtreeRoot(t[:TileWidth*hashSize]))
}

// upperTile returns tile index of level (>= 1), reading it when the audit
// reaches it.
func (a *auditor) upperTile(level int, index uint64) ([]byte, error) {
	for len(a.upper) <= level {
		a.upper = append(a.upper, auditTile{})
	}
	u := &a.upper[level]
	if u.hashes != nil && u.index == index {
		return u.hashes, nil
	}
	need := int(min(TileWidth, a.nodes(level)-index*TileWidth))
	t, err := a.readTile(uint8(level), index, need, u.hashes)
	u.hashes = nil
	if err != nil {
		return nil, err
	}
	u.index, u.hashes = index, t
	return t, nil
}

// readTile reads a tile of which the audited tree has need hashes, into
// dst (reused). Tiles only grow, so a stored tile may hold more.
func (a *auditor) readTile(level uint8, index uint64, need int, dst []byte) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return &IntegrityError{Record: IntegrityTile, Level: level, Index: index, Offset: -1, Detail: fmt.Sprintf(format, args...)}
	}
	var t []byte
	item, err := a.txn.Get(tileKey(level, index))
	if err == nil {
		err = item.Value(func(v []byte) error {
			t = append(dst[:0], v...)
			return nil
		})
	}
	if level == 0 && errors.Is(err, badger.ErrKeyNotFound) {
		t, err = a.edgeTile(index, dst)
		if errors.Is(err, ErrCorrupt) {
			return nil, bad("has malformed hash chunks: %v", err)
		}
	}
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, bad("is missing")
	case errors.Is(err, y.ErrChecksumMismatch):
		return nil, bad("fails its storage checksum: %v", err)
	case err != nil:
		return nil, fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	case len(t)%hashSize != 0 || len(t) > TileWidth*hashSize:
		return nil, bad("is %d bytes long, not a whole number of hashes up to %d", len(t), TileWidth)
	case len(t) < need*hashSize:
		return nil, bad("holds %d hashes, but the checkpoint's tree has %d", len(t)/hashSize, need)
	}
	a.rep.Tiles++
	return t, nil
}

// edgeTile is the level-0 tile index that the audit's transaction does
// not hold as a tile: the edge's, which is not stored (see edgeBundle).
// An earlier version stored it as chunks of leaf hashes: those, if there
// are any. Otherwise the hashes the ledger computed when it appended the
// entries (or opened the log), if the edge in memory is still that tile:
// the audit checks the stored entries against them. Otherwise (the tile
// filled after the audit's transaction began) the leaf hashes of the
// entries the audit has just read, which the checkpoint's root covers.
// Any other tile is missing.
func (a *auditor) edgeTile(index uint64, dst []byte) ([]byte, error) {
	hashes, firsts, err := readHashChunks(a.txn, index)
	if err != nil || len(firsts) > 0 {
		return append(dst[:0], hashes...), err
	}
	if index != a.size/TileWidth || a.size%TileWidth == 0 {
		return dst[:0], badger.ErrKeyNotFound
	}
	if t, ok := a.l.edge.Load().tile(index); ok && len(t) >= int(a.size%TileWidth)*hashSize {
		return append(dst[:0], t...), nil
	}
	return append(dst[:0], a.leaves...), nil
}

// readBundle reads entry bundle b, of which the audited tree has w
// entries, into a.raw, and returns where its entries end. A bundle that
// has filled since the checkpoint was signed is read in full.
func (a *auditor) readBundle(b uint64, w int) ([]int, error) {
	bad := func(format string, args ...any) error {
		return &IntegrityError{Record: IntegrityBundle, Index: b, Offset: -1, Detail: fmt.Sprintf(format, args...)}
	}
	item, err := a.txn.Get(bundleKey(b))
	switch {
	case err == nil:
		err = item.Value(func(stored []byte) error {
			raw, err := appendStored(a.raw[:0], stored)
			if err != nil {
				return bad("%v", err)
			}
			a.raw = raw
			return nil
		})
		if err != nil {
			break
		}
		ends, err := entryEnds(a.raw)
		if err != nil {
			return nil, bad("%v", err)
		}
		if len(ends) != TileWidth {
			return nil, bad("is stored as full but holds %d entries", len(ends))
		}
		return ends, nil
	case errors.Is(err, badger.ErrKeyNotFound) && w < TileWidth:
		// The edge bundle of the checkpoint, still stored as chunks.
		var n int
		a.raw, n, _, _, err = readChunks(a.txn, b)
		if errors.Is(err, ErrCorrupt) {
			return nil, bad("%v", err)
		}
		if err != nil {
			break
		}
		if n < w {
			if n == 0 {
				return nil, bad("is missing")
			}
			return nil, bad("holds %d entries, but the checkpoint's tree has %d", n, w)
		}
		ends, err := entryEnds(a.raw)
		if err != nil {
			return nil, bad("%v", err) // readChunks parsed each chunk
		}
		return ends, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, bad("is missing")
	}
	var ie *IntegrityError
	switch {
	case errors.As(err, &ie):
		return nil, err
	case errors.Is(err, y.ErrChecksumMismatch):
		return nil, bad("fails its storage checksum: %v", err)
	}
	return nil, fmt.Errorf("reading entry bundle %d: %w", b, err)
}

// blameLeaf reports the first entry of bundle b whose hash differs from
// level-0 tile b, and which of the two is wrong if a third party settles
// it: for a full bundle the tile's hash in level 1, for the edge bundle
// the checkpoint's root (everything before it having been checked).
func (a *auditor) blameLeaf(b uint64, w int, tile []byte) error {
	i := 0
	for bytes.Equal(a.leaves[i*hashSize:(i+1)*hashSize], tile[i*hashSize:(i+1)*hashSize]) {
		i++
	}
	leaf, stored := a.leaves[i*hashSize:(i+1)*hashSize], tile[i*hashSize:(i+1)*hashSize]
	var leavesAgree, tileAgrees bool
	var judge string
	if w == TileWidth {
		judge = fmt.Sprintf("hash %d of tile 1/%d", b%TileWidth, b/TileWidth)
		if t, err := a.upperTile(1, b/TileWidth); err == nil {
			parent := t[(b%TileWidth)*hashSize : (b%TileWidth+1)*hashSize]
			lr, tr := a.subtreeRoot(a.leaves), a.subtreeRoot(tile[:TileWidth*hashSize])
			leavesAgree, tileAgrees = bytes.Equal(lr[:], parent), bytes.Equal(tr[:], parent)
		}
	} else {
		judge = "the checkpoint's root"
		rootWith := func(hashes []byte) bool {
			r, err := rangeFactory.NewRange(0, a.rng.End(), slices.Clone(a.rng.Hashes()))
			if err != nil {
				return false
			}
			for k := range w {
				if r.Append(bytes.Clone(hashes[k*hashSize:(k+1)*hashSize]), nil) != nil {
					return false
				}
			}
			root, err := rootOf(r)
			return err == nil && bytes.Equal(root, a.rep.Root)
		}
		leavesAgree, tileAgrees = rootWith(a.leaves), rootWith(tile[:w*hashSize])
	}
	switch {
	case tileAgrees && !leavesAgree:
		return &IntegrityError{Record: IntegrityBundle, Index: b, Offset: i,
			Detail: fmt.Sprintf("hashes to %x, but hash %d of tile 0/%d is %x, and %s agrees with the tile", leaf, i, b, stored, judge)}
	case leavesAgree && !tileAgrees:
		return &IntegrityError{Record: IntegrityTile, Level: 0, Index: b, Offset: i,
			Detail: fmt.Sprintf("is %x, but entry %d hashes to %x, and %s agrees with the entries", stored, b*TileWidth+uint64(i), leaf, judge)}
	}
	return &IntegrityError{Record: IntegrityBundle, Index: b, Offset: i,
		Detail: fmt.Sprintf("hashes to %x, but hash %d of tile 0/%d is %x (%s agrees with neither)", leaf, i, b, stored, judge)}
}

// subtreeRoot returns the RFC 6962 root of 256 consecutive nodes (the
// hashes of a full tile), without allocating.
func (a *auditor) subtreeRoot(hashes []byte) [hashSize]byte {
	s := &a.scratch
	for i := range s {
		copy(s[i][:], hashes[i*hashSize:])
	}
	var buf [1 + 2*hashSize]byte
	buf[0] = rfc6962.RFC6962NodeHashPrefix
	for n := TileWidth; n > 1; n /= 2 {
		for i := range n / 2 {
			copy(buf[1:], s[2*i][:])
			copy(buf[1+hashSize:], s[2*i+1][:])
			s[i] = sha256.Sum256(buf[:])
		}
	}
	return s[0]
}
