package api

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/accessledger/accessledger/internal/strictyaml"
	"github.com/accessledger/accessledger/ledger"
)

// KeyFile is a YAML file of API keys (mode 0600), shared by the server,
// which reads and watches it and changes it through the admin endpoints,
// and the accessledger apikey command:
//
//	keys:
//	  - name: billing-svc
//	    sha256: <hex SHA-256 of the secret>
//	    roles: [submitter]
//	    created_at: 2026-03-01T08:30:00Z
//	    created_by: cli
//
// Every change is a read-modify-write under an exclusive lock on
// <path>.lock (flock, so the command and the server exclude each other),
// written atomically: a temporary file, synced, renamed over the old one.
// The new file keeps the old one's owner and group (root's changes made
// for a server that runs as another user stay readable by it), and a
// change by another user than root or the owner is refused
// (ErrKeyFileOwner), as is one to a keys file that is a symbolic link
// (it is read through it). A KeyFile is safe for concurrent use.
type KeyFile struct {
	path string
	mu   sync.Mutex // serialises the changes of this process
}

// NewKeyFile returns the keys file at path. The file need not exist: it
// then holds no keys, and the first change creates it.
func NewKeyFile(path string) *KeyFile { return &KeyFile{path: path} }

// Path returns the file's path.
func (f *KeyFile) Path() string { return f.path }

// keysDoc is the file's content.
type keysDoc struct {
	Keys []APIKey `yaml:"keys"`
}

// ErrKeyFileInvalid means the keys file does not parse.
var ErrKeyFileInvalid = errors.New("the keys file is not valid")

// Read returns the keys in the file; none if it does not exist. It
// rejects unknown fields, but does not validate the keys (NewKeyring
// does). It reads a plain file of at most MaxKeyFileSize bytes (a FIFO or
// a device is refused, not waited on), through a symbolic link; as root,
// only through links that belong to root or to the file's owner, since
// whoever owns the link (the server's user, who may write the data
// directory) could point it at any file root may read. Errors name lines
// and fields of the file, never what it holds.
func (f *KeyFile) Read() ([]APIKey, error) {
	keys, err := f.read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return keys, err
}

// MaxKeyFileSize bounds the size of the keys file, and of the records
// kept beside it.
const MaxKeyFileSize = 16 << 20

func (f *KeyFile) read() ([]APIKey, error) {
	raw, err := readThroughLinks(f.path, os.Geteuid() == 0)
	if err != nil {
		return nil, err
	}
	return f.decode(raw)
}

// decode parses raw, the file's content. Its errors say where the file
// is wrong, never what it holds: the file may be another than a keys
// file, one root may read and its reader not (apikey list).
func (f *KeyFile) decode(raw []byte) ([]APIKey, error) {
	var doc keysDoc
	if err := strictyaml.Decode(raw, &doc); err != nil {
		err = strictyaml.Redact(err)
		if strings.Contains(err.Error(), "unknown field") {
			err = fmt.Errorf("%w (the file holds keys:, a list of keys with name, sha256, roles, created_at, created_by, expires_at, rotated_at, rotated_by, "+
				"previous_sha256, previous_valid_until, replaced_sha256, revoked_at, revoked_by and rate_limit: per_second, burst)", err)
		}
		return nil, fmt.Errorf("parsing %s: %w (%w)", f.path, err, ErrKeyFileInvalid)
	}
	return doc.Keys, nil
}

// readPlain reads the plain file at path through one open file, refusing
// a FIFO, a device or a directory (opened without blocking), and a file
// larger than MaxKeyFileSize; with noFollow, a symbolic link too
// (isLinkRefused). It returns what it read and the file's FileInfo.
func readPlain(path string, noFollow bool) ([]byte, os.FileInfo, error) {
	flags := os.O_RDONLY | oNonBlock
	if noFollow {
		flags |= oNoFollow
	}
	file, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a plain file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > MaxKeyFileSize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, MaxKeyFileSize)
	}
	raw, err := io.ReadAll(io.LimitReader(file, MaxKeyFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(raw) > MaxKeyFileSize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, MaxKeyFileSize)
	}
	return raw, fi, nil
}

// maxLinks bounds the symbolic links followed to the keys file.
const maxLinks = 40

