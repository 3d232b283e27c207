package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"golang.org/x/mod/sumdb/note"
)

// Cosigner makes C2SP tlog-cosignature cosignature/v1 signatures: Ed25519
// (signature type 0x04) over "cosignature/v1\ntime <T>\n" followed by the
// checkpoint's note text, encoded as the 8-byte big-endian timestamp T
// followed by the signature. It is a note.Signer, so note.Sign adds its
// line to a checkpoint.
//
// The Ed25519 key is held by a sigstore signature.Signer (a key file, or
// any backend sigstore reaches), which signs the message bytes as given:
// Ed25519 needs no prehash, so sigstore expresses cosignature/v1 exactly.
// A Cosigner is safe for concurrent use if its signer is.
type Cosigner struct {
	name  string
	hash  uint32
	vkey  string
	s     signature.Signer
	clock func() time.Time
}

// NewCosigner returns a cosigner named name (the witness's key name, a
// schema-less URL such as witness.example.com/w1) that signs with s, whose
// public key must be Ed25519. clock gives the cosignature timestamps; nil
// means time.Now.
func NewCosigner(name string, s signature.Signer, clock func() time.Time) (*Cosigner, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("witness key must be Ed25519, got %T", pub)
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	key := append([]byte{sigTypeCosignature}, edPub...)
	hash := keyID(name, key)
	vkey := fmt.Sprintf("%s+%08x+%s", name, hash, base64.StdEncoding.EncodeToString(key))
	return &Cosigner{name: name, hash: hash, vkey: vkey, s: s, clock: clock}, nil
}

// CheckName reports whether name can be a signed-note key name: non-empty,
// with no spaces, '+' or control characters.
func CheckName(name string) error {
	vkey, err := note.NewEd25519VerifierKey(name, make(ed25519.PublicKey, ed25519.PublicKeySize))
	if err == nil {
		_, err = note.NewVerifier(vkey)
	}
	if err != nil {
		return fmt.Errorf("%q is not a valid key name (non-empty, no spaces, no '+')", name)
	}
	return nil
}

// Name returns the cosigner's key name.
func (c *Cosigner) Name() string { return c.name }

// KeyHash returns the key ID: SHA-256(name || "\n" || 0x04 || key)[:4].
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// VerifierKey returns the cosigner's verifier key, <name>+<hex8>+<base64(0x04
// || public key)>, as witness lines of tlog-policy files carry it.
func (c *Cosigner) VerifierKey() string { return c.vkey }

// Sign cosigns a checkpoint note text (note.Sign passes the text).
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	return c.SignContext(context.Background(), msg)
}

// SignContext cosigns msg, passing ctx to the sigstore signer.
func (c *Cosigner) SignContext(ctx context.Context, msg []byte) ([]byte, error) {
	t := c.clock().Unix()
	if t <= 0 {
		return nil, fmt.Errorf("cosignature timestamp %d: the clock must be after 1970 (the timestamp must not be zero)", t)
	}
	m, err := cosignedMessage(uint64(t), msg)
	if err != nil {
		return nil, err
	}
	sig, err := c.s.SignMessage(bytes.NewReader(m), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("cosigning: signer returned %d bytes, want an Ed25519 signature", len(sig))
	}
	out := make([]byte, 0, 8+ed25519.SignatureSize)
	out = binary.BigEndian.AppendUint64(out, uint64(t))
	return append(out, sig...), nil
}

// cosignedMessage is the cosignature/v1 signed message: the header line,
// the time line and the note text (which ends in a newline).
func cosignedMessage(t uint64, text []byte) ([]byte, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' || bytes.Count(text, []byte("\n")) < 3 {
		return nil, errors.New("cosigning: the note text is not a checkpoint (three lines or more, ending in a newline)")
	}
	m := make([]byte, 0, 32+len(text))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	return append(m, text...), nil
}

// CosignatureTime returns the timestamp of a cosignature/v1 signature line
// (its base64 part), or an error if it is not one.
func CosignatureTime(sigBase64 string) (time.Time, error) {
	raw, err := base64.StdEncoding.DecodeString(sigBase64)
	if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
		return time.Time{}, errors.New("not a cosignature/v1 signature")
	}
	return time.Unix(int64(binary.BigEndian.Uint64(raw[4:])), 0), nil
}
