//go:build unix

package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// withKey returns the content of a keys file holding keys and one more,
// named name with role, and the new key's secret.
func withKey(t *testing.T, keys []api.APIKey, name string, role api.Role) ([]byte, string) {
	t.Helper()
	token, key, err := api.NewAPIKey(name, role)
	if err != nil {
		t.Fatal(err)
	}
	scratch := api.NewKeyFile(filepath.Join(t.TempDir(), "scratch.yaml"))
	if err := scratch.Write(append(keys, key)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(scratch.Path())
	if err != nil {
		t.Fatal(err)
	}
	return raw, token
}

// TestKeyFileOthersMayWriteIsRefused: a keys file that group or others
// may write was loaded without a word, so any local user could add an
// admin key to it and use it two seconds later. The server refuses it now,
// keeping the keys in use, as for a file that does not parse; the admin
// API and the apikey command refuse to change it (which would write the
// added key back as the owner's); and once the mode is fixed (a chmod
// alone) the watch loads the file.
func TestKeyFileOthersMayWriteIsRefused(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf), withAPI(func(c *api.Config) { c.KeyPollInterval = 20 * time.Millisecond }))
	ts.run(t)
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o666, 0o620, 0o602} {
		if err := os.Chmod(kf.Path(), mode); err != nil {
			t.Fatal(err)
		}
		raw, token := withKey(t, keys, fmt.Sprintf("intruder-%04o", mode), api.RoleAdmin)
		if err := os.WriteFile(kf.Path(), raw, mode); err != nil { // in place: the mode stays
			t.Fatal(err)
		}
		err := ts.api.ReloadKeys(bg)
		if msg := fmt.Sprint(err); !errors.Is(err, api.ErrKeyFileUnsafe) || !strings.Contains(msg, kf.Path()) ||
			!strings.Contains(msg, fmt.Sprintf("mode %04o", mode)) || !strings.Contains(msg, "chmod 600") {
			t.Errorf("mode %04o: ReloadKeys() = %v; want ErrKeyFileUnsafe naming the file, its mode and the fix", mode, err)
		}
		if r := ts.get(t, "/v1/entries/0", token); r.status != http.StatusUnauthorized {
			t.Errorf("mode %04o: GET with the key added to the file = %v, want 401", mode, r)
		}
		if r := ts.get(t, "/v1/log", ts.admin()); r.status != http.StatusOK {
			t.Errorf("mode %04o: GET with a key loaded before = %v, want 200 (the old keys stay)", mode, r)
		}
		_, _, err = api.NewKeyFile(kf.Path()).Create(api.KeySpec{Name: "by-cli", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
		if !errors.Is(err, api.ErrKeyFileUnsafe) {
			t.Errorf("mode %04o: KeyFile.Create() = %v, want ErrKeyFileUnsafe", mode, err)
		}
		if r := ts.adminCall(t, "POST", "/v1/admin/keys", "", map[string]any{"name": "http", "roles": []string{"auditor"}}); r.status < 500 {
			t.Errorf("mode %04o: POST /v1/admin/keys = %v, want it refused", mode, r)
		}
		if got, err := os.ReadFile(kf.Path()); err != nil || string(got) != string(raw) {
			t.Errorf("mode %04o: the keys file was changed (%v)", mode, err)
		}

		// Fixed by the operator (who checked its keys): a chmod alone
		// is seen.
		if err := os.Chmod(kf.Path(), 0o600); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, ts, token, http.StatusOK)
		if keys, err = kf.Read(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyFileOfAnotherUserIsRefused (as root): a keys file of another
// user than the server's and root (who can change it at will) is
// refused, naming the owner; the owner of its directory, who can replace
// it anyway, is trusted.
func TestKeyFileOfAnotherUserIsRefused(t *testing.T) {
	needRoot(t)
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	if err := os.Chown(kf.Path(), serverUID, serverUID); err != nil {
		t.Fatal(err)
	}
	err := ts.api.ReloadKeys(bg)
	if msg := fmt.Sprint(err); !errors.Is(err, api.ErrKeyFileUnsafe) || !strings.Contains(msg, kf.Path()) || !strings.Contains(msg, "uid 65534") {
		t.Errorf("ReloadKeys() of uid 65534's keys file = %v; want ErrKeyFileUnsafe naming the file and its owner", err)
	}
	if err := os.Chown(filepath.Dir(kf.Path()), serverUID, serverUID); err != nil {
		t.Fatal(err)
	}
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Errorf("ReloadKeys() of a keys file of its directory's owner = %v", err)
	}
}

// TestKeyFileLockIsNotFollowed (as root): root gives the lock file to the
// keys file's owner, so a lock file that the server's user (who may write
// the directory) made a symbolic or hard link to another file would have
// had root give that file away. Such a lock file is refused, and the file
// keeps its owner.
func TestKeyFileLockIsNotFollowed(t *testing.T) {
	needRoot(t)
	for _, link := range []struct {
		name string
		make func(oldname, newname string) error
	}{{"symbolic link", os.Symlink}, {"hard link", os.Link}} {
		t.Run(link.name, func(t *testing.T) {
			dir := sharedDir(t, serverUID)
			path := filepath.Join(dir, "api_keys.yaml")
			if _, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: "first", Roles: []api.Role{api.RoleAdmin}}, evt.AdminByCLI, time.Now(), nil); err != nil {
				t.Fatal(err)
			}
			precious := filepath.Join(t.TempDir(), "shadow")
			if err := os.WriteFile(precious, []byte("root's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path + ".lock"); err != nil {
				t.Fatal(err)
			}
			if err := link.make(precious, path+".lock"); err != nil {
				t.Fatal(err)
			}
			_, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: "second", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
			if err == nil {
				t.Errorf("KeyFile.Create() with the lock file a %s to another file = nil, want an error", link.name)
			}
			fi, err := os.Stat(precious)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
				t.Errorf("the file the lock file linked to now belongs to %d:%d, want 0:0", st.Uid, st.Gid)
			}
		})
	}
}

