package ledger

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// sequencer assigns indexes and writes batches. All its fields are owned by
// the sequencer goroutine (run); nothing else touches them after start.
type sequencer struct {
	l     *Ledger
	size  uint64
	rng   *compact.Range
	nodes *compact.RangeFactory // rng's, with hashNode
	// tiles[L] holds the hashes of the rightmost, incomplete tile at tile
	// level L. A slice handed to Badger is never written again: a full
	// tile is replaced by a fresh slice and appends only extend.
	tiles [][]byte
	dirty []bool
	// bundle is the rightmost, incomplete entry bundle.
	bundle *bundleWriter
	// The level-0 edge tile, tiles[0], is not stored (see edgeBundle).
	// What earlier versions stored of it, the next commit deletes: hash
	// chunks starting at edgeChunks, or (oldEdgeTile) a partial tile.
	edgeChunks  []int
	oldEdgeTile bool

	rtxn *badger.Txn // read transaction of the batch being built (dedup lookups)
	// edge0 is the level-0 edge tile (tile edge0Index) as the batch being
	// built began: the leaf hashes of the edge's durable entries, which
	// storage does not hold as a tile (see edgeBundle).
	edge0      []byte
	edge0Index uint64
	writes     []write // writes of the batch being built, in order
	err        error   // first error of the batch being built
	// sealed are the bundles the batch being built fills: once it is
	// committed they go to the read cache, so that followers and readers
	// do not decompress what the sequencer just had in memory.
	sealed []cachedBundle
	// added are the entries of the batch being built, for the recent
	// entries once it is committed.
	added []Leaf
	// leafBuf holds 0x00 || entry, to hash; hashSlab is where keepHash
	// cuts the leaf hashes the compact range keeps from.
	leafBuf  []byte
	hashSlab []byte
	// lastStart is when the last commit began, and lastRequests how many
	// requests it carried (see Config.CommitInterval).
	lastStart    time.Time
	lastRequests int
}

// write is one Set (or Delete) of a batch.
type write struct {
	key, value []byte
	del        bool
}

// toValueLog reports whether Badger stores the value of w in its value
// log rather than in its LSM tree (and write-ahead log).
func (w write) toValueLog() bool { return !w.del && len(w.value) >= valueThreshold }

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// hashChildren is hasher.HashChildren, the RFC 6962 node hash
// SHA-256(0x01 || l || r), with one allocation (the result) where that
// takes three: about two of them per entry the sequencer appends.
func hashChildren(l, r []byte) []byte {
	if len(l) != hashSize || len(r) != hashSize {
		return hasher.HashChildren(l, r)
	}
	h := childrenHash(l, r)
	return h[:]
}

// childrenHash is the node hash of two hashes of hashSize bytes, without
// allocating.
func childrenHash(l, r []byte) [32]byte {
	var b [1 + 2*hashSize]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], l)
	copy(b[1+hashSize:], r)
	return sha256.Sum256(b[:])
}

func newSequencer(l *Ledger) *sequencer {
	s := &sequencer{l: l, bundle: &bundleWriter{}}
	s.nodes = &compact.RangeFactory{Hash: s.hashNode}
	s.rng = s.nodes.NewEmptyRange(0)
	return s
}

// adopt makes rng, built elsewhere, the sequencer's range, hashing with
// hashNode from now on.
func (s *sequencer) adopt(rng *compact.Range) error {
	r, err := s.nodes.NewRange(rng.Begin(), rng.End(), rng.Hashes())
	if err != nil {
		return err
	}
	s.rng = r
	return nil
}

// hashNode is hashChildren for the sequencer's range, with the result cut
// from the slab (keepHash): the range keeps at most one node hash per
// level, and nothing writes into them.
func (s *sequencer) hashNode(l, r []byte) []byte {
	if len(l) != hashSize || len(r) != hashSize {
		return hasher.HashChildren(l, r)
	}
	return s.keepHash(childrenHash(l, r))
}

// intervalQuorum is how many queued requests make a commit worth its
// cost without waiting for Config.CommitInterval: with that many waiting
// (clients catching up after a slow stretch) the wait would only slow
// them down.
const intervalQuorum = 16

