package detect

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
)

// mapWriter is a StateWriter into a map, the state as a whole.
type mapWriter map[string]string

func (m mapWriter) Set(k, v []byte) error { m[string(k)] = string(v); return nil }
func (m mapWriter) Delete(k []byte) error { delete(m, string(k)); return nil }

// storeTestConfig keeps few groups, so that saves delete some.
var storeTestConfig = Config{MaxGroups: 300}

func openStateDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(smallBadger(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).WithValueThreshold(1 << 20)))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// loadEngine loads what the detector directory dir holds into a fresh
// engine of the default pack and returns its whole state, the cursor and
// the store (garbage removed).
func loadEngine(t *testing.T, db *badger.DB, dir string) (map[string]string, uint64, *stateStore) {
	t.Helper()
	st := newStateStore(db, dir)
	cursor, state, err := st.load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	e, err := LoadDefault(storeTestConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.LoadState(entries(state)); err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	if err := st.removeGarbage(); err != nil {
		t.Fatal(err)
	}
	all := mapWriter{}
	if err := e.SaveAll(all); err != nil {
		t.Fatal(err)
	}
	return all, cursor, st
}

// stateFiles lists the state directory of the detector directory dir.
func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, stateDirName))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// dbStateKeys lists the keys of the earlier layouts left in db.
func dbStateKeys(t *testing.T, db *badger.DB) []string {
	t.Helper()
	var keys []string
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if bytes.Equal(k, keyCursor) || bytes.HasPrefix(k, keyEnginePfx) || bytes.HasPrefix(k, keySnapPfx) || bytes.HasPrefix(k, keyJournalPfx) {
				keys = append(keys, string(k))
			}
		}
		return nil
	})
	return keys
}

func processEvents(e *Engine, from int, evs []*event.Event) {
	for i, ev := range evs {
		e.Process(&Record{Index: uint64(from + i), ReceivedAt: ev.Time, Event: ev})
	}
}

// TestStateJournalRoundTrip saves the engine's state through journals and
// snapshots (the threshold lowered so that several are taken) and checks
// that loading it gives the engine's state exactly, at every save, and
// that only the current generation's files are kept.
func TestStateJournalRoundTrip(t *testing.T) {
	old := compactMin
	compactMin = 64 << 10
	t.Cleanup(func() { compactMin = old })

	dir := t.TempDir()
	db := openStateDB(t, dir)
	defer db.Close()
	_, _, st := loadEngine(t, db, dir)
	defer st.close()
	e, err := LoadDefault(storeTestConfig)
	if err != nil {
		t.Fatal(err)
	}
	evs := benchEvents(30_000, 2_000)
	gens := map[uint64]bool{}
	journals := 0
	for i := 0; i < len(evs); i += 3_000 {
		processEvents(e, i, evs[i:i+3_000])
		kind, _, err := st.save(uint64(i+3_000), e)
		if err != nil {
			t.Fatalf("save at %d: %v", i+3_000, err)
		}
		if kind == "journal" {
			journals++
		}
		gens[st.gen] = true
		want := mapWriter{}
		if err := e.SaveAll(want); err != nil {
			t.Fatal(err)
		}
		got, cursor, st2 := loadEngine(t, db, dir)
		if cursor != uint64(i+3_000) {
			t.Fatalf("cursor %d, want %d", cursor, i+3_000)
		}
		if len(got) != len(want) || !maps.Equal(got, want) {
			t.Fatalf("after save at %d: loaded state has %d entries, the engine %d, or they differ", i+3_000, len(got), len(want))
		}
		if st2.gen != st.gen || st2.jBytes != st.jBytes {
			t.Fatalf("loaded generation %d with a %d-byte journal; the store has %d and %d", st2.gen, st2.jBytes, st.gen, st.jBytes)
		}
		// Only the current generation's files are kept.
		for _, name := range stateFiles(t, dir) {
			if name != fileName("snapshot", st.gen) && name != fileName("journal", st.gen) {
				t.Errorf("after save at %d (generation %d): %s left behind", i+3_000, st.gen, name)
			}
		}
	}
	if e.Stats().Evicted == 0 {
		t.Fatal("no group was evicted: the test should delete state too")
	}
	if len(gens) < 3 || journals < 3 {
		t.Fatalf("generations %v, %d journal saves: the test should have taken several of each", gens, journals)
	}
	if keys := dbStateKeys(t, db); len(keys) > 0 {
		t.Errorf("state keys in the database: %q", keys)
	}
}