// TestKeyFileSymlinkIsNotReplaced: a keys file that is a symbolic link
// (to a file configuration management keeps) was replaced by a plain file
// at the first change, after which the server no longer saw what was
// written to the managed file. The server reads through the link; changes
// through it are refused, naming the file it points to, and the link
// stays.
func TestKeyFileSymlinkIsNotReplaced(t *testing.T) {
	managed := filepath.Join(t.TempDir(), "keys.yaml")
	link := filepath.Join(t.TempDir(), "api_keys.yaml")
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		if err := api.NewKeyFile(managed).Write(c.Keys.Keys()); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(managed, link); err != nil {
			t.Fatal(err)
		}
		c.KeyFile = api.NewKeyFile(link)
	}))
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatalf("ReloadKeys() through a link = %v", err)
	}
	before, err := os.ReadFile(managed)
	if err != nil {
		t.Fatal(err)
	}

	_, _, err = api.NewKeyFile(link).Create(api.KeySpec{Name: "by-cli", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
	if msg := fmt.Sprint(err); !strings.Contains(msg, link+" is a symbolic link to "+managed) || !strings.Contains(msg, "api_keys_file") {
		t.Errorf("KeyFile.Create() through a link = %v; want it refused, naming the link, the file it points to and api_keys_file", err)
	}
	if r := ts.adminCall(t, "POST", "/v1/admin/keys", "", map[string]any{"name": "by-http", "roles": []string{"auditor"}}); r.status == http.StatusCreated {
		t.Errorf("POST /v1/admin/keys through a link = %v, want it refused", r)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the keys file is no longer a link: %v, %v", fi.Mode(), err)
	}
	if after, err := os.ReadFile(managed); err != nil || string(after) != string(before) {
		t.Errorf("the managed file changed (%v)", err)
	}
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Errorf("ReloadKeys() after the refused changes = %v", err)
	}

	// What is written where the file is kept takes effect.
	token, _, err := api.NewKeyFile(managed).Create(api.KeySpec{Name: "managed", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatalf("ReloadKeys() = %v", err)
	}
	if r := ts.get(t, "/v1/entries/0", token); r.status != http.StatusOK {
		t.Errorf("GET with the key added to the managed file = %v, want 200", r)
	}
}

// TestKeyFilesAreNotReadThroughTheServersLinks (as root): root (apikey
// add, apikey list) read the records file, and the keys file, through
// links that the server's user, who may write the data directory, could
// plant: a records file linked to /dev/zero had apikey add read until
// memory ran out, and one linked to a file only root may read, or a keys
// file linked to it, had the error quote that file. The records file is
// read only as a plain file of bounded size; the keys file through a
// link only if it is root's or the file's owner's; and no error quotes
// what a file holds.
func TestKeyFilesAreNotReadThroughTheServersLinks(t *testing.T) {
	needRoot(t)
	const secret = "hunter2-s3cr3t"
	rootOnly := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(rootOnly, []byte("keys: []\n"+secret+": {\""+secret+"\": 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rootJSON := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(rootJSON, []byte(`{"`+secret+`": "`+secret+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// within fails the test unless f returns within 5 seconds.
	within := func(t *testing.T, what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not return within 5s", what)
			return nil
		}
	}
	plant := func(t *testing.T, target, link string) {
		t.Helper()
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, serverUID, serverUID); err != nil {
			t.Fatal(err)
		}
	}
	for _, target := range []string{"/dev/zero", rootOnly, rootJSON} {
		t.Run("RecordsTo"+filepath.Base(target), func(t *testing.T) {
			dir := sharedDir(t, serverUID)
			path := filepath.Join(dir, "api_keys.yaml")
			if _, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: "first", Roles: []api.Role{api.RoleAdmin}}, evt.AdminByCLI, time.Now(), nil); err != nil {
				t.Fatal(err)
			}
			plant(t, target, path+".recorded")
			err := within(t, "KeyFile.Create()", func() error {
				_, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: "second", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
				return err
			})
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("KeyFile.Create() with the records file a link to %s = %v, want an error that does not quote the file", target, err)
			}
		})
	}
	t.Run("KeysFileToRootsFile", func(t *testing.T) {
		dir := sharedDir(t, serverUID)
		path := filepath.Join(dir, "api_keys.yaml")
		plant(t, rootOnly, path)
		var keys []api.APIKey
		err := within(t, "KeyFile.Read()", func() (err error) {
			keys, err = api.NewKeyFile(path).Read()
			return err
		})
		if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("KeyFile.Read() of a link the server's user made to root's file = %v, %v; want it refused, saying why, not quoting the file", keys, err)
		}
		// Root's own link, or one to the link owner's file, is followed.
		mine := filepath.Join(dir, "managed.yaml")
		if err := api.NewKeyFile(mine).Write(nil); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(mine, serverUID, serverUID); err != nil {
			t.Fatal(err)
		}
		plant(t, mine, path)
		if _, err := api.NewKeyFile(path).Read(); err != nil {
			t.Errorf("KeyFile.Read() through the server's link to its own file = %v", err)
		}
	})
	t.Run("KeysFileQuotesNothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "api_keys.yaml")
		for _, tc := range []struct{ content, want string }{
			{"keys: []\n" + secret + ": 1\n", "line 2: an unknown field"},
			{"root:" + secret + ":19000:0:99999:7:::\n", "line 1: "},
			{"keys:\n  - name: a\n    created_at: " + secret + "\n", "not valid"}, // yaml.v3 gives no line
			{"keys: [*" + secret + "]\n", "unknown anchor"},
		} {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := api.NewKeyFile(path).Read(); err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("KeyFile.Read() of %q = %v, want an error saying %q, not quoting the file", tc.content, err, tc.want)
			}
		}
	})
}