// txnLimit is what one Badger transaction of db accepts, less a margin of
// 1/16 for what our bound does not foresee.
func txnLimit(db *badger.DB) txnCost {
	return txnCost{bytes: db.MaxBatchSize() - db.MaxBatchSize()/16, count: db.MaxBatchCount() - db.MaxBatchCount()/16}
}

// run is the sequencer goroutine: it commits batches until the ledger is
// closing and the queue is empty, until stop is closed, or until a commit
// fails (fail-stop: see Append).
func (s *sequencer) run() {
	defer close(s.l.seqDone)
	for {
		batch, ok := s.collect()
		if !ok {
			return
		}
		if !s.commit(batch) {
			return
		}
	}
}

// collect waits for requests and takes a batch of them: everything queued
// up to MaxBatchSize entries and maxBatchBytes, once the batch is full, old
// enough, or the ledger is closing.
func (s *sequencer) collect() ([]*request, bool) {
	l := s.l
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-l.stop:
			s.failQueued()
			return nil, false
		default:
		}
		var wait time.Duration
		if err := l.fault.get(); err != nil {
			l.failStorage(err)
		}
		l.qmu.Lock()
		if l.failed != nil {
			// Storage failed outside the sequencer (a checkpoint write,
			// an error Badger only logs): commit nothing more.
			l.failQueuedLocked(l.failed)
			l.qmu.Unlock()
			return nil, false
		}
		if len(l.queue) > 0 {
			now := time.Now()
			// Wait for the oldest request to reach MaxBatchAge, and, if
			// the last commit carried more than one request (callers
			// append concurrently) and fewer than intervalQuorum wait,
			// for CommitInterval to pass since it began. A lone caller
			// appending one request after another is not held back.
			wait = l.cfg.MaxBatchAge - now.Sub(l.queue[0].enqueued)
			if s.lastRequests > 1 && len(l.queue) < intervalQuorum {
				wait = max(wait, l.cfg.CommitInterval-now.Sub(s.lastStart))
			}
			if l.closing || l.queued >= l.cfg.MaxBatchSize || wait <= 0 {
				batch := s.take()
				l.qmu.Unlock()
				return batch, true
			}
		} else if l.closing {
			l.qmu.Unlock()
			return nil, false
		}
		l.qmu.Unlock()

		var timeout <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		select {
		case <-l.qnotify:
		case <-timeout:
		case <-l.stop:
			s.failQueued()
			return nil, false
		}
	}
}

// failQueued answers everything still queued with ErrClosed; Close calls
// for it (by closing stop) only when its deadline passed before draining.
func (s *sequencer) failQueued() {
	l := s.l
	l.qmu.Lock()
	defer l.qmu.Unlock()
	l.failQueuedLocked(ErrClosed)
}

// failQueuedLocked answers everything queued with err. l.qmu must be held.
func (l *Ledger) failQueuedLocked(err error) {
	for _, r := range l.queue {
		r.results, r.err = nil, err
		close(r.done)
	}
	l.queue, l.queued, l.queuedBytes = nil, 0, 0
}

// take removes a batch from the queue: requests in order, as long as the
// batch holds at most MaxBatchSize entries and its transaction stays
// within what Badger accepts. The first request always fits (Append checks
// it). l.qmu must be held.
func (s *sequencer) take() []*request {
	l := s.l
	n, entries, mem := 0, 0, int64(0)
	var cost txnCost
	var dataBytes int64
	for n < len(l.queue) {
		r := l.queue[n]
		c := cost
		c.add(r.cost)
		d := dataBytes + r.dataBytes
		if n > 0 {
			with := c
			with.add(batchOverhead(int64(entries+len(r.entries)), d, s.size))
			if entries+len(r.entries) > l.cfg.MaxBatchSize || !with.fits(l.txnLimit) {
				break
			}
		}
		n++
		entries += len(r.entries)
		cost, dataBytes = c, d
		mem += r.memBytes
	}
	batch := make([]*request, n)
	copy(batch, l.queue[:n])
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	l.queued -= entries
	l.queuedBytes -= mem
	return batch
}

// commitStep names a point in a commit, for fault-injection tests.
type commitStep int

const (
	stepBeforeWrite commitStep = iota // nothing written yet
	stepDuringWrite                   // the value-log phase committed, the rest not
	stepAtSync                        // both phases committed and synced; report it failed
	stepAfterSync                     // durable, not yet published or acknowledged
)

