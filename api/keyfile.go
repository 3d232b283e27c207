package api

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// A KeyFile is safe for concurrent use.
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
// does).
func (f *KeyFile) Read() ([]APIKey, error) {
	keys, err := f.read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return keys, err
}

func (f *KeyFile) read() ([]APIKey, error) {
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	var doc keysDoc
	if err := strictyaml.Decode(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %w (%w)", f.path, err, ErrKeyFileInvalid)
	}
	return doc.Keys, nil
}

// Write replaces the file's keys with keys, atomically, with mode 0600.
// It does not take the lock: use Update to change what is there.
func (f *KeyFile) Write(keys []APIKey) error {
	raw, err := yaml.Marshal(keysDoc{Keys: keys})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", f.path, err)
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", f.path, err)
	}
	if err := ledger.WriteFileAtomic(f.path, raw, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
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
	unlock, err := lockFile(f.path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", f.path, err)
	}
	defer unlock()
	keys, err := f.Read()
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
// of the file.
func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
