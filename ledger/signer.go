package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"golang.org/x/mod/sumdb/note"
)

// Signer signs checkpoints. It is a C2SP signed-note signer whose verifier
// key is known, so the ledger can verify its own checkpoints and publish
// the key.
type Signer interface {
	note.Signer
	// VerifierKey returns the note verifier key, <name>+<hex8>+<base64>.
	VerifierKey() string
}

// NoteSigner adapts a sigstore signature.Signer holding an Ed25519 key to a
// C2SP signed-note signer (signature type 0x01). Whatever backs the sigstore
// signer (a key file, a KMS) signs the checkpoints. It is safe for
// concurrent use if the underlying signer is.
type NoteSigner struct {
	name string
	hash uint32
	vkey string
	s    signature.Signer
}

// NewNoteSigner returns a note signer named name (the log's origin) that
// signs with s, whose public key must be Ed25519.
func NewNoteSigner(name string, s signature.Signer) (*NoteSigner, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint signing key must be Ed25519, got %T", pub)
	}
	vkey, err := note.NewEd25519VerifierKey(name, edPub)
	if err != nil {
		return nil, fmt.Errorf("making verifier key for %q: %w", name, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing verifier key: %w", err)
	}
	return &NoteSigner{name: name, hash: v.KeyHash(), vkey: vkey, s: s}, nil
}

// Name returns the key name, which is the log's origin.
func (n *NoteSigner) Name() string { return n.name }

// KeyHash returns the C2SP signed-note key ID.
func (n *NoteSigner) KeyHash() uint32 { return n.hash }

// VerifierKey returns the note verifier key string.
func (n *NoteSigner) VerifierKey() string { return n.vkey }

// Sign signs msg with the underlying sigstore signer.
func (n *NoteSigner) Sign(msg []byte) ([]byte, error) {
	return n.s.SignMessage(bytes.NewReader(msg))
}

// SignContext signs msg with the underlying sigstore signer, which gets
// ctx (KMS signers stop waiting when it ends).
func (n *NoteSigner) SignContext(ctx context.Context, msg []byte) ([]byte, error) {
	return n.s.SignMessage(bytes.NewReader(msg), options.WithContext(ctx))
}

// CheckOrigin reports whether name can be a log origin and key name: a
// C2SP signed-note key name (non-empty, no spaces or '+').
func CheckOrigin(name string) error {
	vkey, err := note.NewEd25519VerifierKey(name, make(ed25519.PublicKey, ed25519.PublicKeySize))
	if err == nil {
		_, err = note.NewVerifier(vkey)
	}
	if err != nil {
		return fmt.Errorf("origin %q is not a valid key name (non-empty, no spaces, no '+'): %w", name, err)
	}
	return nil
}

// GenerateKeyFile writes a new Ed25519 private key to path as PKCS#8 PEM
// with mode 0600, creating its directory (0700) if needed, and the public
// key next to it as path+".pub". It refuses to overwrite an existing key.
// The key appears at path complete or not at all, even across a crash;
// if the public key cannot be written, the key is removed again, so that
// a rerun is not refused for a key nobody has.
func GenerateKeyFile(path string) (signature.SignerVerifier, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("creating key file: %s: %w", path, os.ErrExist)
	}
	sv, priv, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	privPEM, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	if err := writeFileAtomic(path, privPEM, 0o600, false); err != nil {
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := writeFileAtomic(path+".pub", pubPEM, 0o644, true); err != nil {
		if rerr := os.Remove(path); rerr != nil {
			return nil, fmt.Errorf("writing public key: %w (and removing the key %s: %v)", err, path, rerr)
		}
		return nil, fmt.Errorf("writing public key: %w", err)
	}
	return sv, nil
}

// writeFileAtomic writes data to a temporary file, syncs it, and links it
// into place (renames, if replace is set), then syncs the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode, replace bool) error {
	return writeFileAtomicFunc(path, mode, replace, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func writeFileAtomicFunc(path string, mode os.FileMode, replace bool, fill func(io.Writer) error) error {
	return writeFileAtomicOwned(path, mode, replace, -1, -1, fill)
}

// writeFileAtomicOwned is writeFileAtomicFunc giving the temporary file
// the owner uid and group gid (as os.Chown: -1 keeps the creator's)
// before it takes the place of path.
func writeFileAtomicOwned(path string, mode os.FileMode, replace bool, uid, gid int, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if uid != -1 || gid != -1 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir syncs a directory, so that the names created, renamed or
// removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileAtomic writes data to path (replacing it) so that a crash
// leaves either the old or the new content, never a torn file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(path, data, mode, true)
}

// WriteFileAtomicOwned is WriteFileAtomic for a file shared with another
// user: the new file gets the owner uid and group gid (as os.Chown: -1
// keeps the creator's) before it replaces the old one, so that whoever
// read the old file can read the new. Only root can give a file away.
func WriteFileAtomicOwned(path string, data []byte, mode os.FileMode, uid, gid int) error {
	return writeFileAtomicOwned(path, mode, true, uid, gid, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAtomicFunc is WriteFileAtomic for content that fill writes, too
// large to build in memory first.
func WriteFileAtomicFunc(path string, mode os.FileMode, fill func(io.Writer) error) error {
	return writeFileAtomicFunc(path, mode, true, fill)
}

// ErrKeyPermissions reports a private key file readable by others.
var ErrKeyPermissions = errors.New("private key file must not be accessible by group or others (chmod 600)")

// LoadKeyFile loads an Ed25519 private key written by GenerateKeyFile (any
// unencrypted PKCS#8 PEM Ed25519 key). It refuses a file that group or
// others can access.
func LoadKeyFile(path string) (signature.SignerVerifier, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: %w", path, fi.Mode().Perm(), ErrKeyPermissions)
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.SkipPassword)
	if err != nil {
		return nil, fmt.Errorf("parsing key file %s: %w", path, err)
	}
	edPriv, ok := priv.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: want an Ed25519 key, got %T", path, priv)
	}
	return signature.LoadED25519SignerVerifier(edPriv)
}
