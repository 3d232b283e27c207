package detect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/ledger"
)

// The engine's saved state lives in files of its own, in the state
// directory inside the detector's (<detector dir>/state): a snapshot of
// the whole state, and a journal of the changes each save made since.
// Both are sequences of records
//
//	length:4 crc32c:4 kind:1 payload      (length counts kind and payload)
//
// of two kinds: a chunk of operations (opSet, opDel; a few hundred KiB),
// and a commit, whose payload is the cursor (8 bytes) that the chunks
// before it bring the state to.
//
//	snapshot-<gen>   the whole state, then a commit; written under a
//	                 temporary name, synced, then renamed
//	journal-<gen>    the changes of the saves since snapshot-<gen>, each
//	                 save's chunks followed by its commit
//
// A save appends its records to the journal in one write and syncs it; a
// crash in the middle leaves a torn tail after the last commit, which the
// next load cuts off. Once the journal has outgrown the snapshot, a save
// writes a snapshot under the next generation instead, and the previous
// generation's files are removed.
//
// The state used to live in the LSM tree of the detector's database (as
// chunks under s/ and j/ with a commit record under c, and before that one
// key per entry under e/), where every compaction copied the whole live
// snapshot again: over 10 minutes at 9,000 events/s the detector's
// database wrote as many tables as the ledger's, in bursts of up to 117
// tables in 10 s (BENCHMARKS.md). Files are written once and removed
// whole. Both earlier layouts load, and the first save replaces them with
// a snapshot.
const stateDirName = "state"

// Record kinds.
const (
	recChunk  byte = 1
	recCommit byte = 2
)

// Keys of the earlier layouts in the detector's database.
var (
	keySnapPfx    = []byte("s/")
	keyJournalPfx = []byte("j/")
)

// chunkSize is the size a chunk is cut at.
const chunkSize = 256 << 10

// compactMin is the journal size below which no snapshot is taken; above
// it, one is taken once the journal outgrows the snapshot. Tests lower it.
//
// Under load the journal grows by about 1 MB/s (each save holds every
// group that changed since the last), while the whole state stays a few
// tens of MB. At 32 MiB a snapshot came every 30-40 s at 10,000 events/s,
// a tenth to half a second of encoding and syncing each (BENCHMARKS.md,
// "Session of 2026-11-28 13:20"). At 128 MiB one comes every two minutes
// or so; a restart replays at most that much journal (0.5 s more than
// with 32 MiB, measured).
var compactMin int64 = 128 << 20