// commit sequences a batch, writes it and then answers its callers. It
// reports false if the commit failed: then the in-memory tree is ahead of
// storage, and the ledger fails stop (see Append): every caller of this
// batch, everything queued and every later Append get ErrFailed, and no
// checkpoint is signed again.
//
// A batch is written in two synced Badger transactions. The first holds
// only the values Badger puts in its value log (full entry bundles, chunks
// of large entries), all under new keys beyond the durable size; the
// second holds everything else, the new size included. Badger writes a
// transaction's value-log part before its write-ahead log and only logs a
// failed value-log sync, so a single transaction could end up durable in
// its write-ahead log but pointing at value-log data a power cut lost: a
// log that no longer opens. Split this way, the size never covers a value
// whose sync failed (the ledger stops first), and what the first phase
// leaves behind a crash is beyond the size, where Open removes it
// (removeIncomplete).
func (s *sequencer) commit(batch []*request) bool {
	l := s.l
	start := time.Now()
	s.lastStart, s.lastRequests = start, len(batch)
	s.rtxn = l.db.NewTransaction(false)
	t0 := s.edgeTile()
	s.edge0, s.edge0Index = t0[:len(t0):len(t0)], s.bundle.index
	s.writes = s.writes[:0]
	s.err = l.cfg.fault(stepBeforeWrite)
	defer func() {
		s.rtxn.Discard()
		s.rtxn = nil
		s.edge0 = nil
		clear(s.writes)
		clear(s.sealed)
		s.sealed = s.sealed[:0]
		clear(s.added)
		s.added = s.added[:0]
	}()

	oldSize := s.size
	seen := make(map[string]dedupRecord)
	for _, r := range batch {
		s.appendRequest(r, seen)
	}
	added := s.size - oldSize
	var root []byte
	if added > 0 {
		s.bundle.flushChunks(s.set)
		s.dropOldEdgeHashes()
		for level, t := range s.tiles {
			// The level-0 edge tile is not stored: Open computes it
			// from the edge bundle's entries.
			if level > 0 && s.dirty[level] && len(t) > 0 {
				nodes := s.size >> (uint(level) * TileHeight)
				s.set(tileKey(uint8(level), nodes/TileWidth), t)
			}
			s.dirty[level] = false
		}
		var err error
		if root, err = rootOf(s.rng); err != nil && s.err == nil {
			s.err = err
		}
		s.set(keySize, encodeSizeRecord(s.size, root))
	}
	if s.err == nil && added > 0 {
		s.err = l.writeBatch(s.writes, true)
		if s.err == nil {
			s.err = l.cfg.fault(stepDuringWrite)
		}
		if s.err == nil {
			s.err = l.writeBatch(s.writes, false)
		}
		if s.err == nil {
			s.err = l.cfg.fault(stepAtSync)
		}
		if s.err == nil {
			s.err = l.cfg.fault(stepAfterSync)
		}
		if s.err == nil {
			s.err = l.acked.record(s.size)
		}
	}
	if s.err != nil {
		err := fmt.Errorf("%w: committing entries %d-%d: %w", ErrFailed, oldSize, s.size, s.err)
		l.log.Error("storage commit failed: the ledger accepts no more appends and signs no more checkpoints until restarted", "err", s.err, "first", oldSize, "end", s.size)
		l.qmu.Lock()
		if l.failed == nil {
			l.failed = err
		}
		l.failQueuedLocked(err)
		l.qmu.Unlock()
		for _, r := range batch {
			r.results, r.err = nil, err
			close(r.done)
		}
		l.metrics.commitFailures.Inc()
		return false
	}
	// Readers take the size first, then the bundles: publish the bundles
	// of this commit before the size that covers them. A reader that
	// sees more entries than its size trims them; one that saw fewer
	// would not find what the size promises.
	for _, b := range s.sealed {
		l.bundles.Add(b.index, b.raw)
	}
	l.recent.add(s.added)
	if added > 0 {
		l.edge.Store(s.bundle.published(s.edgeTile()))
		l.setDurable(treeState{size: s.size, root: root})
		if bits := l.chunkBits(); oldSize>>bits != s.size>>bits {
			select {
			case l.runNotify <- struct{}{}:
			default:
			}
		}
	}
	l.metrics.observeCommit(int(added), time.Since(start))
	for _, r := range batch {
		close(r.done)
	}
	return true
}

