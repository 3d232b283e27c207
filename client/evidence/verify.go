package evidence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Errors Verify wraps; callers branch on them with errors.Is.
var (
	// ErrMalformed means the file is not a bundle in its one encoding.
	ErrMalformed = errors.New("not a well-formed evidence bundle")
	// ErrWrongKey means the bundle is for another log key than the one
	// given.
	ErrWrongKey = errors.New("the bundle is not for the given log key")
	// ErrCheckpoint means the checkpoint's signatures do not verify.
	ErrCheckpoint = errors.New("the checkpoint does not verify")
	// ErrInclusion means an entry is not proven to be in the log.
	ErrInclusion = errors.New("the entry is not proven to be in the log")
	// ErrDigest means the closing digest does not match the file: it was
	// altered or corrupted.
	ErrDigest = errors.New("the file's digest does not match: it was altered or corrupted")
	// ErrQuorum means the checkpoint, checked against the witnesses the
	// caller trusts (VerifyOptions.Witnesses), does not meet their quorum,
	// or carries a cosignature line in a trusted witness's name and key ID
	// that its key does not verify. The error is a *QuorumError.
	ErrQuorum = errors.New("the checkpoint does not meet the witness quorum")
)

// VerifyOptions are VerifyWith's options. The zero value verifies as
// Verify does.
type VerifyOptions struct {
	// Witnesses, if not nil, are the witnesses the caller trusts, with
	// keys it obtained itself, and the quorum of them that must have
	// cosigned the bundle's checkpoint. Cosignatures are then checked
	// against these keys, never the bundle's own witness_keys (which are
	// still checked as the bundle's encoding requires, but trusted for
	// nothing), and the quorum must be met: else VerifyWith fails with a
	// *QuorumError.
	//
	// If nil, the witnesses are the bundle's own: Verify checks that each
	// key the bundle lists cosigned, and reports them in
	// Summary.Cosigners, but they are not authenticated. Anyone, the
	// log's operator included, can make a key with a witness's name, and
	// with little work its 32-bit key ID too.
	Witnesses *WitnessPolicy
}

// WitnessPolicy is the witnesses a verifier trusts and the quorum of them
// that a checkpoint needs: a C2SP tlog-policy's witness lines and quorum.
// From a *witness.Policy p (package
// github.com/accessledger/accessledger/witness, which parses tlog-policy
// files) it is one TrustedWitness{Name: w.Name, VKey: w.VKey} for each
// of p.Witnesses, in order, with Quorum p.Satisfied. (This package does
// not import that one, to stay free of the server's dependencies.)
type WitnessPolicy struct {
	// Witnesses are the trusted witnesses.
	Witnesses []TrustedWitness
	// Quorum reports whether the witnesses for which cosigned(i) is true
	// (i indexes Witnesses) are enough. Nil means all of Witnesses.
	Quorum func(cosigned func(i int) bool) bool
}

// TrustedWitness is a witness whose key the caller trusts.
type TrustedWitness struct {
	// Name is what messages call the witness (a policy's name for it,
	// which need not be its key's name).
	Name string
	// VKey is its cosignature verifier key (cosignature/v1, type 0x04,
	// or ML-DSA-44, type 0x06), as obtained from the witness, not from
	// a bundle.
	VKey string
}

// QuorumError is the error VerifyWith returns when the checkpoint does not
// meet the quorum of VerifyOptions.Witnesses. It wraps ErrQuorum.
type QuorumError struct {
	// Cosigned are the trusted witnesses whose cosignatures verified.
	Cosigned []TrustedWitness
	// Missing are the trusted witnesses that did not cosign.
	Missing []TrustedWitness
	// Invalid are the trusted witnesses whose name and key ID a
	// cosignature line bears that their key does not verify: another
	// key made to collide with theirs.
	Invalid []TrustedWitness
	// Untrusted are the verifier keys, as the bundle lists them, of the
	// cosignatures by keys that are not trusted.
	Untrusted []string
}