// Chunk operations.
const (
	opSet byte = 1
	opDel byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// stateStore keeps the engine's state in files in dir; db holds the
// earlier layouts, if any.
type stateStore struct {
	db        *badger.DB
	dir       string
	gen       uint64   // generation of the state
	journal   *os.File // journal-<gen>, open for appending; nil until needed
	snapBytes int64    // size of snapshot-<gen>
	jBytes    int64    // size of journal-<gen>
	fromDB    bool     // the state came from the database: the next save is a snapshot
	resave    bool     // a save failed: the next save is a snapshot
	garbage   [][]byte // database keys to remove
	stale     []string // files to remove
}

// damagedStateError is a state file whose content is damaged (not one a
// crash tore: a snapshot without its commit, a record that fails its
// checksum in a snapshot, a record that makes no sense). The state is
// derived from the log, so the detector sets it aside and replays the log.
type damagedStateError struct {
	path string
	err  error
}

func (e *damagedStateError) Error() string {
	return fmt.Sprintf("state file %s is damaged: %v", e.path, e.err)
}

func (e *damagedStateError) Unwrap() error { return e.err }

func newStateStore(db *badger.DB, detectorDir string) *stateStore {
	return &stateStore{db: db, dir: filepath.Join(detectorDir, stateDirName)}
}

func fileName(kind string, gen uint64) string {
	return fmt.Sprintf("%s-%016x", kind, gen)
}

// load reads the state and the cursor it belongs to, for Engine.LoadState,
// from the files or else from an earlier layout in the database, and notes
// what is left over from earlier generations, for removeGarbage.
func (st *stateStore) load() (cursor uint64, state map[string][]byte, err error) {
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("creating the state directory: %w", err)
	}
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the state directory: %w", err)
	}
	snaps := map[uint64]bool{}
	journals := map[uint64]bool{}
	for _, e := range entries {
		kind, hex, ok := strings.Cut(e.Name(), "-")
		gen, perr := strconv.ParseUint(hex, 16, 64)
		switch {
		case ok && perr == nil && len(hex) == 16 && kind == "snapshot":
			snaps[gen] = true
			st.gen = max(st.gen, gen)
		case ok && perr == nil && len(hex) == 16 && kind == "journal":
			journals[gen] = true
		default: // a snapshot that was never renamed, or anything else
			st.stale = append(st.stale, e.Name())
		}
	}
	for gen := range snaps {
		if gen != st.gen {
			st.stale = append(st.stale, fileName("snapshot", gen))
		}
	}
	for gen := range journals {
		if gen != st.gen {
			st.stale = append(st.stale, fileName("journal", gen))
		}
	}
	if len(snaps) == 0 && !journals[0] {
		// Nothing saved in files yet: an earlier layout, or nothing.
		return st.loadDB()
	}
	// The files are the state; whatever the database still holds of an
	// earlier layout (a crash before the first snapshot removed it) is
	// garbage.
	if err := st.dbGarbage(); err != nil {
		return 0, nil, err
	}
	state = map[string][]byte{}
	if st.gen > 0 {
		path := filepath.Join(st.dir, fileName("snapshot", st.gen))
		c, size, ok, err := readRecords(path, state)
		if err == nil && !ok {
			err = &damagedStateError{path, errors.New("no commit at its end, or a record fails its checksum")}
		}
		if err != nil {
			return 0, nil, err
		}
		cursor, st.snapBytes = c, size
	}
	if journals[st.gen] {
		path := filepath.Join(st.dir, fileName("journal", st.gen))
		c, size, ok, err := readRecords(path, state)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			cursor = c
		}
		// Cut off what a crash left after the last commit, so that the
		// next save appends to a whole journal.
		if err := truncateTo(path, size); err != nil {
			return 0, nil, fmt.Errorf("cutting the torn end of %s: %w", path, err)
		}
		st.jBytes = size
	}
	return cursor, state, nil
}

// readRecords applies to state the chunks of path up to its last commit,
// and returns that commit's cursor and where it ends; ok is false if there
// is none. A damaged or torn record ends the reading, as the end of a
// crashed append does.
func readRecords(path string, state map[string][]byte) (cursor uint64, end int64, ok bool, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false, fmt.Errorf("reading state file: %w", err)
	}
	damaged := func(format string, a ...any) error {
		return &damagedStateError{path, fmt.Errorf(format, a...)}
	}
	var pending [][]byte // chunks since the last commit
	for off := int64(0); ; {
		rest := raw[off:]
		if len(rest) < 9 {
			break
		}
		n := int64(binary.BigEndian.Uint32(rest))
		if n < 1 || n > int64(len(rest))-8 || crc32.Checksum(rest[8:8+n], castagnoli) != binary.BigEndian.Uint32(rest[4:]) {
			break
		}
		kind, payload := rest[8], rest[9:8+n]
		off += 8 + n
		switch kind {
		case recChunk:
			pending = append(pending, payload)
		case recCommit:
			if len(payload) != 8 {
				return 0, 0, false, damaged("commit record at %d holds %d bytes, want 8", off-8-n, len(payload))
			}
			for _, c := range pending {
				if err := applyChunk(state, c); err != nil {
					return 0, 0, false, damaged("chunk before offset %d: %w", off, err)
				}
			}
			pending = pending[:0]
			cursor, end, ok = binary.BigEndian.Uint64(payload), off, true
		default:
			return 0, 0, false, damaged("record at %d of unknown kind %d", off-8-n, kind)
		}
	}
	return cursor, end, ok, nil
}

func truncateTo(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == size {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// appendRecord appends a record of kind to b.
func appendRecord(b []byte, kind byte, payload []byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(payload)))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(b, kind)
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], castagnoli))
	return b
}

// save journals the engine's changes with the cursor next. It takes a
// snapshot instead when the journal has outgrown the snapshot, the state
// is still in the database's earlier layout, or a save failed before: the
// engine handed its changes over to that save, so only its whole state
// can be saved after it. It reports which ("journal" or "snapshot") and
// the bytes written.
func (st *stateStore) save(next uint64, e *Engine) (kind string, n int64, err error) {
	if st.fromDB || st.resave || st.jBytes >= max(compactMin, st.snapBytes) {
		kind = "snapshot"
		n, err = st.snapshot(next, e)
	} else {
		kind = "journal"
		n, err = st.appendJournal(next, e)
	}
	if err != nil {
		st.resave = true
	}
	return kind, n, err
}