// readThroughLinks reads the plain file at path (readPlain), following
// symbolic links. asRoot, it follows only links that belong to root or
// to the owner of the file they lead to: another user's link would have
// root read, and show in its errors, a file that user may not read.
func readThroughLinks(path string, asRoot bool) ([]byte, error) {
	if !asRoot {
		raw, _, err := readPlain(path, false)
		return raw, err
	}
	type link struct {
		path string
		uid  int
	}
	var links []link
	p := path
	for {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			break // a missing file, or another error, is readPlain's to report
		}
		uid, _, ok := fileOwner(fi)
		if !ok {
			break
		}
		if len(links) == maxLinks {
			return nil, fmt.Errorf("reading %s: more than %d symbolic links", path, maxLinks)
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("reading the link %s: %w", p, err)
		}
		links = append(links, link{p, uid})
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	// The file the links lead to, read without following another link
	// put there since.
	raw, fi, err := readPlain(p, len(links) > 0)
	if err != nil {
		if isLinkRefused(err) {
			return nil, fmt.Errorf("reading %s: %s changed while it was read: try again", path, p)
		}
		return nil, err
	}
	owner, _, _ := fileOwner(fi)
	for _, l := range links {
		if l.uid != 0 && l.uid != owner {
			return nil, fmt.Errorf("%s is a symbolic link that belongs to %s, leading to %s, which belongs to %s: root reads no file through a link another user may change, "+
				"since that user could point it at any file; name the file itself (api_keys_file; apikey --file), or have root own the link", l.path, userName(l.uid), p, userName(owner))
		}
	}
	return raw, nil
}

// Write replaces the file's keys with keys, atomically. A new file has
// mode 0600 and, if root writes it, the directory's owner and group; a
// replaced one keeps its owner, its group and its read permissions
// (never write permission for group or others). It refuses
// (ErrKeyFileOwner) to replace another user's file unless run as root,
// and to replace a symbolic link.
// It does not take the lock: use Update to change what is there.
func (f *KeyFile) Write(keys []APIKey) error {
	raw, err := yaml.Marshal(keysDoc{Keys: keys})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", f.path, err)
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", f.path, err)
	}
	r, err := replacementOf(f.path)
	if err != nil {
		return err
	}
	if err := ledger.WriteFileAtomicOwned(f.path, raw, r.perm, r.uid, r.gid); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}

// ErrKeyFileUnsafe means the keys file can be changed by others than the
// server's user and root: it is writable by group or others, or belongs
// to another user. Whoever can change it can give themselves an admin
// key, so the server refuses it (at start, and keeps the keys in use on a
// reload), as it refuses a file that does not parse.
var ErrKeyFileUnsafe = errors.New("the keys file must be writable only by the server's user or root: whoever can change it can give themselves an admin key")

// Check reports why this process must not use the keys in the file
// (ErrKeyFileUnsafe, naming the file and what to do): group or others
// may write it, or it belongs to another user than this process's, root
// and the owner of its directory (who can replace it anyway). A file that
// does not exist is not refused. Where files have no Unix owner and
// mode, it refuses nothing.
func (f *KeyFile) Check() error {
	fi, err := os.Stat(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.path, err)
	}
	uid, _, ok := fileOwner(fi)
	if !ok {
		return nil
	}
	if err := checkMode(f.path, fi); err != nil {
		return err
	}
	euid := os.Geteuid()
	if uid == euid || uid == 0 {
		return nil
	}
	if di, err := os.Stat(filepath.Dir(f.path)); err == nil {
		if duid, _, _ := fileOwner(di); duid == uid {
			return nil
		}
	}
	return fmt.Errorf("%s belongs to %s, but only this server's user (%s), root or the owner of its directory may own it: %w; check its keys (accessledger apikey list), then chown it to %s",
		f.path, userName(uid), userName(euid), ErrKeyFileUnsafe, lookupName(euid))
}

// checkMode refuses a keys file fi (at path) that group or others may
// write.
func checkMode(path string, fi os.FileInfo) error {
	if _, _, ok := fileOwner(fi); !ok || fi.Mode().Perm()&0o022 == 0 {
		return nil
	}
	return fmt.Errorf("%s has mode %04o: %w; check its keys (accessledger apikey list), then chmod 600 it",
		path, fi.Mode().Perm(), ErrKeyFileUnsafe)
}

// ErrKeyFileOwner means the keys file belongs to another user than the
// one changing it, who is not root: the file written in its place would
// belong to the wrong user, whom the server may not be.
var ErrKeyFileOwner = errors.New("the keys file belongs to another user")

// replacement is how the file written in place of the keys file is made.
type replacement struct {
	uid, gid int // its owner and group, as os.Chown (-1: the writer's)
	perm     os.FileMode
}

// replacementOf says how to make the file that replaces the one at path
// (or the one created there, if there is none), or refuses to.
func replacementOf(path string) (replacement, error) {
	r := replacement{uid: -1, gid: -1, perm: 0o600}
	if err := checkNotLink(path); err != nil {
		return r, err
	}
	fi, err := os.Stat(path)
	exists := err == nil
	if errors.Is(err, os.ErrNotExist) {
		fi, err = os.Stat(filepath.Dir(path))
	}
	if err != nil {
		return r, fmt.Errorf("writing %s: %w", path, err)
	}
	if exists {
		// A server that reads the file through its group keeps reading
		// it; write permission is never passed on.
		r.perm |= fi.Mode().Perm() & 0o044
	}
	uid, gid, ok := fileOwner(fi)
	if !ok {
		return r, nil // no owners to keep on this system
	}
	r.uid, r.gid, err = chownFor(path, os.Geteuid(), inGroup, uid, gid, exists)
	return r, err
}

