package api

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChownFor: the file written in place of the keys file keeps its
// owner and group when root writes it, the group when its owner does, and
// is refused to anyone else, with a message saying whom to run as; a new
// file (none before) is root's gift to the directory's owner.
func TestChownFor(t *testing.T) {
	member := func(gid int) bool { return gid == 100 }
	for _, tc := range []struct {
		name             string
		euid             int
		uid, gid         int
		exists           bool
		wantUID, wantGID int
		wantErr          bool
	}{
		{name: "root, another user's file", euid: 0, uid: 65534, gid: 65534, exists: true, wantUID: 65534, wantGID: 65534},
		{name: "root, new file in another user's directory", euid: 0, uid: 65534, gid: 65534, wantUID: 65534, wantGID: 65534},
		{name: "root, its own file", euid: 0, uid: 0, gid: 0, exists: true, wantUID: 0, wantGID: 0},
		{name: "owner, a group of its own", euid: 1000, uid: 1000, gid: 100, exists: true, wantUID: -1, wantGID: 100},
		{name: "owner, a group not its own", euid: 1000, uid: 1000, gid: 200, exists: true, wantUID: -1, wantGID: -1},
		{name: "another user", euid: 1000, uid: 65534, gid: 100, exists: true, wantErr: true},
		{name: "another user, root's file", euid: 1000, uid: 0, gid: 0, exists: true, wantErr: true},
		{name: "another user, new file", euid: 1000, uid: 65534, gid: 65534, wantUID: -1, wantGID: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid, err := chownFor("/srv/al/api_keys.yaml", tc.euid, member, tc.uid, tc.gid, tc.exists)
			if tc.wantErr {
				if msg := errStr(err); !errors.Is(err, ErrKeyFileOwner) || !strings.Contains(msg, "/srv/al/api_keys.yaml") ||
					!strings.Contains(msg, "sudo -u ") || !strings.Contains(msg, "or as root") {
					t.Errorf("chownFor() = %d, %d, %v; want ErrKeyFileOwner naming the file and whom to run as", uid, gid, err)
				}
				return
			}
			if err != nil || uid != tc.wantUID || gid != tc.wantGID {
				t.Errorf("chownFor() = %d, %d, %v; want %d, %d, nil", uid, gid, err, tc.wantUID, tc.wantGID)
			}
		})
	}
}

func errStr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestKeyWatchReloadsAReplacedFileAtOnce: a change made with the apikey
// command took up to two seconds to take effect (a revoked key kept
// working that long), as the watch held every change for a whole check
// before reloading, lest a file written in place be read half way. A file
// replaced by a rename, as the command and the admin API write it, is
// whole: it is reloaded at the first check that sees it. A change in
// place, and a removal, still wait a check.
func TestKeyWatchReloadsAReplacedFileAtOnce(t *testing.T) {
	dir := t.TempDir()
	kf := NewKeyFile(filepath.Join(dir, "api_keys.yaml"))
	stat := func() os.FileInfo {
		t.Helper()
		fi, err := kf.stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	key := func(name string) APIKey {
		_, k, err := NewAPIKey(name, RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	var w keyWatch
	check := func(what string, loaded os.FileInfo, want ...int) {
		t.Helper()
		for i, want := range want {
			if got := w.reload(stat(), loaded); got != want {
				t.Errorf("%s: keyWatch.reload() at check %d = %v, want %v", what, i+1, got, want)
			}
		}
	}

	// Created where there was none, by a rename.
	if err := kf.Write([]APIKey{key("a")}); err != nil {
		t.Fatal(err)
	}
	check("a keys file created", nil, loadNew)
	loaded := stat()
	check("no change", loaded, keepKeys, keepKeys)

	// Replaced as the command and the admin API do.
	if err := NewKeyFile(kf.Path()).Write([]APIKey{key("a"), key("b")}); err != nil {
		t.Fatal(err)
	}
	check("a keys file replaced by a rename", loaded, loadNew)
	loaded = stat()

	// Edited in place: reloaded once the change has held for a check.
	raw, err := os.ReadFile(kf.Path())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(kf.Path(), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(raw[:len(raw)/2]); err != nil {
		t.Fatal(err)
	}
	check("a keys file half written in place", loaded, keepKeys)
	if _, err := f.Write(raw[len(raw)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The size, or the modification time, moved on since.
	if fi := stat(); !sameVersion(fi, loaded) {
		check("a keys file written in place", loaded, keepKeys, loadSettled)
	} else {
		t.Logf("the edit in place left size and modification time as they were")
	}

	// Removed: reloaded (and refused, by readKeysLocked) a check later.
	loaded = stat()
	if err := os.Remove(kf.Path()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{keepKeys, loadSettled} {
		if got := w.reload(nil, loaded); got != want {
			t.Errorf("a keys file removed: keyWatch.reload() at check %d = %v, want %v", i+1, got, want)
		}
	}
}

// TestKeyWatchSettlesANewFileNotLoaded: a new file was taken as whole
// because it was a new file, but an editor that moves the old file aside
// and writes a new one in its place (vim with backupcopy=auto, cp onto a
// removed file) makes a new file too, read half written: its removals
// were recorded for good. A new file is loaded at once only if it removes
// nothing (reloadNewLocked); one left as it was is loaded, and what it
// removes recorded, once it has held for a check, or at once if it
// changes again into one that removes nothing.
func TestKeyWatchSettlesANewFileNotLoaded(t *testing.T) {
	dir := t.TempDir()
	kf := NewKeyFile(filepath.Join(dir, "api_keys.yaml"))
	stat := func() os.FileInfo {
		t.Helper()
		fi, err := kf.stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if err := kf.Write(nil); err != nil {
		t.Fatal(err)
	}
	loaded := stat()
	var w keyWatch
	// Moved aside, and a new file written in its place, half way.
	if err := os.Rename(kf.Path(), kf.Path()+"~"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(kf.Path(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("keys:\n"); err != nil {
		t.Fatal(err)
	}
	if got := w.reload(stat(), loaded); got != loadNew {
		t.Errorf("keyWatch.reload() of a new file = %d, want loadNew (%d)", got, loadNew)
	}
	// Not loaded (it would remove keys): the same version a check later
	// is settled.
	if got := w.reload(stat(), loaded); got != loadSettled {
		t.Errorf("keyWatch.reload() of a new file not loaded, a check later = %d, want loadSettled (%d)", got, loadSettled)
	}
	// Written on: new again, then settled.
	if _, err := f.WriteString("  - name: a\n"); err != nil {
		t.Fatal(err)
	}
	fi := stat()
	if sameVersion(fi, w.seen) {
		t.Skip("the write left size and modification time as they were")
	}
	for i, want := range []int{loadNew, loadSettled} {
		if got := w.reload(fi, loaded); got != want {
			t.Errorf("keyWatch.reload() of a file written on, at check %d = %d, want %d", i+1, got, want)
		}
	}
	// Loaded: nothing more.
	if got := w.reload(fi, fi); got != keepKeys {
		t.Errorf("keyWatch.reload() of the file loaded = %d, want keepKeys (%d)", got, keepKeys)
	}
}