// appendJournal appends the engine's changes and the commit to the
// journal, as they are encoded (through a buffer of about a chunk), and
// syncs it. Until the commit record is synced the save does not count: a
// crash part way leaves records a load cuts off, and a failure part way
// abandons the journal (the next save is a snapshot). Collecting the
// whole save in memory first cost as much allocation as the save's
// size, twice over (4.7 % of the server's under batches of 100).
func (st *stateStore) appendJournal(next uint64, e *Engine) (int64, error) {
	if st.journal == nil {
		path := filepath.Join(st.dir, fileName("journal", st.gen))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return 0, err
		}
		if err := ledger.SyncDir(st.dir); err != nil { // the new file's name
			f.Close()
			return 0, err
		}
		st.journal = f
	}
	n, err := writeSave(st.journal, next, e.SaveState)
	if err == nil {
		err = st.journal.Sync()
	}
	if err != nil {
		return 0, st.abandonJournal(err)
	}
	st.jBytes += n
	return n, nil
}

// writeSave writes the records of a save to w, through a buffer of about
// a chunk: the chunks of what save writes, then the commit with the
// cursor next. It returns the bytes written.
func writeSave(w io.Writer, next uint64, save func(StateWriter) error) (int64, error) {
	bw := bufio.NewWriterSize(w, chunkSize+chunkSize/4)
	var rec []byte
	var n int64
	put := func(kind byte, payload []byte) error {
		rec = appendRecord(rec[:0], kind, payload)
		n += int64(len(rec))
		_, err := bw.Write(rec)
		return err
	}
	cw := &chunkWriter{buf: make([]byte, 0, chunkSize+chunkSize/8), emit: func(c []byte) error { return put(recChunk, c) }}
	if err := save(cw); err != nil {
		return n, err
	}
	if err := cw.flush(); err != nil {
		return n, err
	}
	if err := put(recCommit, binary.BigEndian.AppendUint64(nil, next)); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// abandonJournal handles a failed append: the journal's end is unknown,
// so it is closed and never appended to again. The next save is a
// snapshot of a new generation (see save), and a load before it cuts off
// whatever follows the last commit.
func (st *stateStore) abandonJournal(err error) error {
	st.journal.Close()
	st.journal = nil
	return err
}

// snapshot writes the engine's whole state under the next generation,
// with the cursor next, and removes the previous generation.
func (st *stateStore) snapshot(next uint64, e *Engine) (int64, error) {
	gen := st.gen + 1
	var size int64
	err := ledger.WriteFileAtomicFunc(filepath.Join(st.dir, fileName("snapshot", gen)), 0o600, func(f io.Writer) error {
		var err error
		size, err = writeSave(f, next, e.SaveAll)
		return err
	})
	if err != nil {
		return 0, err
	}
	// The new generation is the state: the previous one's files, and
	// an earlier layout in the database, are garbage now.
	if st.journal != nil {
		st.journal.Close()
		st.journal = nil
	}
	st.stale = append(st.stale, fileName("snapshot", st.gen), fileName("journal", st.gen))
	if st.fromDB {
		if err := st.dbGarbage(); err != nil {
			return size, err
		}
	}
	st.gen, st.snapBytes, st.jBytes, st.fromDB, st.resave = gen, size, 0, false, false
	return size, st.removeGarbage()
}

// close closes the journal.
func (st *stateStore) close() error {
	if st.journal == nil {
		return nil
	}
	err := st.journal.Close()
	st.journal = nil
	return err
}

// removeGarbage deletes what load or a snapshot found beyond the state:
// files of other generations or of a snapshot a crash interrupted, and
// the database's keys of an earlier layout.
func (st *stateStore) removeGarbage() error {
	for _, name := range st.stale {
		if err := os.Remove(filepath.Join(st.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	st.stale = st.stale[:0]
	for len(st.garbage) > 0 {
		txn := st.db.NewTransaction(true)
		n := 0
		for _, k := range st.garbage {
			if err := txn.Delete(k); errors.Is(err, badger.ErrTxnTooBig) {
				break
			} else if err != nil {
				txn.Discard()
				return err
			}
			n++
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		st.garbage = st.garbage[n:]
	}
	return nil
}

// dbGarbage notes every key of the earlier layouts in the database.
func (st *stateStore) dbGarbage() error {
	return st.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(keyCursor); err == nil {
			st.garbage = append(st.garbage, bytes.Clone(keyCursor))
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for _, pfx := range [][]byte{keyEnginePfx, keySnapPfx, keyJournalPfx} {
			for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
				st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
}

// loadDB reads the state of an earlier layout from the database: the
// commit record under c (cursor | generation | end) with the chunks of
// that generation under s/ and j/, or an 8-byte cursor with one key per
// entry under e/. What the database holds beyond that state is garbage at
// once; the state itself once the first snapshot has replaced it.
func (st *stateStore) loadDB() (cursor uint64, state map[string][]byte, err error) {
	state = map[string][]byte{}
	var gen, end uint64
	legacy := false
	err = st.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyCursor)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			st.fromDB = true
			switch len(v) {
			case 8:
				cursor, legacy = binary.BigEndian.Uint64(v), true
			case 24:
				cursor = binary.BigEndian.Uint64(v)
				gen = binary.BigEndian.Uint64(v[8:])
				end = binary.BigEndian.Uint64(v[16:])
			default:
				return fmt.Errorf("corrupt commit record (%d bytes)", len(v))
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Seek(keyEnginePfx); it.ValidForPrefix(keyEnginePfx); it.Next() {
			if !legacy {
				st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			state[string(it.Item().Key()[len(keyEnginePfx):])] = v
		}
		for _, pfx := range [][]byte{keySnapPfx, keyJournalPfx} {
			for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
				k := it.Item().Key()
				if len(k) != len(pfx)+16 {
					st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
					continue
				}
				g, n := binary.BigEndian.Uint64(k[len(pfx):]), binary.BigEndian.Uint64(k[len(pfx)+8:])
				if legacy || g != gen || pfx[0] == keyJournalPfx[0] && n >= end {
					st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
					continue
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if err := applyChunk(state, v); err != nil {
					return fmt.Errorf("chunk %q: %w", k, err)
				}
			}
		}
		return nil
	})
	return cursor, state, err
}

// entries yields state's entries, for Engine.LoadState.
func entries(state map[string][]byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for k, v := range state {
			if !yield([]byte(k), v) {
				return
			}
		}
	}
}

// applyChunk applies a chunk's operations to state. Values point into
// chunk.
func applyChunk(state map[string][]byte, chunk []byte) error {
	for len(chunk) > 0 {
		op := chunk[0]
		chunk = chunk[1:]
		k, rest, ok := cutBytes(chunk)
		if !ok {
			return errors.New("truncated key")
		}
		chunk = rest
		switch op {
		case opSet:
			v, rest, ok := cutBytes(chunk)
			if !ok {
				return errors.New("truncated value")
			}
			chunk = rest
			state[string(k)] = v
		case opDel:
			delete(state, string(k))
		default:
			return fmt.Errorf("unknown operation %d", op)
		}
	}
	return nil
}

func cutBytes(b []byte) (v, rest []byte, ok bool) {
	n, m := binary.Uvarint(b)
	if m <= 0 || uint64(len(b)-m) < n {
		return nil, nil, false
	}
	return b[m : m+int(n)], b[m+int(n):], true
}

// chunkWriter is a StateWriter that encodes operations into chunks and
// hands each full one to emit.
type chunkWriter struct {
	buf   []byte
	emit  func([]byte) error
	bytes int64
}

func (w *chunkWriter) Set(k, v []byte) error {
	w.buf = append(w.buf, opSet)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(k)))
	w.buf = append(w.buf, k...)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(v)))
	w.buf = append(w.buf, v...)
	return w.maybeEmit()
}

func (w *chunkWriter) Delete(k []byte) error {
	w.buf = append(w.buf, opDel)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(k)))
	w.buf = append(w.buf, k...)
	return w.maybeEmit()
}

func (w *chunkWriter) maybeEmit() error {
	if len(w.buf) < chunkSize {
		return nil
	}
	return w.flush()
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.bytes += int64(len(w.buf))
	err := w.emit(w.buf)
	w.buf = make([]byte, 0, chunkSize+chunkSize/8)
	return err
}
