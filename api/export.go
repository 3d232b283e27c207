package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"runtime"
	"strconv"
	"sync"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// An export (GET /v1/events as a stream) reads its matches bundle by
// bundle: a producer runs the index search and groups consecutive matches
// of one entry bundle into a job; workers, one per core, read each job's
// bundle (decompressing it once, into a buffer the job reuses) and encode
// its rows (NDJSON, CSV or OCSF); the handler writes the jobs' output in
// search order. Reading and encoding thus run ahead of the writes, on every
// core, and memory stays bounded: a fixed set of jobs is recycled, and
// fewer of them are in flight when bundles are large.

// Bounds of an export's read-ahead.
const (
	exportMaxWorkers = 4
	// exportInflightBytes bounds, roughly, the bytes the jobs in flight
	// hold (decompressed bundles and encoded lines). One job is always
	// allowed, however large.
	exportInflightBytes = 16 << 20
	// exportKeepBytes is the largest buffer a job keeps for reuse.
	exportKeepBytes = 4 << 20
	// exportFlushBytes is the size of the writes to the connection: a
	// job's lines go out in one write when they are at least that large
	// (a full bundle's matches usually are), else they are gathered.
	exportFlushBytes = 64 << 10
)

// exportJob is the matches of one entry bundle, in the order written,
// and what a worker made of them.
type exportJob struct {
	bundle  uint64
	matches []uint64
	// Set by the worker, which then signals ready.
	out   []byte // the matches' rows
	err   error
	held  int      // bytes of the bundle read and of out
	buf   []byte   // the decompressed bundle, reused
	all   [][]byte // the bundle's entries, reused
	ready chan struct{}
}

// exporter streams the entries of an index search.
type exporter struct {
	l      *ledger.Ledger
	size   uint64 // the indexed size: nothing at or beyond it is read
	limit  int    // 0: no limit
	format string // formatNDJSON, formatCSV or formatOCSF
	origin string // the log's origin (OCSF)
	csvRaw bool   // CSV cells as recorded, formulas and all (csv_raw=true)
}

// exportBudget throttles the producer: it dispatches another job only
// while the jobs in flight, at the size of the last one written, fit
// exportInflightBytes (one is always allowed).
type exportBudget struct {
	mu       sync.Mutex
	cond     sync.Cond
	inflight int
	est      int
}