func (e *QuorumError) Error() string {
	var b strings.Builder
	b.WriteString(ErrQuorum.Error())
	names := func(ws []TrustedWitness) string {
		var s []string
		for _, w := range ws {
			s = append(s, fmt.Sprintf("%s (%s)", w.Name, w.VKey))
		}
		return strings.Join(s, ", ")
	}
	if len(e.Invalid) > 0 {
		fmt.Fprintf(&b, ": a cosignature bears the name and key ID of %s but does not verify with its key", names(e.Invalid))
	} else {
		fmt.Fprintf(&b, ": %d trusted witness(es) cosigned", len(e.Cosigned))
		if len(e.Cosigned) > 0 {
			b.WriteString(" (")
			for i, w := range e.Cosigned {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(w.Name)
			}
			b.WriteString(")")
		}
		b.WriteString(", which is not enough")
	}
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "; no valid cosignature from %s", names(e.Missing))
	}
	if len(e.Untrusted) > 0 {
		fmt.Fprintf(&b, "; cosigned by keys not trusted, whatever their names: %s", strings.Join(e.Untrusted, ", "))
	}
	return b.String()
}

func (e *QuorumError) Unwrap() error { return ErrQuorum }

// EntryError reports the first entry of a bundle that fails.
type EntryError struct {
	// Position is the entry's place in the bundle, from 0.
	Position uint64
	// Index is the log index the entry claims, if HasIndex. An entry
	// line that cannot be read claims none (HasIndex false, Index 0).
	Index    uint64
	HasIndex bool
	Err      error
}

func (e *EntryError) Error() string {
	if !e.HasIndex {
		return fmt.Sprintf("entry %d of the bundle (log index unknown): %v", e.Position, e.Err)
	}
	return fmt.Sprintf("entry %d of the bundle (log index %d): %v", e.Position, e.Index, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Summary is what Verify proved, and what the bundle says of itself.
type Summary struct {
	Origin string
	// Size and RootHash are the checkpoint's.
	Size     uint64
	RootHash []byte
	// Witnesses names the witnesses whose cosignatures verified, as
	// name+keyhash (the start of their verifier keys). Their keys are the
	// bundle's own: compare them with the witnesses' published keys.
	Witnesses []string
	// Cosigners are the same witnesses with their full verifier keys,
	// in the bundle's order.
	Cosigners []Cosigner
	// WitnessesTrusted reports whether the cosignatures were checked
	// against VerifyOptions.Witnesses and met its quorum. If false, the
	// witnesses are not authenticated: their keys are the bundle's own.
	WitnessesTrusted bool
	// Entries counts the entries, each proven in the tree of Size.
	Entries uint64
	// Query, IndexedSize and Created are what the bundle says of how it
	// was made; they are not signed.
	Query       string
	IndexedSize uint64
	Created     time.Time

	last uint64 // the index of the last entry checked
}

// Cosigner is a witness whose cosignature on the checkpoint verified.
type Cosigner struct {
	// VKey is its verifier key as the bundle lists it.
	VKey string
	// Trusted is the name of the trusted witness (of
	// VerifyOptions.Witnesses) whose key this is, empty if none.
	Trusted string
}

// Verify checks a bundle offline against the log's verifier key vkey: the
// bundle must be for that key, its checkpoint must carry a valid signature
// by it and a valid cosignature by every witness key it lists (and no
// other signature), every entry must be proven at its index in that
// checkpoint's tree, and the file must be exactly in the bundle encoding
// with its digest intact. It stops at the first failure: an *EntryError
// for an entry, else an error wrapping one of the errors above.
//
// The witness keys are the bundle's own, so the witnesses are not
// authenticated: use VerifyWith and VerifyOptions.Witnesses to check the
// cosignatures against keys you trust.
func Verify(r io.Reader, vkey string) (*Summary, error) {
	return VerifyWith(r, vkey, VerifyOptions{})
}

// VerifyWith is Verify with options. With opts.Witnesses, the checkpoint
// must also meet that quorum of trusted witnesses; else it fails with a
// *QuorumError (wrapping ErrQuorum), or another error if a trusted key is
// not a cosignature verifier key.
func VerifyWith(r io.Reader, vkey string, opts VerifyOptions) (*Summary, error) {
	v := verifier{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New(), opts: opts}
	return v.run(strings.TrimSpace(vkey))
}

type verifier struct {
	r    *bufio.Reader
	h    hash.Hash
	line int
	opts VerifyOptions
}

func (v *verifier) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrMalformed, v.line, fmt.Sprintf(format, args...))
}