// commitRecord is the journal's commit record of a save at cursor.
func commitRecord(b []byte, cursor uint64) []byte {
	return appendRecord(b, recCommit, binary.BigEndian.AppendUint64(nil, cursor))
}

// TestStateCrashDuringSave: a save a crash interrupted left chunk records
// and a torn record after the journal's last commit; they are not state:
// the load gives the last committed state and cuts them off, and the next
// save appends after that commit.
func TestStateCrashDuringSave(t *testing.T) {
	dir := t.TempDir()
	db := openStateDB(t, dir)
	defer db.Close()
	st := newStateStore(db, dir)
	if _, _, err := st.load(); err != nil {
		t.Fatal(err)
	}
	e, _ := LoadDefault(storeTestConfig)
	evs := benchEvents(6_000, 500)
	processEvents(e, 0, evs[:2_000])
	if kind, _, err := st.save(2_000, e); err != nil || kind != "journal" {
		t.Fatalf("save = %q, %v; want a journal", kind, err)
	}
	want := mapWriter{}
	e.SaveAll(want)
	committed := st.jBytes
	st.close()

	// The interrupted save: its chunks, no commit, a torn record.
	processEvents(e, 2_000, evs[2_000:4_000])
	var tail []byte
	w := &chunkWriter{emit: func(c []byte) error { tail = appendRecord(tail, recChunk, c); return nil }}
	if err := e.SaveState(w); err != nil || w.flush() != nil || len(tail) == 0 {
		t.Fatalf("the interrupted save wrote nothing (err %v)", err)
	}
	tail = append(tail, commitRecord(nil, 4_000)[:7]...)
	path := filepath.Join(dir, stateDirName, fileName("journal", 0))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(tail)
	f.Close()

	got, cursor, st2 := loadEngine(t, db, dir)
	defer st2.close()
	if cursor != 2_000 || !maps.Equal(got, want) {
		t.Fatalf("loaded cursor %d and %d entries; want 2000 and the %d entries of the committed save", cursor, len(got), len(want))
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != committed {
		t.Fatalf("journal after the load: %v, %v; want it cut back to its last commit, %d bytes", fi.Size(), err, committed)
	}

	// The engine replays the leaves since the cursor, and saves again.
	e2, _ := LoadDefault(storeTestConfig)
	_, state, _ := newStateStore(db, dir).load()
	e2.LoadState(entries(state))
	processEvents(e2, 2_000, evs[2_000:6_000])
	if _, _, err := st2.save(6_000, e2); err != nil {
		t.Fatal(err)
	}
	want = mapWriter{}
	e2.SaveAll(want)
	got, cursor, st3 := loadEngine(t, db, dir)
	st3.close()
	if cursor != 6_000 || !maps.Equal(got, want) {
		t.Fatalf("after the next save: cursor %d, %d entries; want 6000, %d", cursor, len(got), len(want))
	}
}

// TestStateDamaged: a damaged snapshot is refused with its name; a
// damaged journal save is taken for the torn end of a crash: the state is
// that of the save before it.
func TestStateDamaged(t *testing.T) {
	old := compactMin
	compactMin = 1 // every other save a snapshot
	t.Cleanup(func() { compactMin = old })
	dir := t.TempDir()
	db := openStateDB(t, dir)
	defer db.Close()
	_, _, st := loadEngine(t, db, dir)
	e, _ := LoadDefault(storeTestConfig)
	evs := benchEvents(6_000, 500)
	var wantAt2000 mapWriter
	for i, kind := range []string{"journal", "snapshot", "journal", "journal"} {
		processEvents(e, i*1_500, evs[i*1_500:(i+1)*1_500])
		if i == 3 {
			compactMin = 1 << 40 // journal again
		}
		got, _, err := st.save(uint64((i+1)*1_500), e)
		if err != nil || got != kind {
			t.Fatalf("save %d = %q, %v; want a %s", i, got, err, kind)
		}
		if i == 2 {
			wantAt2000 = mapWriter{}
			e.SaveAll(wantAt2000)
		}
	}
	st.close()
	journal := filepath.Join(dir, stateDirName, fileName("journal", st.gen))
	raw, _ := os.ReadFile(journal)
	raw[len(raw)-20] ^= 0x40 // inside the last save
	os.WriteFile(journal, raw, 0o600)
	got, cursor, st2 := loadEngine(t, db, dir)
	st2.close()
	if cursor != 4_500 || !maps.Equal(got, wantAt2000) {
		t.Fatalf("with the last journal save damaged: cursor %d, %d entries; want the save before, 4500 and %d", cursor, len(got), len(wantAt2000))
	}

	snap := filepath.Join(dir, stateDirName, fileName("snapshot", st.gen))
	raw, _ = os.ReadFile(snap)
	raw[len(raw)/2] ^= 0x40
	os.WriteFile(snap, raw, 0o600)
	if _, _, err := newStateStore(db, dir).load(); err == nil || !strings.Contains(err.Error(), snap) {
		t.Fatalf("load of a damaged snapshot = %v, want an error naming %s", err, snap)
	}
}

// TestStateEarlierLayout: state saved one key per entry under e/ with an
// 8-byte cursor in the database (the layout before the journal) loads,
// and the first save replaces it with a snapshot in files.
func TestStateEarlierLayout(t *testing.T) {
	dir := t.TempDir()
	db := openStateDB(t, dir)
	defer db.Close()
	e, _ := LoadDefault(storeTestConfig)
	processEvents(e, 0, benchEvents(3_000, 300))
	want := mapWriter{}
	e.SaveAll(want)
	err := db.Update(func(txn *badger.Txn) error {
		for k, v := range want {
			if err := txn.Set(append(bytes.Clone(keyEnginePfx), k...), []byte(v)); err != nil {
				return err
			}
		}
		return txn.Set(keyCursor, binary.BigEndian.AppendUint64(nil, 3_000))
	})
	if err != nil {
		t.Fatal(err)
	}
	checkMigrates(t, db, dir, want, 3_000)
}

// TestStateDatabaseChunks: state saved as chunks in the database (a
// snapshot under s/, journal chunks under j/, the commit record under c:
// the layout before the files) loads, and the first save replaces it with
// a snapshot in files. Chunks of another generation, or past the commit's
// end, are not state.
func TestStateDatabaseChunks(t *testing.T) {
	dir := t.TempDir()
	db := openStateDB(t, dir)
	defer db.Close()
	e, _ := LoadDefault(storeTestConfig)
	evs := benchEvents(4_000, 300)
	processEvents(e, 0, evs[:2_000])
	chunks := func(save func(StateWriter) error) [][]byte {
		var out [][]byte
		w := &chunkWriter{emit: func(c []byte) error { out = append(out, bytes.Clone(c)); return nil }}
		if err := save(w); err != nil || w.flush() != nil {
			t.Fatal(err)
		}
		return out
	}
	snap := chunks(e.SaveAll)
	processEvents(e, 2_000, evs[2_000:3_000])
	journal := chunks(e.SaveState)
	want := mapWriter{}
	e.SaveAll(want)
	processEvents(e, 3_000, evs[3_000:])
	uncommitted := chunks(e.SaveState)
	err := db.Update(func(txn *badger.Txn) error {
		for i, c := range snap {
			txn.Set(dbChunkKey(keySnapPfx, 7, uint64(i)), c)
			txn.Set(dbChunkKey(keySnapPfx, 6, uint64(i)), c[:len(c)/2]) // an older generation
		}
		for i, c := range journal {
			txn.Set(dbChunkKey(keyJournalPfx, 7, uint64(i)), c)
		}
		for i, c := range uncommitted {
			txn.Set(dbChunkKey(keyJournalPfx, 7, uint64(len(journal)+i)), c)
		}
		commit := binary.BigEndian.AppendUint64(nil, 3_000)
		commit = binary.BigEndian.AppendUint64(commit, 7)
		return txn.Set(keyCursor, binary.BigEndian.AppendUint64(commit, uint64(len(journal))))
	})
	if err != nil {
		t.Fatal(err)
	}
	checkMigrates(t, db, dir, want, 3_000)
}

// checkMigrates loads an earlier layout from db, saves, and checks that
// the save was a snapshot into files that load to the same state, and
// that the database's state keys are gone; then that a crash before they
// were removed leaves the files the state.
func checkMigrates(t *testing.T, db *badger.DB, dir string, want mapWriter, cursor uint64) {
	t.Helper()
	got, c, st := loadEngine(t, db, dir)
	if c != cursor || !maps.Equal(got, want) {
		t.Fatalf("earlier layout: cursor %d, %d entries; want %d, %d", c, len(got), cursor, len(want))
	}
	keys := dbStateKeys(t, db)
	e, _ := LoadDefault(storeTestConfig)
	_, state, _ := newStateStore(db, dir).load()
	e.LoadState(entries(state))
	if kind, _, err := st.save(cursor, e); err != nil || kind != "snapshot" {
		t.Fatalf("first save = %q, %v; want a snapshot", kind, err)
	}
	st.close()
	if left := dbStateKeys(t, db); len(left) > 0 {
		t.Fatalf("state keys of the earlier layout left in the database: %q", left)
	}
	if names := stateFiles(t, dir); !slices.Equal(names, []string{fileName("snapshot", 1)}) {
		t.Fatalf("state files %q, want the first snapshot", names)
	}
	got, c, st = loadEngine(t, db, dir)
	st.close()
	if c != cursor || !maps.Equal(got, want) {
		t.Fatalf("after the snapshot: cursor %d, %d entries; want %d, %d", c, len(got), cursor, len(want))
	}

	// A crash between the snapshot and the removal: the files win.
	err := db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Set([]byte(k), []byte("stale")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, c, st = loadEngine(t, db, dir)
	st.close()
	if c != cursor || !maps.Equal(got, want) {
		t.Fatalf("files and the earlier layout both present: cursor %d, %d entries; want the files', %d, %d", c, len(got), cursor, len(want))
	}
	if left := dbStateKeys(t, db); len(left) > 0 {
		t.Fatalf("state keys of the earlier layout left in the database: %q", left)
	}
}

// dbChunkKey is a chunk's key in the earlier layout (the tests write it).
func dbChunkKey(pfx []byte, gen, n uint64) []byte {
	k := append([]byte(nil), pfx...)
	k = binary.BigEndian.AppendUint64(k, gen)
	return binary.BigEndian.AppendUint64(k, n)
}

// TestStateFailedAppend: an append to the journal that fails has taken
// the engine's changes with it. The save reports the error; the next save
// is a snapshot of the whole state (a journal would miss those changes),
// and a load gives the engine's state; saves journal again after that.
// The same holds when the journal cannot even be cut back.
func TestStateFailedAppend(t *testing.T) {
	dir := t.TempDir()
	db := openStateDB(t, dir)
	defer db.Close()
	st := newStateStore(db, dir)
	if _, _, err := st.load(); err != nil {
		t.Fatal(err)
	}
	defer st.close()
	e, _ := LoadDefault(storeTestConfig)
	evs := benchEvents(10_000, 500)
	processEvents(e, 0, evs[:2_000])
	if kind, _, err := st.save(2_000, e); err != nil || kind != "journal" {
		t.Fatalf("save = %q, %v; want a journal", kind, err)
	}
	// failNextAppend makes the journal's next write fail; with gone, its
	// file is removed too, so that it cannot be cut back either.
	failNextAppend := func(gone bool) {
		t.Helper()
		path := filepath.Join(dir, stateDirName, fileName("journal", st.gen))
		if st.journal == nil {
			t.Fatal("no journal open: the last save was not a journal")
		}
		ro, err := os.Open(path) // writes to it fail
		if err != nil {
			t.Fatal(err)
		}
		st.journal.Close()
		st.journal = ro
		if gone {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(what string, cursor uint64, wantKind, kind string) {
		t.Helper()
		if kind != wantKind {
			t.Errorf("%s: save took a %s, want a %s", what, kind, wantKind)
		}
		want := mapWriter{}
		e.SaveAll(want)
		got, c, st2 := loadEngine(t, db, dir)
		st2.close()
		if c != cursor || !maps.Equal(got, want) {
			t.Fatalf("%s: loaded cursor %d and %d entries; want %d and the engine's %d", what, c, len(got), cursor, len(want))
		}
	}
	at := uint64(2_000)
	for _, gone := range []bool{false, true} {
		failNextAppend(gone)
		processEvents(e, int(at), evs[at:at+2_000])
		at += 2_000
		if _, _, err := st.save(at, e); err == nil {
			t.Fatal("save to a journal that refuses writes = nil error")
		}
		kind, _, err := st.save(at, e)
		if err != nil {
			t.Fatalf("save after a failed append (journal gone %v): %v", gone, err)
		}
		check(fmt.Sprintf("after a failed append (journal gone %v)", gone), at, "snapshot", kind)

		processEvents(e, int(at), evs[at:at+2_000])
		at += 2_000
		kind, _, err = st.save(at, e)
		if err != nil {
			t.Fatal(err)
		}
		check("the save after the snapshot", at, "journal", kind)
	}
}
