package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damageWAL flips one byte in the middle of what the memtable files
// (Badger's write-ahead log) of dir hold, as a bad sector or a stray
// write would, and returns the file it changed.
func damageWAL(t *testing.T, dir string) string {
	t.Helper()
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil || len(mems) == 0 {
		t.Fatalf("no memtable file in %s (%v)", dir, err)
	}
	for _, path := range mems {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		end := len(b)
		for end > 0 && b[end-1] == 0 {
			end--
		}
		if end < 4096 {
			continue // the empty memtable Badger opened last
		}
		b[end/2] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Fatalf("no memtable file in %s holds data", dir)
	return ""
}

// TestOpenRefusesStorageThatLostAcknowledgedEntries damages the
// write-ahead log of a crashed ledger (a copy of its directory taken while
// it runs), and checks that Open refuses it. Badger reads such a log up to
// the damage and cuts the rest, as it would a torn write: without the
// record of the acknowledged size, the log opened shorter and appends went
// on over the lost entries.
func TestOpenRefusesStorageThatLostAcknowledgedEntries(t *testing.T) {
	l, cfg := newTestLedger(t)
	for i := range 40 {
		appendN(t, l, i*10, 10, 10) // 40 commits
	}
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, cfg.Dir, crashed)
	closeLedger(t, l)

	c := cfg
	c.Dir = crashed
	damaged := damageWAL(t, crashed)
	damagedBytes, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	damagedBytes = bytes.TrimRight(damagedBytes, "\x00")
	_, err = Open(bg, c)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "400 entries were acknowledged") ||
		!strings.Contains(err.Error(), "backup") {
		t.Fatalf("Open() after a byte of %s was flipped = %v, want ErrCorrupt saying 400 entries were acknowledged and to restore a backup",
			filepath.Base(damaged), err)
	}
	t.Logf("refused: %v", err)

	// The bytes Badger cut are kept: the damaged memtable file as it was
	// before the open, in the directory the error names.
	copies, _ := filepath.Glob(crashed + LogCopyPrefix + "*")
	if len(copies) != 1 || !strings.Contains(err.Error(), copies[0]) {
		t.Fatalf("copies of the logs %v; want one, named in the error", copies)
	}
	if info, err := os.Stat(copies[0]); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("the copy's directory: %v, %v; want mode 0700", info, err)
	}
	kept, err := os.ReadFile(filepath.Join(copies[0], filepath.Base(damaged)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept, damagedBytes) {
		t.Errorf("the copy of %s holds %d bytes that differ from the %d it had before the open",
			filepath.Base(damaged), len(kept), len(damagedBytes))
	}

	// An operator who restored an older backup on purpose removes the
	// record; the log then opens with what it holds, and records that.
	if err := os.Remove(filepath.Join(crashed, AckedFile)); err != nil {
		t.Fatal(err)
	}
	l = openTestLedger(t, c)
	size, _ := l.Size()
	if size >= 400 {
		t.Fatalf("Size() = %d after damage Badger cut, want fewer than 400 (the test damaged nothing)", size)
	}
	closeLedger(t, l)
	got, ok, err := readAcked(crashed)
	if err != nil || !ok || got != size {
		t.Fatalf("readAcked after reopening = %d, %v, %v; want %d", got, ok, err, size)
	}
}

// TestOpenAfterCrashKeepsNoLogCopy opens a crashed ledger that lost
// nothing: the copy of its logs made before the open is removed.
func TestOpenAfterCrashKeepsNoLogCopy(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 30, 10)
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, cfg.Dir, crashed)
	closeLedger(t, l)
	if files, _, err := logsToCopy(crashed); err != nil || len(files) == 0 {
		t.Fatalf("logsToCopy(crashed) = %v, %v; want the memtable files that hold data", files, err)
	}
	c := cfg
	c.Dir = crashed
	l = openTestLedger(t, c)
	if size, _ := l.Size(); size != 30 {
		t.Errorf("Size() = %d after the crash, want 30", size)
	}
	closeLedger(t, l)
	if copies, _ := filepath.Glob(crashed + LogCopyPrefix + "*"); len(copies) != 0 {
		t.Errorf("copies of the logs %v left after an open that lost nothing", copies)
	}
	// A clean close flushed the memtables: nothing to copy next time.
	if files, _, err := logsToCopy(crashed); err != nil || len(files) != 0 {
		t.Errorf("logsToCopy after a clean close = %v, %v; want none", files, err)
	}
}