// next returns the next line without its newline; it is hashed unless
// it is the digest line.
func (v *verifier) next(hashIt bool) ([]byte, error) {
	// A line is at most an entry of 64 KiB in base64 with its proof and
	// framing, or the header's checkpoint with its cosignatures: a longer
	// one is not a bundle, and is not read into memory whole.
	var l []byte
	var err error
	for {
		var frag []byte
		frag, err = v.r.ReadSlice('\n')
		l = append(l, frag...)
		if len(l) > maxLine {
			v.line++
			return nil, v.malformed("a line longer than %d bytes", maxLine)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	v.line++
	if err == io.EOF {
		return nil, v.malformed("the file ends early")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the bundle: %w", err)
	}
	if hashIt {
		v.h.Write(l)
	}
	return l[:len(l)-1], nil
}

// maxLine bounds a line of a bundle.
const maxLine = 1 << 20

// member reads a line `"name":VALUE,` and returns VALUE.
func (v *verifier) member(name string) ([]byte, error) {
	l, err := v.next(true)
	if err != nil {
		return nil, err
	}
	val, ok := bytes.CutPrefix(l, []byte(`"`+name+`":`))
	if !ok || !bytes.HasSuffix(val, []byte(",")) {
		return nil, v.malformed("want the member %q", name)
	}
	return val[:len(val)-1], nil
}

func (v *verifier) stringMember(name string) (string, error) {
	raw, err := v.member(name)
	if err != nil {
		return "", err
	}
	s, err := unquote(raw)
	if err != nil {
		return "", v.malformed("%s: %v", name, err)
	}
	return s, nil
}

func (v *verifier) uintMember(name string) (uint64, error) {
	raw, err := v.member(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != string(raw) {
		return 0, v.malformed("%s is not a decimal without leading zeroes", name)
	}
	return n, nil
}

func (v *verifier) run(vkey string) (*Summary, error) {
	first, err := v.next(true)
	if err != nil {
		return nil, err
	}
	if string(first) != `{"format":`+quote(Format)+"," {
		return nil, v.malformed("this is not an %s bundle", Format)
	}
	var h Header
	if h.Origin, err = v.stringMember("origin"); err != nil {
		return nil, err
	}
	if h.VerifierKey, err = v.stringMember("verifier_key"); err != nil {
		return nil, err
	}
	if h.VerifierKey != vkey {
		return nil, fmt.Errorf("%w: it is for %s, not %s", ErrWrongKey, h.VerifierKey, vkey)
	}
	raw, err := v.member("witness_keys")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &h.WitnessKeys); err != nil || string(headerWitnesses(h.WitnessKeys)) != string(raw) {
		return nil, v.malformed("witness_keys is not a list of strings in the bundle's encoding")
	}
	cp, err := v.stringMember("checkpoint")
	if err != nil {
		return nil, err
	}
	h.Checkpoint = []byte(cp)
	if h.Query, err = v.stringMember("query"); err != nil {
		return nil, err
	}
	if h.IndexedSize, err = v.uintMember("indexed_size"); err != nil {
		return nil, err
	}
	created, err := v.stringMember("created")
	if err != nil {
		return nil, err
	}
	if h.Created, err = time.Parse(time.RFC3339, created); err != nil || h.Created.UTC().Format(time.RFC3339) != created {
		return nil, v.malformed("created is not an RFC 3339 UTC time to the second")
	}
	if l, err := v.next(true); err != nil {
		return nil, err
	} else if string(l) != `"entries":[` {
		return nil, v.malformed(`want "entries":[`)
	}

	sum, err := checkCheckpoint(h)
	if err != nil {
		return nil, err
	}
	if v.opts.Witnesses != nil {
		if err := checkQuorum(h.Checkpoint, v.opts.Witnesses, sum); err != nil {
			return nil, err
		}
	}
	sum.Query, sum.IndexedSize, sum.Created = h.Query, h.IndexedSize, h.Created

	var buf []byte
	for more := true; ; {
		l, err := v.next(true)
		if err != nil {
			return nil, err
		}
		if string(l) == "]," {
			if more && sum.Entries > 0 {
				return nil, v.malformed("a comma after the last entry")
			}
			break
		}
		if !more {
			return nil, v.malformed("no comma between entries %d and %d", sum.Entries-1, sum.Entries)
		}
		l, more = bytes.CutSuffix(l, []byte(","))
		if buf, err = checkEntry(l, h, sum, buf); err != nil {
			var ee *EntryError
			if errors.As(err, &ee) {
				ee.Position = sum.Entries
			}
			return nil, err
		}
		sum.Entries++
	}
	count, err := v.uintMember("count")
	if err != nil {
		return nil, err
	}
	if count != sum.Entries {
		return nil, v.malformed("count says %d entries, the bundle holds %d", count, sum.Entries)
	}
	digest := hex.EncodeToString(v.h.Sum(nil))
	last, err := v.next(false)
	if err != nil {
		return nil, err
	}
	if string(last) != `"sha256":"`+digest+`"}` {
		return nil, fmt.Errorf("%w (line %d)", ErrDigest, v.line)
	}
	if _, err := v.r.ReadByte(); err != io.EOF {
		return nil, v.malformed("data after the end of the bundle")
	}
	return sum, nil
}

func headerWitnesses(keys []string) []byte {
	b := []byte{'['}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, k)
	}
	return append(b, ']')
}

