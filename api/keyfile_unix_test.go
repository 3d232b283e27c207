//go:build unix

package api_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
	evt "github.com/accessledger/accessledger/event"
)

// serverUID is the user the tests give the keys file to, as a server
// running as nobody has it.
const serverUID = 65534

// needRoot skips a test that gives files to another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it gives files to another user, as the server's")
	}
}

// sharedDir returns a directory belonging to uid (mode 0700) that uid can
// reach.
func sharedDir(t *testing.T, uid int) string {
	t.Helper()
	top := t.TempDir()
	if err := os.Chmod(filepath.Dir(top), 0o711); err != nil { // the test's own temporary directory
		t.Fatal(err)
	}
	if err := os.Chmod(top, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(top, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantOwned fails the test unless path belongs to uid:uid with mode
// perm, and uid can read it.
func wantOwned(t *testing.T, path string, uid int, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != uid || fi.Mode().Perm() != perm {
		t.Errorf("%s: owner %d:%d, mode %04o; want %d:%d, %04o", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, uid, perm)
	}
	cat := exec.Command("cat", path)
	cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if out, err := cat.CombinedOutput(); err != nil {
		t.Errorf("reading %s as uid %d: %v %s", path, uid, err, out)
	}
}

// TestKeyFileKeepsOwner (as root): a change made by root (accessledger
// apikey run with sudo) to the keys file of a server running as nobody
// replaced it with root's file, mode 0600, which the server could no
// longer read: a revoked key stayed valid, the admin API answered 500 and
// the server could not restart. The file, and the lock file, keep their
// owner now; a file made where there was none is the directory owner's.
func TestKeyFileKeepsOwner(t *testing.T) {
	needRoot(t)
	dir := sharedDir(t, serverUID)
	path := filepath.Join(dir, "api_keys.yaml")
	now := time.Now()

	// A new file: the directory's owner's.
	if _, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: "first", Roles: []api.Role{api.RoleAdmin}}, evt.AdminByCLI, now, nil); err != nil {
		t.Fatalf("KeyFile.Create() = %v", err)
	}
	wantOwned(t, path, serverUID, 0o600)
	wantOwned(t, path+".lock", serverUID, 0o600)

	// A lock file root made before this fix is given back too.
	if err := os.Chown(path+".lock", 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, change := range []func(kf *api.KeyFile) error{
		func(kf *api.KeyFile) error {
			_, _, err := kf.Create(api.KeySpec{Name: "second", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, now, nil)
			return err
		},
		func(kf *api.KeyFile) error {
			_, _, err := kf.Rotate("second", api.RotateSpec{}, evt.AdminByCLI, now, nil)
			return err
		},
		func(kf *api.KeyFile) error {
			_, err := kf.Revoke("second", evt.AdminByCLI, now, nil)
			return err
		},
	} {
		if err := change(api.NewKeyFile(path)); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, path, serverUID, 0o600)
		wantOwned(t, path+".lock", serverUID, 0o600)
	}

	// A server reading the file through its group keeps reading it.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: "third", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, now, nil); err != nil {
		t.Fatal(err)
	}
	wantOwned(t, path, serverUID, 0o640)
}
