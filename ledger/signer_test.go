package ledger

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"
)

func TestGenerateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "log.key")
	sv, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatalf("GenerateKeyFile(%s) = %v", path, err)
	}
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{dir, 0o700 | fs.ModeDir}, {path, 0o600}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != f.mode {
			t.Errorf("mode of %s = %v, want %v", f.path, fi.Mode(), f.mode)
		}
	}
	pubPEM, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatalf("reading public key: %v", err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		t.Fatalf("UnmarshalPEMToPublicKey(%s.pub) = %v", path, err)
	}
	want, err := sv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pub.(ed25519.PublicKey); !ok || !want.(ed25519.PublicKey).Equal(pub) {
		t.Errorf("public key file holds %T %x, want the generated Ed25519 key %x", pub, pub, want)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKeyFile(existing) = %v, want fs.ErrExist", err)
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("GenerateKeyFile(existing) changed the key file")
	}
}

func TestLoadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.key")
	sv, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatalf("GenerateKeyFile(%s) = %v", path, err)
	}
	want, _ := sv.PublicKey()
	tests := []struct {
		mode fs.FileMode
		err  error
	}{
		{0o600, nil},
		{0o400, nil},
		{0o644, ErrKeyPermissions},
		{0o640, ErrKeyPermissions},
		{0o604, ErrKeyPermissions},
		{0o610, ErrKeyPermissions},
		{0o601, ErrKeyPermissions},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadKeyFile(path)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("LoadKeyFile(mode %v) = %v, want %v", tc.mode, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKeyFile(mode %v) = %v", tc.mode, err)
			}
			got, err := loaded.PublicKey()
			if err != nil || !want.(ed25519.PublicKey).Equal(got) {
				t.Errorf("LoadKeyFile(mode %v) public key = %x, %v; want %x", tc.mode, got, err, want)
			}
		})
	}

	t.Run("Missing", func(t *testing.T) {
		if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "none.key")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadKeyFile(missing) = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("NotPEM", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "junk.key")
		if err := os.WriteFile(p, []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(p); err == nil {
			t.Errorf("LoadKeyFile(junk) = nil error, want failure")
		}
	})
	t.Run("ECDSA", func(t *testing.T) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "ecdsa.key")
		if err := os.WriteFile(p, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(p); err == nil {
			t.Errorf("LoadKeyFile(ECDSA key) = nil error, want failure")
		}
	})
}

func TestNewNoteSignerRejectsNonEd25519(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := NewNoteSigner(testOrigin, sv); err == nil {
		t.Errorf("NewNoteSigner(ECDSA) = %v, nil; want an error", s)
	}
}

func TestNoteSignerSignsVerifiableNotes(t *testing.T) {
	sv, priv, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewNoteSigner(testOrigin, sv)
	if err != nil {
		t.Fatalf("NewNoteSigner() = %v", err)
	}
	// The verifier key is the one x/mod derives from the raw key.
	wantKey, err := note.NewEd25519VerifierKey(testOrigin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != wantKey {
		t.Errorf("VerifierKey() = %q, want %q", s.VerifierKey(), wantKey)
	}
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", s.VerifierKey(), err)
	}
	if s.Name() != testOrigin || s.KeyHash() != v.KeyHash() {
		t.Errorf("Name(), KeyHash() = %q, %08x; want %q, %08x", s.Name(), s.KeyHash(), testOrigin, v.KeyHash())
	}

	text := testOrigin + "\n42\n" + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatalf("note.Sign() = %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(signed note) = %v", err)
	}
	if n.Text != text {
		t.Errorf("note.Open().Text = %q, want %q", n.Text, text)
	}
	// The signature is plain Ed25519 over the note text.
	raw, err := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if err != nil || len(raw) != 4+ed25519.SignatureSize {
		t.Fatalf("signature %q: %v, %d bytes, want 4+%d", n.Sigs[0].Base64, err, len(raw), ed25519.SignatureSize)
	}
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte(text), raw[4:]) {
		t.Errorf("signature does not verify as Ed25519 over the note text")
	}
	forged := bytes.Replace(msg, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := note.Open(forged, note.VerifierList(v)); err == nil {
		t.Errorf("note.Open(edited note) = nil error, want failure")
	}
}
func TestGenerateKeyFileIsUsableAsLedgerSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "log.key")
	sv, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatalf("GenerateKeyFile(%s) = %v", path, err)
	}
	s, err := NewNoteSigner(testOrigin, sv)
	if err != nil {
		t.Fatalf("NewNoteSigner() = %v", err)
	}
	cfg := testConfig(t)
	cfg.Signer = s
	l, err := Create(bg, cfg)
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	appendN(t, l, 0, 2, 2)
	closeLedger(t, l)
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatalf("LoadKeyFile(%s) = %v", path, err)
	}
	if cfg.Signer, err = NewNoteSigner(testOrigin, loaded); err != nil {
		t.Fatal(err)
	}
	l = openTestLedger(t, cfg)
	if l.Latest().Size != 2 {
		t.Errorf("Latest().Size = %d, want 2", l.Latest().Size)
	}
	if _, err := os.Stat(path + ".pub"); err != nil {
		t.Errorf("public key file: %v", err)
	}
}

// TestGenerateKeyFileLeavesNoKeyWithoutItsPub: a public key that cannot
// be written (here a directory has its name) leaves no private key behind,
// which a rerun would refuse to overwrite.
func TestGenerateKeyFileLeavesNoKeyWithoutItsPub(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.key")
	if err := os.MkdirAll(filepath.Join(path+".pub", "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyFile(path); err == nil {
		t.Fatalf("GenerateKeyFile(%s) with %s.pub a directory = nil error", path, path)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("GenerateKeyFile failed on its public key and left %s (Lstat: %v)", path, err)
	}
}