// TestAckedRecord checks the record through the ledger's life: made at
// Create, advanced by every commit, made for a log that predates it, and a
// damaged one refused with what to do.
func TestAckedRecord(t *testing.T) {
	l, cfg := newTestLedger(t)
	if got, ok, err := readAcked(cfg.Dir); err != nil || !ok || got != 0 {
		t.Fatalf("after Create: readAcked = %d, %v, %v; want 0, true, nil", got, ok, err)
	}
	appendN(t, l, 0, 7, 3)
	if got, _, err := readAcked(cfg.Dir); err != nil || got != 7 {
		t.Fatalf("after 7 appends: readAcked = %d, %v; want 7", got, err)
	}
	info, err := os.Stat(filepath.Join(cfg.Dir, AckedFile))
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != ackedRecordSize {
		t.Fatalf("%s: %v, %v; want a %d-byte file with mode 0600", AckedFile, info, err, ackedRecordSize)
	}
	closeLedger(t, l)

	// A log made before the record existed opens and gets one.
	if err := os.Remove(filepath.Join(cfg.Dir, AckedFile)); err != nil {
		t.Fatal(err)
	}
	l = openTestLedger(t, cfg)
	closeLedger(t, l)
	if got, ok, err := readAcked(cfg.Dir); err != nil || !ok || got != 7 {
		t.Fatalf("after opening a log without the record: readAcked = %d, %v, %v; want 7, true, nil", got, ok, err)
	}

	for _, tc := range []struct {
		name    string
		content func([]byte) []byte
		want    string
	}{
		{"Empty", func([]byte) []byte { return nil }, "0 bytes"},
		{"FlippedByte", func(b []byte) []byte { b[6] ^= 1; return b }, "checksum mismatch"},
		{"Foreign", func([]byte) []byte { return []byte("0123456789abcdef") }, "not an acknowledged-size record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(cfg.Dir, AckedFile)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, good, 0o600)
			if err := os.WriteFile(path, tc.content(append([]byte(nil), good...)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Open(bg, cfg)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "remove it") {
				t.Fatalf("Open() with a damaged %s = %v, want ErrCorrupt with %q and what to do", AckedFile, err, tc.want)
			}
		})
	}

	// A record ahead of the log is refused, and so is creating a log
	// where one was acknowledged.
	a := &ackedRecord{}
	for _, tc := range []struct {
		name string
		dir  string
		open func(Config) error
		want string
	}{
		{"AheadOfLog", cfg.Dir, func(c Config) error { _, err := Open(bg, c); return err }, "storage holds 7 entries, but 8 entries were acknowledged"},
		{"NoLog", t.TempDir(), func(c Config) error { _, err := Create(bg, c); return err }, "storage holds no log, but 8 entries were acknowledged"},
		{"NoLogOpen", t.TempDir(), func(c Config) error { _, err := Open(bg, c); return err }, "storage holds no log, but 8 entries were acknowledged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(tc.dir, AckedFile)
			good, _ := os.ReadFile(path)
			defer os.WriteFile(path, good, 0o600)
			if err := os.WriteFile(path, a.encode(8), 0o600); err != nil {
				t.Fatal(err)
			}
			c := cfg
			c.Dir = tc.dir
			err := tc.open(c)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s = %v, want ErrCorrupt with %q", tc.name, err, tc.want)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("lost entries %d-7", map[bool]int{true: 7, false: 0}[tc.name == "AheadOfLog"])) {
				t.Errorf("%s = %v, want the range of lost entries", tc.name, err)
			}
		})
	}
}

// TestDirectoryRemovedStopsAppends: a storage directory deleted under the
// running ledger (rm -rf) took appends, acknowledged into files that are
// gone at exit. The next commit now fails, and the ledger stops.
func TestDirectoryRemovedStopsAppends(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 10, 5)
	if err := os.RemoveAll(cfg.Dir); err != nil {
		t.Fatal(err)
	}
	_, err := l.Append(bg, Entry{Data: entryData(10)})
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "was removed while the server ran") {
		t.Errorf("Append after the directory was removed = %v, want ErrFailed saying it was removed", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrFailed) {
		t.Errorf("Healthy() = %v, want ErrFailed", err)
	}
	// Badger's close writes its memtable: give it a directory again.
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		t.Fatal(err)
	}

	// An idle ledger finds out at its next disk check.
	idle, cfg := newTestLedger(t)
	if err := os.RemoveAll(cfg.Dir); err != nil {
		t.Fatal(err)
	}
	idle.checkDisk()
	if err := idle.Healthy(); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "was removed while the server ran") {
		t.Errorf("Healthy() of an idle ledger whose directory was removed = %v, want ErrFailed saying so", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestFailedOpensKeepNoLogCopy: an open that fails without cutting
// anything keeps no copy of the logs: one on a log another process has
// open (a second server on the same data) copied the live logs at every
// retry, and one with the wrong key kept a copy too.
func TestFailedOpensKeepNoLogCopy(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 20, 10)
	if _, err := Open(bg, cfg); err == nil {
		t.Fatal("a second Open of a log in use succeeded")
	}
	if copies, _ := filepath.Glob(cfg.Dir + LogCopyPrefix + "*"); len(copies) != 0 {
		t.Errorf("copies of the logs %v after an Open refused for a log in use", copies)
	}
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, cfg.Dir, crashed)
	c := cfg
	c.Dir = crashed
	c.Signer = newTestSigner(t, testOrigin)
	if _, err := Open(bg, c); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open() with another key = %v, want ErrWrongKey", err)
	}
	if copies, _ := filepath.Glob(crashed + LogCopyPrefix + "*"); len(copies) != 0 {
		t.Errorf("copies of the logs %v after an Open refused for another key", copies)
	}
}