// checkCheckpoint verifies the checkpoint: the log's signature, one valid
// cosignature by each listed witness, and no other signature line.
func checkCheckpoint(h Header) (*Summary, error) {
	logV, err := note.NewVerifier(h.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("%w: the log key %q: %v", ErrWrongKey, h.VerifierKey, err)
	}
	if logV.Name() != h.Origin {
		return nil, fmt.Errorf("%w: origin %q is not the name of the log key %q", ErrMalformed, h.Origin, logV.Name())
	}
	vs := []note.Verifier{logV}
	for _, k := range h.WitnessKeys {
		wv, err := witnessVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("%w: witness key %q: %v", ErrMalformed, k, err)
		}
		vs = append(vs, wv)
	}
	n, err := note.Open(h.Checkpoint, note.VerifierList(vs...))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if len(n.UnverifiedSigs) > 0 {
		return nil, fmt.Errorf("%w: it carries a signature by %q, whose key the bundle does not list", ErrCheckpoint, n.UnverifiedSigs[0].Name)
	}
	// note.Open skips a key's later lines unchecked: a second line by the
	// log's key, valid or not, changed the bundle and it still verified.
	if lines := bytes.Count(h.Checkpoint[min(len(n.Text)+1, len(h.Checkpoint)):], []byte("\n")); lines != len(n.Sigs) {
		return nil, fmt.Errorf("%w: it carries %d signature lines for %d keys: one key signed twice", ErrCheckpoint, lines, len(n.Sigs))
	}
	signed := func(v note.Verifier) bool {
		for _, s := range n.Sigs {
			if s.Name == v.Name() && s.Hash == v.KeyHash() {
				return true
			}
		}
		return false
	}
	sum := &Summary{Origin: h.Origin}
	for i, v := range vs {
		if !signed(v) {
			if i == 0 {
				return nil, fmt.Errorf("%w: it is not signed by the log key", ErrCheckpoint)
			}
			return nil, fmt.Errorf("%w: the bundle lists witness %q, which did not cosign it", ErrCheckpoint, v.Name())
		}
		if i > 0 {
			// Name and key hash: a name alone is anyone's to take. And
			// the whole key: a key hash is only 32 bits, and not much
			// harder to take.
			sum.Witnesses = append(sum.Witnesses, fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()))
			sum.Cosigners = append(sum.Cosigners, Cosigner{VKey: h.WitnessKeys[i-1]})
		}
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if c.Origin != h.Origin {
		return nil, fmt.Errorf("%w: its origin %q is not the log's %q", ErrCheckpoint, c.Origin, h.Origin)
	}
	sum.Size, sum.RootHash = c.Size, c.Hash
	return sum, nil
}

// checkQuorum checks the checkpoint cp against the trusted witnesses of
// p, each key on its own: a witness cosigned if a line in its name and
// key ID verifies with its key. A line in its name and key ID that does
// not verify fails, as signed-note asks, whatever the quorum. It marks the
// trusted cosigners in sum.
func checkQuorum(cp []byte, p *WitnessPolicy, sum *Summary) error {
	qe := &QuorumError{}
	cosigned := make([]bool, len(p.Witnesses))
	for i, w := range p.Witnesses {
		v, err := witnessVerifier(w.VKey)
		if err != nil {
			return fmt.Errorf("trusted witness %s: key %q: %v", w.Name, w.VKey, err)
		}
		_, err = note.Open(cp, note.VerifierList(v))
		var unverified *note.UnverifiedNoteError
		switch {
		case err == nil:
			cosigned[i] = true
			qe.Cosigned = append(qe.Cosigned, w)
			// The bundle lists every key that signed (checkCheckpoint):
			// the line this key verified is one of theirs.
			for k := range sum.Cosigners {
				if bv, err := witnessVerifier(sum.Cosigners[k].VKey); err == nil && bv.Name() == v.Name() && bv.KeyHash() == v.KeyHash() {
					sum.Cosigners[k].Trusted = w.Name
				}
			}
		case errors.As(err, &unverified):
			qe.Missing = append(qe.Missing, w)
		default:
			qe.Invalid = append(qe.Invalid, w)
		}
	}
	quorum := p.Quorum
	if quorum == nil {
		quorum = func(c func(int) bool) bool {
			for i := range p.Witnesses {
				if !c(i) {
					return false
				}
			}
			return true
		}
	}
	met := quorum(func(i int) bool { return i >= 0 && i < len(cosigned) && cosigned[i] })
	if !met || len(qe.Invalid) > 0 {
		for _, c := range sum.Cosigners {
			if c.Trusted == "" {
				qe.Untrusted = append(qe.Untrusted, c.VKey)
			}
		}
		return qe
	}
	sum.WitnessesTrusted = true
	return nil
}

