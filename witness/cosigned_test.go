package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// copyStorage copies the files of a witness's storage directory, as a
// SIGKILL leaves them when the witness is open (every commit is synced,
// and nothing is being written): what a restart finds.
func copyStorage(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// memFile returns the path of the one memtable file (write-ahead log) in
// dir.
func memFile(t *testing.T, dir string) string {
	t.Helper()
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	if len(mems) != 1 {
		t.Fatalf("%d memtable files in %s, want 1", len(mems), dir)
	}
	return mems[0]
}

// TestOpenRefusesStorageThatLostStates: Badger keeps what precedes a
// damaged record of its write-ahead log and drops the rest, saying
// nothing, and a MANIFEST cut short makes it delete the tables it no
// longer lists. The witness had opened such storage with older states
// (size 9 where it had cosigned 20) and cosigned a fork; Open must refuse
// it, naming what was lost.
func TestOpenRefusesStorageThatLostStates(t *testing.T) {
	ctx := context.Background()
	signer := testCosigner(t, "witness.example/w1")
	lg := newTestLog(t, "log.example/a")
	lg.append(21, "a")
	other := newTestLog(t, "log.example/b")
	other.append(3, "b")
	logs := []PolicyLog{lg.policyLog(), other.policyLog()}

	// cosigned20 cosigns lg at sizes 1 to 20, one commit each, and
	// returns a copy of the storage as a SIGKILL leaves it.
	cosigned20 := func(t *testing.T) string {
		dir := t.TempDir()
		w, err := Create(ctx, Config{Dir: dir, Signer: signer, Logs: logs})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for n := int64(1); n <= 20; n++ {
			if _, err := w.AddCheckpoint(ctx, lg.request(n-1, n)); err != nil {
				t.Fatal(err)
			}
		}
		return copyStorage(t, dir)
	}
	// atSize10 is the offset in the write-ahead log of the commit that
	// stored size 10.
	atSize10 := func(t *testing.T, b []byte) int {
		i := bytes.Index(b, []byte(`"size":10,`))
		if i < 0 {
			t.Fatal("the state of size 10 is not in the write-ahead log")
		}
		return i
	}

	for _, tc := range []struct {
		name   string
		damage func(t *testing.T) string // returns the damaged storage
		want   string                    // in the error
	}{
		{"a flipped bit in the write-ahead log", func(t *testing.T) string {
			dir := cosigned20(t)
			mem := memFile(t, dir)
			b, _ := os.ReadFile(mem)
			b[atSize10(t, b)+200] ^= 1
			os.WriteFile(mem, b, 0o644)
			return dir
		}, "had stored 20 states (of all its logs) when it last answered, but the storage in "},
		{"the write-ahead log cut short", func(t *testing.T) string {
			dir := cosigned20(t)
			mem := memFile(t, dir)
			b, _ := os.ReadFile(mem)
			os.WriteFile(mem, b[:atSize10(t, b)+200], 0o644)
			return dir
		}, "had stored 20 states"},
		{"the MANIFEST cut short", func(t *testing.T) string {
			// Three runs: the first leaves a table with the witness's
			// metadata, the second one with lg's states, the third
			// stores other's in its write-ahead log. The MANIFEST cut
			// back to what the first run left drops the second table:
			// lg's states are lost, and the latest ones are all there.
			dir := t.TempDir()
			cfg := Config{Dir: dir, Signer: signer, Logs: logs}
			w, err := Create(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			manifest, _ := os.ReadFile(filepath.Join(dir, "MANIFEST"))
			for _, run := range []struct {
				l    *testLog
				size int64
			}{{lg, 20}, {other, 3}} {
				if w, err = Open(ctx, cfg); err != nil {
					t.Fatal(err)
				}
				if _, err := w.AddCheckpoint(ctx, run.l.request(0, run.size)); err != nil {
					t.Fatal(err)
				}
				if run.l == lg {
					w.Close()
				}
			}
			defer w.Close()
			dir = copyStorage(t, dir)
			os.WriteFile(filepath.Join(dir, "MANIFEST"), manifest, 0o644)
			return dir
		}, "do not add up to the digest stored with the latest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.damage(t)
			w, err := Open(ctx, Config{Dir: dir, Signer: signer, Logs: logs})
			if err == nil {
				defer w.Close()
				_, err := w.AddCheckpoint(ctx, lg.request(0, 21))
				t.Fatalf("Open(damaged storage) = nil, want ErrCorrupt; it answers a checkpoint of size 21 from 0 with %v, having cosigned 20", err)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "never restore them from an older backup") {
				t.Errorf("Open(damaged storage) = %v, want ErrCorrupt saying %q and what to do", err, tc.want)
			}
		})
	}
}

// TestCosignedRecordDamaged: a CosignedFile that does not hold a valid
// record (a byte damaged, the file cut short) is refused, naming it and
// what to do; so is one removed, while the states have a Seq (it had been
// removed and written again, without a word but a warning). With
// AcceptFile, Open records the states the storage holds, once. Left alone
// in a directory whose storage is gone, the record stops Create.
func TestCosignedRecordDamaged(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(5, "a")
	dir := t.TempDir()
	cfg := Config{Dir: dir, Signer: testCosigner(t, "witness.example/w1"), Logs: []PolicyLog{lg.policyLog()}}
	w, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for n := int64(1); n <= 5; n++ {
		if _, err := w.AddCheckpoint(ctx, lg.request(n-1, n)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	path, accept := filepath.Join(dir, CosignedFile), filepath.Join(dir, AcceptFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := decodeCosigned(good); err != nil || seq != 5 {
		t.Fatalf("decodeCosigned(%s) = %d, %v; want 5 states stored", CosignedFile, seq, err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"a flipped bit", flipBit(good, 5), "checksum mismatch"},
		{"cut short", good[:8], "8 bytes, want 16"},
		{"empty", nil, "0 bytes, want 16"},
	} {
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := Open(ctx, cfg)
		if err == nil {
			w.Close()
			t.Errorf("%s: Open() = nil, want ErrCorrupt", tc.name)
			continue
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path+" is damaged ("+tc.want+")") ||
			!strings.Contains(err.Error(), "create "+accept) {
			t.Errorf("%s: Open() = %v, want ErrCorrupt naming %s, saying %q and what to do", tc.name, err, path, tc.want)
		}
	}
	os.Remove(path)
	w, err = Open(ctx, cfg)
	if err == nil {
		w.Close()
		t.Fatalf("Open() without %s = nil, want ErrCorrupt", CosignedFile)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path+" is missing") || !strings.Contains(err.Error(), "(the latest is state 5)") ||
		!strings.Contains(err.Error(), "create "+accept) {
		t.Errorf("Open() without %s = %v, want ErrCorrupt saying it is missing and what to do", CosignedFile, err)
	}
	// Accepted: recorded again from the storage (renumbered), once.
	for _, damaged := range [][]byte{nil, flipBit(good, 5)} {
		if damaged != nil {
			os.WriteFile(path, damaged, 0o644)
		}
		if err := os.WriteFile(accept, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		seq := uint64(0)
		for run := range 2 {
			if w, err = Open(ctx, cfg); err != nil {
				t.Fatalf("Open() with %s, run %d = %v", AcceptFile, run, err)
			}
			if _, err := os.Stat(accept); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after Open: %v, want it removed", AcceptFile, err)
			}
			w.Close()
			got, _, err := readCosigned(dir)
			if run == 0 {
				seq = got
			}
			if err != nil || got <= 5 || got != seq {
				t.Errorf("%s after run %d = %d, %v; want the states numbered anew after 5, and kept", CosignedFile, run, got, err)
			}
		}
	}
	stored, _, _ := readCosigned(dir)
	// The storage gone but for the record: Create refuses to start over.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != CosignedFile {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if w, err := Create(ctx, cfg); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), fmt.Sprintf("%s records that the witness stored %d states here", path, stored)) {
		if err == nil {
			w.Close()
		}
		t.Errorf("Create() with only %s left = %v, want ErrExists naming it", CosignedFile, err)
	}
}

// flipBit returns a copy of b with a bit of byte i flipped.
func flipBit(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x10
	return out
}

// TestOpenStorageWithoutCosignedRecord: a witness made before
// CosignedFile existed (no file, states without Seq or Digest) opens, goes
// on cosigning, and is checked from then on.
func TestOpenStorageWithoutCosignedRecord(t *testing.T) {
	ctx := context.Background()
	a := newTestLog(t, "log.example/a")
	a.append(6, "a")
	b := newTestLog(t, "log.example/b")
	b.append(2, "b")
	dir := t.TempDir()
	cfg := Config{Dir: dir, Signer: testCosigner(t, "witness.example/w1"), Logs: []PolicyLog{a.policyLog(), b.policyLog()}}
	w, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []AddRequest{a.request(0, 4), b.request(0, 2)} {
		if _, err := w.AddCheckpoint(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	// What the witness stored before: states without seq or digest.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixState}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var st map[string]any
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil {
				return err
			}
			delete(st, "seq")
			delete(st, "digest")
			raw, _ := json.Marshal(st)
			if err := txn.Set(it.Item().KeyCopy(nil), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CosignedFile)); err != nil {
		t.Fatal(err)
	}

	for run := range 2 {
		w, err := Open(ctx, cfg)
		if err != nil {
			t.Fatalf("run %d: Open() = %v, want the witness open", run, err)
		}
		var c *ConflictError
		if _, err := w.AddCheckpoint(ctx, b.request(0, 2)); !errors.As(err, &c) || c.Size != 2 {
			t.Errorf("run %d: AddCheckpoint(b, 0 → 2) = %v, want 409 at 2", run, err)
		}
		if _, err := w.AddCheckpoint(ctx, a.request(int64(4+run), int64(5+run))); err != nil {
			t.Errorf("run %d: AddCheckpoint(a, %d → %d) = %v", run, 4+run, 5+run, err)
		}
		w.Close()
		if seq, _, err := readCosigned(dir); err != nil || seq != uint64(run+1) {
			t.Errorf("run %d: %s records %d, %v; want %d", run, CosignedFile, seq, err, run+1)
		}
	}
}

// TestNoCosignatureBeforeTheRecord: a checkpoint is answered only once
// CosignedFile records its state. When the record cannot be written, the
// submission fails (its state is stored, and the record stays behind the
// storage, which a restart accepts and catches up).
func TestNoCosignatureBeforeTheRecord(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(3, "a")
	dir := t.TempDir()
	cfg := Config{Dir: dir, Signer: testCosigner(t, "witness.example/w1"), Logs: []PolicyLog{lg.policyLog()}}
	w, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(ctx, lg.request(0, 1)); err != nil {
		t.Fatal(err)
	}
	w.cosigned.f.Close() // every write of the record fails from now on
	for _, req := range []AddRequest{lg.request(1, 2), lg.request(0, 2)} {
		if cosig, err := w.AddCheckpoint(ctx, req); err == nil || !strings.Contains(err.Error(), "recording the states stored in "+filepath.Join(dir, CosignedFile)) {
			t.Errorf("AddCheckpoint(%d → 2) with the record failing = %q, %v; want an error naming the record", req.OldSize, cosig, err)
		}
	}
	w.Close()
	if seq, _, err := readCosigned(dir); err != nil || seq != 1 {
		t.Fatalf("%s records %d, %v; want 1", CosignedFile, seq, err)
	}
	w, err = Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open() with the record behind the storage = %v", err)
	}
	defer w.Close()
	if seq, _, err := readCosigned(dir); err != nil || seq != 2 {
		t.Errorf("%s after Open records %d, %v; want 2", CosignedFile, seq, err)
	}
	var c *ConflictError
	if _, err := w.AddCheckpoint(ctx, lg.request(0, 3)); !errors.As(err, &c) || c.Size != 2 {
		t.Errorf("AddCheckpoint(0 → 3) after reopening = %v, want 409 at 2", err)
	}
}

// rewriteStates rewrites, in the witness storage in dir (closed), the
// state of each log for which edit returns true, as edit leaves it.
func rewriteStates(t *testing.T, dir string, edit func(st map[string]any) bool) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixState}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var st map[string]any
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &st) }); err != nil {
				return err
			}
			if !edit(st) {
				continue
			}
			raw, _ := json.Marshal(st)
			if err := txn.Set(it.Item().KeyCopy(nil), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenAfterAnEarlierVersionRan: an earlier version of the witness
// (without CosignedFile) run on storage this one wrote opens it without
// a check, cosigns, stores states without Seq or Digest and leaves the
// record as it was. Open had then said the storage lost cosigned state
// and told the operator to retire the witness (found by review). It
// refuses it with ErrEarlierVersion, saying what happened and how to
// accept the storage (AcceptFile); accepted, the storage is re-sequenced
// once, opens where the earlier version left each log, and is checked
// from then on.
func TestOpenAfterAnEarlierVersionRan(t *testing.T) {
	ctx := context.Background()
	a := newTestLog(t, "log.example/a")
	a.append(8, "a")
	b := newTestLog(t, "log.example/b")
	b.append(8, "b")
	signer := testCosigner(t, "witness.example/w1")
	for _, tc := range []struct {
		name    string
		current []AddRequest // cosigned by this version
		earlier []AddRequest // then by an earlier one
		later   *testLog     // the log whose state the earlier one stored
		want    string
	}{
		{"one log", []AddRequest{a.request(0, 2), a.request(2, 3)}, []AddRequest{a.request(3, 4), a.request(4, 5)}, a,
			"holds only the first 0"},
		{"the latest state replaced", []AddRequest{a.request(0, 3), b.request(0, 2)}, []AddRequest{b.request(2, 5)}, b,
			"holds only the first 1"},
		{"another state replaced", []AddRequest{b.request(0, 2), a.request(0, 3)}, []AddRequest{b.request(2, 5)}, b,
			"do not add up to the digest stored with the latest (state 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, Signer: signer, Logs: []PolicyLog{a.policyLog(), b.policyLog()}}
			w, err := Create(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range tc.current {
				if _, err := w.AddCheckpoint(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			path := filepath.Join(dir, CosignedFile)
			record, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// The earlier version: it cosigns (this version stands in for
			// it), stores states without seq or digest and leaves the
			// record as this version wrote it.
			if w, err = Open(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			for _, req := range tc.earlier {
				if _, err := w.AddCheckpoint(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			want, err := w.Logs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			rewriteStates(t, dir, func(st map[string]any) bool {
				if st["origin"] != tc.later.origin {
					return false
				}
				delete(st, "seq")
				delete(st, "digest")
				return true
			})
			if err := os.WriteFile(path, record, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}

			w, err = Open(ctx, cfg)
			if err == nil {
				w.Close()
				t.Fatalf("Open() after an earlier version ran = nil, want ErrEarlierVersion")
			}
			accept := filepath.Join(dir, AcceptFile)
			if msg := err.Error(); !errors.Is(err, ErrEarlierVersion) || errors.Is(err, ErrCorrupt) || strings.Contains(msg, "retire this witness") ||
				!strings.Contains(msg, tc.want) || !strings.Contains(msg, "An earlier version of the witness") || !strings.Contains(msg, "create "+accept) {
				t.Fatalf("Open() after an earlier version ran = %v, want ErrEarlierVersion saying %q, that an earlier version ran and to create %s",
					err, tc.want, accept)
			}

			// Accepted: re-sequenced once, then checked as before.
			if err := os.WriteFile(accept, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for run := range 2 {
				w, err := Open(ctx, cfg)
				if err != nil {
					t.Fatalf("run %d: Open() = %v, want the storage accepted (run 0, with %s) and checked", run, err, AcceptFile)
				}
				if _, err := os.Stat(accept); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("run %d: %s after Open: %v, want it removed", run, AcceptFile, err)
				}
				got, err := w.Logs(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var size uint64 // of tc.later
				for i := range want {
					if got[i].Origin != want[i].Origin || got[i].Size != want[i].Size || !bytes.Equal(got[i].RootHash, want[i].RootHash) {
						t.Errorf("run %d: Logs() holds %s at %d, want %s at %d", run, got[i].Origin, got[i].Size, want[i].Origin, want[i].Size)
					}
					if want[i].Origin == tc.later.origin {
						size = want[i].Size
					}
				}
				if _, err := w.AddCheckpoint(ctx, tc.later.request(int64(size), int64(size+1))); err != nil {
					t.Errorf("run %d: AddCheckpoint(%s, %d → %d) = %v", run, tc.later.origin, size, size+1, err)
				}
				want, _ = w.Logs(ctx)
				w.Close()
			}
		})
	}
}

// TestOpenRefusesStorageBackToStatesBeforeTheUpgrade: storage that lost
// the states this version stored, back to those an earlier version had
// stored before the upgrade (without Seq), is refused as storage that
// lost states: states stored before this version first ran are no sign
// that an earlier version ran after it.
func TestOpenRefusesStorageBackToStatesBeforeTheUpgrade(t *testing.T) {
	ctx := context.Background()
	a := newTestLog(t, "log.example/a")
	a.append(8, "a")
	b := newTestLog(t, "log.example/b")
	b.append(8, "b")
	signer := testCosigner(t, "witness.example/w1")
	for _, tc := range []struct {
		name  string
		after []AddRequest // cosigned by this version; a's state is then lost
		want  string
	}{
		{"no state with a sequence number left", []AddRequest{a.request(4, 5)}, "holds only the first 0"},
		{"another log's state left", []AddRequest{a.request(4, 5), b.request(2, 3)}, "do not add up to the digest stored with the latest (state 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, Signer: signer, Logs: []PolicyLog{a.policyLog(), b.policyLog()}}
			w, err := Create(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range []AddRequest{a.request(0, 4), b.request(0, 2)} {
				if _, err := w.AddCheckpoint(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			// Stored before the upgrade: no seq, no digest, no record.
			var before map[string]any
			rewriteStates(t, dir, func(st map[string]any) bool {
				delete(st, "seq")
				delete(st, "digest")
				if st["origin"] == a.origin {
					before = maps.Clone(st)
				}
				return true
			})
			if err := os.Remove(filepath.Join(dir, CosignedFile)); err != nil {
				t.Fatal(err)
			}
			if w, err = Open(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			for _, req := range tc.after {
				if _, err := w.AddCheckpoint(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			rewriteStates(t, dir, func(st map[string]any) bool {
				if st["origin"] != a.origin {
					return false
				}
				clear(st)
				maps.Copy(st, before)
				return true
			})
			w, err = Open(ctx, cfg)
			if err == nil {
				w.Close()
				t.Fatal("Open() with a's state back at size 4 = nil, want ErrCorrupt")
			}
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrEarlierVersion) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open() with a's state back at size 4 = %v, want ErrCorrupt saying %q", err, tc.want)
			}
		})
	}
}
