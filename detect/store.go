package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/dgraph-io/badger/v4"
)

// The engine's saved state is a journal in the detector's database: a
// snapshot of the whole state, then the changes each save made, in
// chunks of a few hundred KiB. A save writes a handful of large values,
// where a key per group cost a skiplist insert each, and was most of the
// detector's CPU time when it held many groups.
//
//	c                   the commit record: cursor | generation | end
//	s/<gen><n>          snapshot chunks of generation gen
//	j/<gen><seq>        journal chunks of generation gen, seq < end
//
// A save writes its journal chunks in as many transactions as Badger
// needs, then the commit record, which names the end of the journal and
// the cursor it belongs to: a crash in between leaves chunks past end,
// which the next Open removes. A snapshot is written the same way under
// a new generation, and its commit record switches to it; the previous
// generation's chunks are removed after it. Chunks are kept in the LSM
// tree (under the value threshold), so that removing them frees their
// space through Badger's compactions, with no value-log GC.
//
// A commit record of 8 bytes (the cursor alone) is the earlier layout,
// one key per state entry under e/: it is loaded, and replaced by a
// snapshot at the first save.
var (
	keySnapPfx    = []byte("s/")
	keyJournalPfx = []byte("j/")
)

// chunkSize is the size a chunk is cut at.
const chunkSize = 256 << 10

// compactMin is the journal size below which no snapshot is taken; above
// it, one is taken once the journal outgrows the snapshot. Tests lower it.
var compactMin int64 = 32 << 20

// Chunk operations.
const (
	opSet byte = 1
	opDel byte = 2
)

// stateStore keeps the engine's state as a journal in db.
type stateStore struct {
	db        *badger.DB
	gen       uint64 // generation of the state
	end       uint64 // journal chunks of gen are those before end
	snapBytes int64  // size of gen's snapshot
	jBytes    int64  // size of gen's journal
	legacy    bool   // the state is in the earlier layout
	tried     uint64 // the latest generation a snapshot was started under
	garbage   [][]byte
}

func chunkKey(pfx []byte, gen, n uint64) []byte {
	k := append([]byte(nil), pfx...)
	k = binary.BigEndian.AppendUint64(k, gen)
	return binary.BigEndian.AppendUint64(k, n)
}

func encodeCommit(cursor, gen, end uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, cursor)
	b = binary.BigEndian.AppendUint64(b, gen)
	return binary.BigEndian.AppendUint64(b, end)
}

