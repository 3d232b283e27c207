package ledger

// How big a batch may be.
//
// Badger refuses a transaction (ErrTxnTooBig) once the writes in it add up
// to DB.MaxBatchSize bytes or DB.MaxBatchCount writes, both derived from
// the memtable size. A refused commit would stop the ledger, so the
// sequencer never builds one: every request carries an upper bound of what
// its entries add to a transaction, in Badger's own measure, and a batch
// takes requests only while the bound of the whole batch (entries plus
// everything a batch writes besides them: chunks, sealed bundles, tiles,
// the size record) stays below the limits that the open database reports.
// The limits are read from Badger, not copied from its source, so an
// upgrade that changes them changes ours; TestTxnCostBoundsBadger pins the
// per-write measure against a real transaction.

// txnCost is an upper bound on what writes add to a Badger transaction.
type txnCost struct {
	bytes int64 // Badger's size estimate
	count int64 // number of writes
}

func (c *txnCost) add(o txnCost) {
	c.bytes += o.bytes
	c.count += o.count
}

func (c txnCost) fits(limit txnCost) bool {
	return c.bytes < limit.bytes && c.count < limit.count
}

// writeCost is what Badger charges a transaction for one Set or Delete of a
// key and a value of the given lengths: the key, the value if it stays in
// the LSM tree or else a 12-byte value pointer, 2 bytes of metadata and 10
// for the version (badger Entry.estimateSizeAndSetThreshold and
// Txn.checkSize).
func writeCost(key, value int) txnCost {
	v := int64(value)
	if value >= valueThreshold {
		v = 12
	}
	return txnCost{bytes: int64(key) + v + 2 + 10, count: 1}
}

// Sizes of the records a batch writes.
const (
	dedupValueLen   = dedupRecordLen
	chunkKeyLen     = 10
	bundleKeyLen    = 9
	tileKeyLen      = 10
	maxTileLevels   = 8 // 2^64 leaves need 8 levels of height-8 tiles
	entryMemoryCost = 160
)

// entryCost bounds what one entry adds to a transaction: its dedup record
// if it has a key, and its bytes with their C2SP
// length prefix, once (an entry is stored either in a chunk of the edge
// bundle or in a bundle sealed by the same commit, never both; chunk and
// bundle records themselves are counted by batchOverhead).
func entryCost(e *Entry) txnCost {
	c := txnCost{bytes: int64(len(e.Data)) + 2}
	if len(e.DedupKey) > 0 {
		c.add(writeCost(1+len(e.DedupKey), dedupValueLen))
	}
	return c
}

// batchOverhead bounds what a batch of n entries holding dataBytes bytes,
// appended to a tree of at most size entries, writes besides the entries'
// own records: the chunks of the edge bundle (at most one per
// maxChunkBytes, plus the last), every bundle it seals (a stored bundle is
// charged as if just below the value threshold, its worst case) and the
// deletion of the chunks of the first one (at most 255, the only bundle
// that can have chunks from earlier commits), the full and partial tiles
// of every level the tree reaches, the size record and the transaction's
// commit marker. It grows with size, so a bound on the size gives a bound
// on the overhead.
func batchOverhead(n, dataBytes int64, size uint64) txnCost {
	var c txnCost
	chunks := dataBytes/maxChunkBytes + 2
	c.add(txnCost{bytes: chunks * writeCost(chunkKeyLen, 0).bytes, count: chunks})
	bundles := n/TileWidth + 1
	c.add(txnCost{bytes: bundles * writeCost(bundleKeyLen, valueThreshold-1).bytes, count: bundles})
	c.add(txnCost{bytes: (TileWidth - 1) * writeCost(chunkKeyLen, 0).bytes, count: TileWidth - 1})
	end := size + uint64(n)
	for level := 0; level < maxTileLevels && end>>(uint(level)*TileHeight) > 0; level++ {
		full := (n>>(uint(level)*TileHeight))/TileWidth + 1
		c.add(txnCost{bytes: full * writeCost(tileKeyLen, TileWidth*hashSize).bytes, count: full})
		c.add(writeCost(tileKeyLen, TileWidth*hashSize-1)) // the partial tile
	}
	c.add(writeCost(len(keySize), sizeRecordLen))
	c.add(txnCost{bytes: 64, count: 1}) // commit marker
	return c
}

// requestCost sums entryCost over a request and counts its entry bytes.
func requestCost(entries []Entry) (c txnCost, dataBytes int64) {
	for i := range entries {
		c.add(entryCost(&entries[i]))
		dataBytes += int64(len(entries[i].Data))
	}
	return c, dataBytes
}