// witnessVerifier parses a cosignature/v1 verifier key (type 0x04 or
// 0x06), requiring the key ID it states to be the key's and its base64 to
// be canonical.
func witnessVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("not <name>+<key ID>+<key>")
	}
	key, err := decodeCanonical([]byte(parts[2]))
	if err != nil || len(key) < 1 || (key[0] != 0x04 && key[0] != 0x06) {
		return nil, errors.New("not a cosignature/v1 key (type 0x04 or 0x06) in canonical base64")
	}
	v, err := fnote.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if id := fmt.Sprintf("%08x", v.KeyHash()); id != parts[1] {
		return nil, fmt.Errorf("key ID %s is not the key's (%s)", parts[1], id)
	}
	return v, nil
}

// entryLine is an entry line as decoded.
type entryLine struct {
	Index       *uint64         `json:"index"`
	LeafHash    string          `json:"leaf_hash"`
	Entry       json.RawMessage `json:"entry"`
	EntryBase64 *string         `json:"entry_base64"`
	TLogProof   string          `json:"tlog_proof"`
}

// checkEntry verifies one entry line against the checkpoint; buf is
// scratch space, returned for reuse.
func checkEntry(line []byte, h Header, sum *Summary, buf []byte) ([]byte, error) {
	var e entryLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Index == nil || dec.More() {
		return buf, &EntryError{Err: fmt.Errorf("%w: not an entry object", ErrMalformed)}
	}
	fail := func(err error) ([]byte, error) { return buf, &EntryError{Index: *e.Index, HasIndex: true, Err: err} }
	// One encoding for given contents: entries in increasing index
	// order, each once. An entry repeated would inflate what the bundle
	// seems to prove (twice the evidence of an incident).
	if sum.Entries > 0 && *e.Index <= sum.last {
		return fail(fmt.Errorf("%w: entries must be in increasing index order, each once: %d after %d", ErrMalformed, *e.Index, sum.last))
	}
	entry := []byte(e.Entry)
	switch {
	case e.Entry != nil && e.EntryBase64 == nil:
	case e.Entry == nil && e.EntryBase64 != nil:
		b, err := decodeCanonical([]byte(*e.EntryBase64))
		if err != nil {
			return fail(fmt.Errorf("%w: entry_base64 is not canonical base64", ErrMalformed))
		}
		entry = b
	default:
		return fail(fmt.Errorf("%w: want one of entry and entry_base64", ErrMalformed))
	}
	leaf := leafHash(entry)
	if e.LeafHash != base64.StdEncoding.EncodeToString(leaf[:]) {
		return fail(fmt.Errorf("%w: leaf_hash is not the hash of the entry", ErrInclusion))
	}
	p, err := ParseProof([]byte(e.TLogProof))
	if err != nil {
		return fail(err)
	}
	switch {
	case p.Index != *e.Index:
		return fail(fmt.Errorf("%w: its tlog-proof is for index %d", ErrInclusion, p.Index))
	case !bytes.Equal(p.Checkpoint, h.Checkpoint):
		return fail(fmt.Errorf("%w: its tlog-proof is against another checkpoint than the bundle's", ErrInclusion))
	case p.Extra != nil:
		return fail(fmt.Errorf("%w: its tlog-proof carries extra data", ErrMalformed))
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, sum.Size, leaf[:], p.Hashes, sum.RootHash); err != nil {
		return fail(fmt.Errorf("%w: the inclusion proof does not verify against the checkpoint of size %d: %v", ErrInclusion, sum.Size, ProofError(err)))
	}
	sum.last = p.Index
	buf = appendEntry(buf[:0], p.Index, entry, []byte(e.TLogProof))
	if !bytes.Equal(buf, line) {
		return fail(fmt.Errorf("%w: the entry line is not in the bundle's encoding", ErrMalformed))
	}
	return buf, nil
}