// checkNotLink refuses to change a keys file that is a symbolic link: a
// change would replace the link with a file, and whatever keeps the file
// it points to (configuration management) would go unheard; following
// it would let whoever can write the link's directory (the server's
// user) have root write wherever they point it.
func checkNotLink(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil // a missing file is created; other errors are Stat's
	}
	dest, err := os.Readlink(path)
	if err != nil {
		return fmt.Errorf("reading the link %s: %w", path, err)
	}
	return fmt.Errorf("%s is a symbolic link to %s, and is not changed through a link: change the keys where %s is kept, "+
		"or name that file itself as the keys file (api_keys_file; apikey --file)", path, dest, dest)
}

// chownFor decides the owner and group (as os.Chown) to give the file a
// process of euid writes in place of path, which belongs to uid and gid
// (if !exists, the directory does, and there is no file yet). Root gives
// it those, so that a server running as that user can still read it;
// the owner keeps the group if it is one of its own (inGroup); anyone
// else would leave the server a file it cannot read, and is refused. A
// new file made by another user than root is that user's, as any file.
func chownFor(path string, euid int, inGroup func(gid int) bool, uid, gid int, exists bool) (int, int, error) {
	switch {
	case euid == 0:
		return uid, gid, nil
	case !exists:
		return -1, -1, nil
	case euid == uid && inGroup(gid):
		return -1, gid, nil
	case euid == uid:
		return -1, -1, nil
	}
	return -1, -1, fmt.Errorf("%s belongs to %s, and this runs as %s: a file written in its place would belong to %s, and a server running as %s could no longer read it; "+
		"run this as the server's user (sudo -u %s ...) or as root, which keeps the file's owner (%w)",
		path, userName(uid), userName(euid), lookupName(euid), lookupName(uid), lookupName(uid), ErrKeyFileOwner)
}

// userName names the user uid for a message: "name (uid N)", or "uid N".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// lookupName is the user name of uid, or "#uid" (as sudo -u takes it).
func lookupName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "#" + strconv.Itoa(uid)
}

// inGroup reports whether this process is in group gid.
func inGroup(gid int) bool {
	if gid == os.Getegid() {
		return true
	}
	groups, _ := os.Getgroups()
	return slices.Contains(groups, gid)
}

// Update reads the keys under the file's lock, passes them to change and
// writes what it returns, if the result makes a valid keyring. An error
// from change is returned as is, and nothing is written. It returns the
// keys written.
func (f *KeyFile) Update(change func(keys []APIKey) ([]APIKey, error)) ([]APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", f.path, err)
	}
	// Refused before the lock file is made: it, too, must be the
	// owner's, or the server could no longer take the lock.
	r, err := replacementOf(f.path)
	if err != nil {
		return nil, err
	}
	unlock, err := lockFile(f.path+".lock", r.uid, r.gid)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", f.path, err)
	}
	defer unlock()
	// Read under the lock, refusing a link made since replacementOf
	// looked; a file others may write may hold keys they added: they
	// are not written back as the owner's.
	keys, err := f.readForUpdate()
	if err != nil {
		return nil, err
	}
	keys, err = change(keys)
	if err != nil {
		return nil, err
	}
	if _, err := NewKeyring(keys); err != nil {
		return nil, err
	}
	if err := f.Write(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// readForUpdate reads the keys as Update changes them: the file itself,
// never through a link (checkNotLink), and refused if group or others may
// write it (checkMode); none if it does not exist.
func (f *KeyFile) readForUpdate() ([]APIKey, error) {
	raw, fi, err := readPlain(f.path, true)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case isLinkRefused(err):
		if lerr := checkNotLink(f.path); lerr != nil {
			return nil, lerr
		}
		return nil, err
	case err != nil:
		return nil, err
	}
	if err := checkMode(f.path, fi); err != nil {
		return nil, err
	}
	return f.decode(raw)
}

// stat returns what identifies the file's current version (nil if it
// does not exist): an atomic rename makes a new file, an edit in place
// changes its size or modification time.
func (f *KeyFile) stat() (os.FileInfo, error) {
	fi, err := os.Stat(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return fi, err
}

// sameVersion reports whether two results of stat are the same version
// of the file. A change of mode or owner is a new version: a file refused
// for them (Check) is loaded once they are fixed.
func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	aUID, aGID, _ := fileOwner(a)
	bUID, bGID, _ := fileOwner(b)
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) &&
		a.Mode() == b.Mode() && aUID == bUID && aGID == bGID
}
