package detect

import (
	"bytes"
	"encoding/binary"
	"maps"
	"testing"

	"github.com/dgraph-io/badger/v4"
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

// loadEngine loads what st holds into a fresh engine of the default pack
// and returns its whole state and the cursor.
func loadEngine(t *testing.T, db *badger.DB) (map[string]string, uint64, *stateStore) {
	t.Helper()
	st := &stateStore{db: db}
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

// TestStateJournalRoundTrip saves the engine's state through journals and
// snapshots (the threshold lowered so that several are taken) and checks
// that loading it gives the engine's state exactly, at every save.
func TestStateJournalRoundTrip(t *testing.T) {
	old := compactMin
	compactMin = 64 << 10
	t.Cleanup(func() { compactMin = old })

	dir := t.TempDir()
	db := openStateDB(t, dir)
	st := &stateStore{db: db}
	e, err := LoadDefault(storeTestConfig)
	if err != nil {
		t.Fatal(err)
	}
	evs := benchEvents(30_000, 2_000)
	gens := map[uint64]bool{}
	for i, ev := range evs {
		e.Process(&Record{Index: uint64(i), ReceivedAt: ev.Time, Event: ev})
		if (i+1)%3_000 != 0 {
			continue
		}
		if _, _, err := st.save(uint64(i+1), e); err != nil {
			t.Fatalf("save at %d: %v", i+1, err)
		}
		gens[st.gen] = true
		want := mapWriter{}
		if err := e.SaveAll(want); err != nil {
			t.Fatal(err)
		}
		got, cursor, _ := loadEngine(t, db)
		if cursor != uint64(i+1) {
			t.Fatalf("cursor %d, want %d", cursor, i+1)
		}
		if len(got) != len(want) || !maps.Equal(got, want) {
			t.Fatalf("after save at %d: loaded state has %d entries, the engine %d, or they differ", i+1, len(got), len(want))
		}
	}
	if e.Stats().Evicted == 0 {
		t.Fatal("no group was evicted: the test should delete state too")
	}
	if len(gens) < 3 {
		t.Fatalf("only generations %v: the test should have taken several snapshots", gens)
	}
	// Only the current generation is left.
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for _, pfx := range [][]byte{keySnapPfx, keyJournalPfx} {
			for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
				if g := binary.BigEndian.Uint64(it.Item().Key()[len(pfx):]); g != st.gen {
					t.Errorf("chunk %q of generation %d left behind (current %d)", it.Item().Key(), g, st.gen)
				}
			}
		}
		return nil
	})
	db.Close()
}

// TestStateCrashBetweenChunksAndCommit: chunks a save wrote before a
// crash took it, without their commit record, are not state: the load
// gives the last committed state and removes them.
func TestStateCrashBetweenChunksAndCommit(t *testing.T) {
	db := openStateDB(t, t.TempDir())
	defer db.Close()
	st := &stateStore{db: db}
	e, _ := LoadDefault(storeTestConfig)
	evs := benchEvents(4_000, 500)
	for i, ev := range evs[:2_000] {
		e.Process(&Record{Index: uint64(i), ReceivedAt: ev.Time, Event: ev})
	}
	if _, _, err := st.save(2_000, e); err != nil {
		t.Fatal(err)
	}
	want := mapWriter{}
	e.SaveAll(want)
	// A save interrupted after its chunks: more events, chunks written
	// under the next journal numbers, no commit record.
	for i, ev := range evs[2_000:] {
		e.Process(&Record{Index: uint64(2_000 + i), ReceivedAt: ev.Time, Event: ev})
	}
	end := st.end
	w := &chunkWriter{emit: func(c []byte) error {
		end++
		return db.Update(func(txn *badger.Txn) error { return txn.Set(chunkKey(keyJournalPfx, st.gen, end-1), c) })
	}}
	if err := e.SaveState(w); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil || end == st.end {
		t.Fatalf("the interrupted save wrote no chunk (err %v)", err)
	}
	got, cursor, st2 := loadEngine(t, db)
	if cursor != 2_000 || !maps.Equal(got, want) {
		t.Fatalf("loaded cursor %d and %d entries; want 2000 and the %d entries of the committed save", cursor, len(got), len(want))
	}
	if st2.end != st.end {
		t.Fatalf("journal end %d, want %d", st2.end, st.end)
	}
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(chunkKey(keyJournalPfx, st.gen, st.end))
		return err
	})
	if err != badger.ErrKeyNotFound {
		t.Fatalf("the uncommitted chunk is still there (Get = %v)", err)
	}
}

// TestStateEarlierLayout: state saved one key per entry under e/ with an
// 8-byte cursor (the layout before the journal) loads, and the first save
// replaces it with a snapshot.
func TestStateEarlierLayout(t *testing.T) {
	db := openStateDB(t, t.TempDir())
	defer db.Close()
	e, _ := LoadDefault(storeTestConfig)
	for i, ev := range benchEvents(3_000, 300) {
		e.Process(&Record{Index: uint64(i), ReceivedAt: ev.Time, Event: ev})
	}
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
	got, cursor, st := loadEngine(t, db)
	if cursor != 3_000 || !maps.Equal(got, want) {
		t.Fatalf("earlier layout: cursor %d, %d entries; want 3000, %d", cursor, len(got), len(want))
	}
	e2, _ := LoadDefault(storeTestConfig)
	_, state, _ := (&stateStore{db: db}).load()
	e2.LoadState(entries(state))
	if _, _, err := st.save(3_000, e2); err != nil {
		t.Fatal(err)
	}
	if st.legacy || st.gen != 1 {
		t.Fatalf("after the first save: legacy %v, generation %d; want a snapshot (generation 1)", st.legacy, st.gen)
	}
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyEnginePfx})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			t.Fatalf("entry %q of the earlier layout left after the snapshot", it.Item().Key())
		}
		return nil
	})
	got, cursor, _ = loadEngine(t, db)
	if cursor != 3_000 || !maps.Equal(got, want) {
		t.Fatalf("after the snapshot: cursor %d, %d entries; want 3000, %d", cursor, len(got), len(want))
	}
}