// load reads the commit record and the state it names, and returns the
// cursor and the state's entries, for Engine.LoadState. It notes what the
// database holds beyond that state, for removeGarbage.
func (st *stateStore) load() (cursor uint64, state map[string][]byte, err error) {
	state = map[string][]byte{}
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
			switch len(v) {
			case 8:
				cursor, st.legacy = binary.BigEndian.Uint64(v), true
			case 24:
				cursor = binary.BigEndian.Uint64(v)
				st.gen = binary.BigEndian.Uint64(v[8:])
				st.end = binary.BigEndian.Uint64(v[16:])
			default:
				return fmt.Errorf("corrupt commit record (%d bytes)", len(v))
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		if st.legacy {
			for it.Seek(keyEnginePfx); it.ValidForPrefix(keyEnginePfx); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				state[string(it.Item().Key()[len(keyEnginePfx):])] = v
			}
		} else {
			for it.Seek(keyEnginePfx); it.ValidForPrefix(keyEnginePfx); it.Next() {
				st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
			}
		}
		for _, pfx := range [][]byte{keySnapPfx, keyJournalPfx} {
			for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
				k := it.Item().Key()
				if len(k) != len(pfx)+16 {
					st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
					continue
				}
				gen, n := binary.BigEndian.Uint64(k[len(pfx):]), binary.BigEndian.Uint64(k[len(pfx)+8:])
				if st.legacy || gen != st.gen || pfx[0] == keyJournalPfx[0] && n >= st.end {
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
				if pfx[0] == keySnapPfx[0] {
					st.snapBytes += int64(len(v))
				} else {
					st.jBytes += int64(len(v))
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

// removeGarbage deletes what load found beyond the state: chunks of a
// save or snapshot a crash interrupted, an older generation, the earlier
// layout's entries once a snapshot replaced them.
func (st *stateStore) removeGarbage() error {
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

// chunkTxn writes chunks in as few transactions as Badger accepts.
type chunkTxn struct {
	db  *badger.DB
	txn *badger.Txn
}

func (t *chunkTxn) set(k, v []byte) error {
	if t.txn == nil {
		t.txn = t.db.NewTransaction(true)
	}
	err := t.txn.Set(k, v)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err := t.commit(); err != nil {
			return err
		}
		t.txn = t.db.NewTransaction(true)
		err = t.txn.Set(k, v)
	}
	return err
}

func (t *chunkTxn) commit() error {
	if t.txn == nil {
		return nil
	}
	err := t.txn.Commit()
	t.txn = nil
	return err
}

func (t *chunkTxn) discard() {
	if t.txn != nil {
		t.txn.Discard()
		t.txn = nil
	}
}

// save journals the engine's changes, then commits the cursor next with
// them. It takes a snapshot instead when the journal has outgrown the
// snapshot, or the state is in the earlier layout. It reports which
// ("journal" or "snapshot") and the bytes written.
func (st *stateStore) save(next uint64, e *Engine) (kind string, n int64, err error) {
	if st.legacy || st.jBytes >= max(compactMin, st.snapBytes) {
		n, err = st.snapshot(next, e)
		return "snapshot", n, err
	}
	n, err = st.journal(next, e)
	return "journal", n, err
}

// journal writes the engine's changes and commits them with the cursor.
func (st *stateStore) journal(next uint64, e *Engine) (int64, error) {
	t := &chunkTxn{db: st.db}
	defer t.discard()
	end := st.end
	w := &chunkWriter{buf: make([]byte, 0, chunkSize+chunkSize/8), emit: func(c []byte) error {
		end++
		return t.set(chunkKey(keyJournalPfx, st.gen, end-1), c)
	}}
	if err := e.SaveState(w); err != nil {
		return 0, err
	}
	if err := w.flush(); err != nil {
		return 0, err
	}
	if err := t.set(keyCursor, encodeCommit(next, st.gen, end)); err != nil {
		return 0, err
	}
	if err := t.commit(); err != nil {
		return 0, err
	}
	st.end = end
	st.jBytes += w.bytes
	return w.bytes, nil
}

// snapshot writes the engine's whole state under a new generation,
// switches to it with the cursor next, and removes the previous one.
func (st *stateStore) snapshot(next uint64, e *Engine) (int64, error) {
	t := &chunkTxn{db: st.db}
	defer t.discard()
	// A snapshot that failed part-way left chunks under its generation:
	// never reuse it, or they would join this one.
	gen := max(st.gen, st.tried) + 1
	st.tried = gen
	var n uint64
	w := &chunkWriter{buf: make([]byte, 0, chunkSize+chunkSize/8), emit: func(c []byte) error {
		n++
		return t.set(chunkKey(keySnapPfx, gen, n-1), c)
	}}
	if err := e.SaveAll(w); err != nil {
		return 0, err
	}
	if err := w.flush(); err != nil {
		return 0, err
	}
	if err := t.set(keyCursor, encodeCommit(next, gen, 0)); err != nil {
		return 0, err
	}
	if err := t.commit(); err != nil {
		return 0, err
	}
	// The new generation is the state; what the previous one and the
	// earlier layout left is garbage now.
	err := st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		pfxs := [][]byte{chunkKey(keySnapPfx, st.gen, 0)[:len(keySnapPfx)+8], chunkKey(keyJournalPfx, st.gen, 0)[:len(keyJournalPfx)+8]}
		if st.legacy {
			pfxs = append(pfxs, keyEnginePfx)
		}
		for _, pfx := range pfxs {
			for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
				st.garbage = append(st.garbage, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	st.gen, st.end, st.legacy = gen, 0, false
	st.snapBytes, st.jBytes = w.bytes, 0
	if err != nil {
		return w.bytes, err
	}
	return w.bytes, st.removeGarbage()
}
