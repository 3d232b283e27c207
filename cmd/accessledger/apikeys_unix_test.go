//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAPIKeyCommandKeepsOwner (as root): accessledger apikey add, rotate
// and revoke run as root for a server running as nobody replaced the
// keys file (and made the lock file) as root's, mode 0600: the server
// could not read it any more ("reloading API keys failed ... permission
// denied"), so a revoked key kept working. Both stay nobody's now, and
// nobody can read the keys file.
func TestAPIKeyCommandKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it gives files to another user, as the server's")
	}
	const uid = 65534 // nobody
	top := t.TempDir()
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(top, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, apiKeysFile)
	cli := func(args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := apikey(append(args, "--data", dir), func(string) string { return "" }, &stdout, &stderr); err != nil {
			t.Fatalf("apikey %q = %v; stderr %q", args, err, &stderr)
		}
	}
	// The server's first start wrote the file, as nobody.
	cli("add", "--name", "ops", "--role", "admin")
	for _, p := range []string{dir, keys, keys + ".lock"} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"add", "--name", "reader", "--role", "auditor"},
		{"rotate", "--name", "reader"},
		{"revoke", "--name", "reader"},
	} {
		cli(args...)
		for _, p := range []string{keys, keys + ".lock"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != uid || fi.Mode().Perm() != 0o600 {
				t.Errorf("after apikey %s: %s is %d:%d, mode %04o; want %d:%d, 0600", args[0], p, st.Uid, st.Gid, fi.Mode().Perm(), uid, uid)
			}
		}
		cat := exec.Command("cat", keys)
		cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if out, err := cat.CombinedOutput(); err != nil || !strings.Contains(string(out), "reader") {
			t.Errorf("after apikey %s: reading %s as nobody = %v %q", args[0], keys, err, out)
		}
	}
}