// run streams the matches of search (which calls its function with each
// match in order until it returns false) to write, each job's rows in one
// call, in order. For CSV, the caller writes the header first. An error
// from search, a read, an encoder or write stops the export and is
// returned; the goroutines it started have ended when it returns.
func (e *exporter) run(ctx context.Context, search func(ctx context.Context, fn func(uint64) bool) error, write func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := min(max(runtime.GOMAXPROCS(0), 1), exportMaxWorkers)
	depth := 2 * workers
	free := make(chan *exportJob, depth)
	for range depth {
		free <- &exportJob{ready: make(chan struct{}, 1)}
	}
	work := make(chan *exportJob, depth)
	ordered := make(chan *exportJob, depth)
	budget := &exportBudget{}
	budget.cond.L = &budget.mu
	stop := context.AfterFunc(ctx, func() {
		budget.mu.Lock()
		budget.cond.Broadcast()
		budget.mu.Unlock()
	})
	defer stop()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			w := e.newWorker()
			for j := range work {
				w.do(ctx, j)
				j.ready <- struct{}{}
			}
		})
	}

	// The producer: the search, in its own goroutine.
	var searchErr error
	wg.Go(func() {
		defer close(ordered)
		defer close(work)
		var j *exportJob
		n := 0
		dispatch := func() bool {
			select {
			case work <- j:
			case <-ctx.Done():
				budget.release(0)
				free <- j
				j = nil
				return false
			}
			ordered <- j // never blocks: it has room for every job
			j = nil
			return true
		}
		searchErr = search(ctx, func(i uint64) bool {
			b := i / ledger.TileWidth
			if j != nil && j.bundle != b && !dispatch() {
				return false
			}
			if j == nil {
				if !budget.acquire(ctx) {
					return false
				}
				select {
				case j = <-free:
				case <-ctx.Done():
					budget.release(0)
					return false
				}
				j.bundle, j.matches = b, j.matches[:0]
			}
			j.matches = append(j.matches, i)
			n++
			return e.limit == 0 || n < e.limit
		})
		if j != nil {
			if searchErr == nil && ctx.Err() == nil {
				dispatch()
			} else {
				budget.release(0)
			}
		}
	})

	// The writer: this goroutine, in search order.
	var err error
	for j := range ordered {
		if err == nil {
			<-j.ready
			err = j.err
		}
		if err == nil {
			err = write(j.out)
		}
		if err != nil {
			// Stop the producer and the workers, and drain what is
			// dispatched; a worker may still hold this job.
			cancel()
			budget.release(0)
			continue
		}
		budget.release(j.held)
		j.recycle()
		free <- j
	}
	wg.Wait()
	if err == nil {
		err = searchErr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// acquire waits until another job may be dispatched, and counts it. It
// returns false if ctx ends first.
func (b *exportBudget) acquire(ctx context.Context) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.inflight > 0 && (b.inflight+1)*b.est > exportInflightBytes {
		if ctx.Err() != nil {
			return false
		}
		b.cond.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	b.inflight++
	return true
}

// release counts a job done, which held size bytes (0: unknown, the
// estimate stays).
func (b *exportBudget) release(size int) {
	b.mu.Lock()
	b.inflight--
	if size > 0 {
		b.est = size
	}
	b.cond.Signal()
	b.mu.Unlock()
}

// recycle readies a written job for reuse, dropping large buffers.
func (j *exportJob) recycle() {
	if cap(j.buf) > exportKeepBytes {
		j.buf = nil
	}
	if cap(j.out) > exportKeepBytes {
		j.out = nil
	}
	j.out, j.err, j.held = j.out[:0], nil, 0
	clear(j.all)
}

// exportWorker reads and encodes jobs, with its own hasher and encoders.
type exportWorker struct {
	l      *ledger.Ledger
	size   uint64
	format string
	h      hash.Hash
	sum    [sha256.Size]byte
	sc     event.JSONValidator
	out    jobWriter
	csv    *csvEncoder
	ocsf   *ocsfEncoder
}

// newWorker returns a worker for e's format.
func (e *exporter) newWorker() *exportWorker {
	w := &exportWorker{l: e.l, size: e.size, format: e.format, h: sha256.New()}
	switch e.format {
	case formatCSV:
		w.csv = newCSVEncoder(&w.out)
		w.csv.header = true // the handler writes it, once
		w.csv.raw = e.csvRaw
	case formatOCSF:
		w.ocsf = newOCSFEncoder(&w.out, e.origin)
	}
	return w
}

// jobWriter appends to the output of the job a worker encodes.
type jobWriter struct{ j *exportJob }

func (w *jobWriter) Write(b []byte) (int, error) {
	w.j.out = append(w.j.out, b...)
	return len(b), nil
}

// do reads j's bundle and encodes j's matches into j.out, or sets j.err.
func (w *exportWorker) do(ctx context.Context, j *exportJob) {
	if j.err = ctx.Err(); j.err != nil {
		return
	}
	w.out.j = j
	first := j.bundle * ledger.TileWidth
	width := 0
	if w.size-first < ledger.TileWidth {
		width = int(w.size - first)
	}
	var data []byte
	data, j.buf, j.err = w.l.ReadEntryBundleInto(ctx, j.bundle, width, j.buf)
	if j.err != nil {
		return
	}
	j.held = len(data)
	defer func() { j.held += len(j.out) }()
	j.all = j.all[:0]
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			break
		}
		j.all = append(j.all, data[2:2+n])
		data = data[2+n:]
	}
	if len(data) != 0 {
		j.err = fmt.Errorf("entry bundle %d is malformed: %w", j.bundle, ledger.ErrCorrupt)
		return
	}
	for _, i := range j.matches {
		k := i % ledger.TileWidth
		if i >= w.size {
			j.err = fmt.Errorf("entry %d is beyond the indexed size %d: %w", i, w.size, ledger.ErrNotFound)
			return
		}
		if k >= uint64(len(j.all)) {
			j.err = fmt.Errorf("entry bundle %d holds %d entries, want entry %d: %w", j.bundle, len(j.all), i, ledger.ErrCorrupt)
			return
		}
		entry := j.all[k]
		switch w.format {
		case formatCSV:
			j.err = w.csv.encode(i, entry)
		case formatOCSF:
			j.err = w.ocsf.encode(i, entry)
		default:
			j.out = append(w.appendEvent(j.out, i, entry), '\n')
		}
		if j.err != nil {
			return
		}
	}
	if w.csv != nil {
		w.csv.w.Flush()
		j.err = w.csv.w.Error()
	}
}

// appendEvent is appendEventJSON with the worker's hasher.
func (w *exportWorker) appendEvent(b []byte, index uint64, entry []byte) []byte {
	w.h.Reset()
	w.h.Write(leafPrefix[:])
	w.h.Write(entry)
	return appendEventJSONHash(b, index, entry, w.h.Sum(w.sum[:0]), w.sc.Valid(entry))
}

// leafPrefix is what RFC 6962 hashes before a leaf.
var leafPrefix = [1]byte{0}

// appendEventJSONHash is appendEventJSON given the entry's leaf hash and
// whether it is valid JSON.
func appendEventJSONHash(b []byte, index uint64, entry, h []byte, valid bool) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, `,"leaf_hash":"`...)
	b = base64.StdEncoding.AppendEncode(b, h)
	if valid {
		b = append(b, `","entry":`...)
		b = append(b, entry...)
	} else {
		b = append(b, `","entry_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, entry)
		b = append(b, '"')
	}
	return append(b, '}')
}
