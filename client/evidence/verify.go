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
)

// EntryError reports the first entry of a bundle that fails.
type EntryError struct {
	// Position is the entry's place in the bundle, from 0.
	Position uint64
	// Index is the log index the entry claims (0 if unreadable).
	Index uint64
	Err   error
}

func (e *EntryError) Error() string {
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
	// Entries counts the entries, each proven in the tree of Size.
	Entries uint64
	// Query, IndexedSize and Created are what the bundle says of how it
	// was made; they are not signed.
	Query       string
	IndexedSize uint64
	Created     time.Time

	last uint64 // the index of the last entry checked
}

// Verify checks a bundle offline against the log's verifier key vkey: the
// bundle must be for that key, its checkpoint must carry a valid signature
// by it and a valid cosignature by every witness key it lists (and no
// other signature), every entry must be proven at its index in that
// checkpoint's tree, and the file must be exactly in the bundle encoding
// with its digest intact. It stops at the first failure: an *EntryError
// for an entry, else an error wrapping one of the errors above.
func Verify(r io.Reader, vkey string) (*Summary, error) {
	v := verifier{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
	return v.run(strings.TrimSpace(vkey))
}

type verifier struct {
	r    *bufio.Reader
	h    hash.Hash
	line int
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
			// Name and key hash: a name alone is anyone's to take.
			sum.Witnesses = append(sum.Witnesses, fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()))
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
	fail := func(err error) ([]byte, error) { return buf, &EntryError{Index: *e.Index, Err: err} }
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