// writeBatch commits, in one synced transaction, the writes of a batch
// that go to Badger's value log (valueLog true) or the others, if there
// are any. An error Badger only logged fails it too.
func (l *Ledger) writeBatch(writes []write, valueLog bool) error {
	txn := l.db.NewTransaction(true)
	defer txn.Discard()
	n := 0
	for _, w := range writes {
		if w.toValueLog() != valueLog {
			continue
		}
		var err error
		if w.del {
			err = txn.Delete(w.key)
		} else {
			err = txn.Set(w.key, w.value)
		}
		if err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	// Badger logs, and does not return, some storage errors (a failed
	// value-log sync among them): after one, no commit counts as durable.
	return l.fault.get()
}

// appendRequest sequences the entries of one Append call into the current
// transaction, all or nothing: if any entry reuses a dedup key with other
// content, none is appended and the request fails with ErrIDConflict.
// Entries whose key is already in the log (or earlier in the batch) are
// answered from the dedup records instead of being appended again.
func (s *sequencer) appendRequest(r *request, seen map[string]dedupRecord) {
	r.results = make([]Result, len(r.entries))
	var local map[string]int // dedup key → first entry of this request using it
	var dupOf map[int]int    // entry → earlier entry of this request it repeats
	conflicts := 0
	for i := range r.entries {
		e := &r.entries[i]
		if len(e.DedupKey) == 0 {
			continue
		}
		k := string(e.DedupKey)
		if j, ok := local[k]; ok {
			if r.entries[j].Fingerprint != e.Fingerprint {
				r.results[i].Err = ErrIDConflict
				conflicts++
			}
			if dupOf == nil {
				dupOf = make(map[int]int)
			}
			dupOf[i] = j
			continue
		}
		rec, ok := seen[k]
		if !ok {
			rec, ok = s.lookupDedup(e.DedupKey)
		}
		if ok {
			r.results[i] = Result{Index: rec.index, LeafHash: rec.leafHash, Duplicate: true}
			if !rec.sameContent(e.Fingerprint) && (e.LegacyFingerprint == nil || !rec.sameContent(*e.LegacyFingerprint)) {
				r.results[i].Err = ErrIDConflict
				conflicts++
			}
			continue
		}
		if local == nil {
			local = make(map[string]int)
		}
		local[k] = i
	}
	if conflicts > 0 {
		r.err = fmt.Errorf("%d of %d entries reuse an id with different content, nothing appended: %w", conflicts, len(r.entries), ErrIDConflict)
		return
	}
	for i := range r.entries {
		if _, ok := dupOf[i]; ok || r.results[i].Duplicate {
			continue
		}
		r.results[i] = s.appendEntry(&r.entries[i], seen)
	}
	for i, j := range dupOf {
		r.results[i] = Result{Index: r.results[j].Index, LeafHash: r.results[j].LeafHash, Duplicate: true}
	}
}

// appendEntry sequences one new entry into the current transaction.
func (s *sequencer) appendEntry(e *Entry, seen map[string]dedupRecord) Result {
	index := s.size
	leaf := s.leafHash(e.Data)
	if err := s.rng.Append(s.keepHash(leaf), s.visit); err != nil && s.err == nil {
		s.err = err
	}
	stored, full := s.bundle.add(e.Data)
	s.added = append(s.added, Leaf{Index: index, Data: stored, Decoded: e.Decoded})
	if full {
		s.sealed = append(s.sealed, cachedBundle{index: s.bundle.index, raw: s.bundle.raw})
		s.bundle.seal(s.set, s.del)
	}
	if len(e.DedupKey) > 0 {
		rec := newDedupRecord(index, leaf, e.Fingerprint)
		s.set(dedupKey(e.DedupKey), rec.marshal())
		seen[string(e.DedupKey)] = rec
	}
	s.size++
	return Result{Index: index, LeafHash: leaf}
}

// leafHash returns the RFC 6962 leaf hash of data, SHA-256(0x00 || data),
// without allocating: data is copied after the prefix into a buffer the
// sequencer keeps (a hash.Hash allocated the sum it returned through its
// interface).
func (s *sequencer) leafHash(data []byte) [32]byte {
	s.leafBuf = append(append(s.leafBuf[:0], leafPrefix...), data...)
	return sha256.Sum256(s.leafBuf)
}

// keepHash returns a copy of h that the compact range may keep, cut
// from a slab of hashes: one allocation per 256 entries instead of one
// per entry. The range keeps at most one hash per tree level, and nothing
// writes into them (each is capped), so a few slabs stay reachable.
func (s *sequencer) keepHash(h [32]byte) []byte {
	if len(s.hashSlab) < hashSize {
		s.hashSlab = make([]byte, TileWidth*hashSize)
	}
	k := s.hashSlab[:hashSize:hashSize]
	s.hashSlab = s.hashSlab[hashSize:]
	copy(k, h[:])
	return k
}

func (s *sequencer) lookupDedup(key []byte) (dedupRecord, bool) {
	item, err := s.rtxn.Get(dedupKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return dedupRecord{}, false
	}
	if err != nil {
		if s.err == nil {
			s.err = fmt.Errorf("reading dedup record: %w", err)
		}
		return dedupRecord{}, false
	}
	var rec dedupRecord
	err = item.Value(func(v []byte) error {
		rec, err = unmarshalDedup(v)
		return err
	})
	if err == nil && rec.leafHash == ([32]byte{}) {
		// The entry is durable: its leaf hash is in its level-0 tile.
		t := s.edge0
		if rec.index/TileWidth != s.edge0Index {
			t, err = get(s.rtxn, tileKey(0, rec.index/TileWidth))
		}
		if err == nil {
			h, ok := tileHash(t, rec.index)
			switch {
			case !ok:
				err = fmt.Errorf("entry %d is not in its level-0 tile: %w", rec.index, ErrCorrupt)
			case foldHash(h) != rec.fold:
				err = fmt.Errorf("the leaf hash of entry %d is not the one its record holds: %w", rec.index, ErrCorrupt)
			default:
				rec.leafHash = [32]byte(h)
			}
		}
	}
	if err != nil {
		if s.err == nil {
			s.err = fmt.Errorf("reading dedup record: %w", err)
		}
		return dedupRecord{}, false
	}
	return rec, true
}

// dropOldEdgeHashes deletes what an earlier version stored of the level-0
// edge tile (its hash chunks, or a partial tile), in the first commit
// that extends it. A tile that filled in this commit has replaced them
// already (visit).
func (s *sequencer) dropOldEdgeHashes() {
	if s.oldEdgeTile {
		s.del(tileKey(0, s.bundle.index))
		s.oldEdgeTile = false
	}
	for _, first := range s.edgeChunks {
		s.del(hashChunkKey(s.bundle.index, first))
	}
	s.edgeChunks = s.edgeChunks[:0]
}

// edgeTile returns the level-0 tile of the edge bundle's entries so far.
func (s *sequencer) edgeTile() []byte {
	if len(s.tiles) == 0 {
		return nil
	}
	return s.tiles[0]
}

// visit receives every node the compact range completes. Nodes on tile
// boundaries (tree levels 0, 8, 16, ...) are the contents of hash tiles.
func (s *sequencer) visit(id compact.NodeID, hash []byte) {
	if id.Level%TileHeight != 0 {
		return
	}
	level := int(id.Level / TileHeight)
	for len(s.tiles) <= level {
		s.tiles = append(s.tiles, nil)
		s.dirty = append(s.dirty, false)
	}
	t := s.tiles[level]
	if uint64(len(t)/hashSize) != id.Index%TileWidth {
		panic(fmt.Sprintf("ledger: node %d/%d out of order: tile holds %d hashes", id.Level, id.Index, len(t)/hashSize))
	}
	t = append(t, hash...)
	if len(t) == TileWidth*hashSize {
		s.set(tileKey(uint8(level), id.Index/TileWidth), t)
		s.tiles[level], s.dirty[level] = nil, false
		if level == 0 {
			// The full tile replaces the hash chunks an earlier version
			// stored (and its partial tile, under the same key).
			for _, first := range s.edgeChunks {
				s.del(hashChunkKey(id.Index/TileWidth, first))
			}
			s.edgeChunks, s.oldEdgeTile = s.edgeChunks[:0], false
		}
		return
	}
	s.tiles[level], s.dirty[level] = t, true
}

func (s *sequencer) del(key []byte) {
	s.writes = append(s.writes, write{key: key, del: true})
}

func (s *sequencer) set(key, value []byte) {
	s.writes = append(s.writes, write{key: key, value: value})
}
