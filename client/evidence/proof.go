package evidence

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/transparency-dev/merkle/proof"
)

// proofHeader is the first line of a C2SP tlog-proof.
const proofHeader = "c2sp.org/tlog-proof@v1"

// FormatProof returns the C2SP tlog-proof (c2sp.org/tlog-proof@v1) of the
// entry at index: the header line, the index line, the RFC 6962 inclusion
// proof (one base64 hash a line, from the leaf's sibling up), an empty
// line and the signed checkpoint verbatim. It carries no extra data.
func FormatProof(index uint64, hashes [][]byte, checkpoint []byte) []byte {
	b := make([]byte, 0, 64+45*len(hashes)+len(checkpoint))
	b = append(b, proofHeader+"\nindex "...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, '\n')
	for _, h := range hashes {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, checkpoint...)
}

// Proof is a parsed tlog-proof.
type Proof struct {
	// Extra is the opaque, unauthenticated extra data, nil if absent.
	Extra      []byte
	Index      uint64
	Hashes     [][]byte
	Checkpoint []byte // the signed checkpoint, verbatim
}

// ErrMalformedProof means a tlog-proof does not follow the spec (or is not
// in the one encoding the spec allows: no leading zeroes, canonical
// base64, 32-byte hashes).
var ErrMalformedProof = errors.New("malformed tlog-proof")

// ParseProof parses a C2SP tlog-proof strictly: the only encoding it
// accepts for given contents is the one FormatProof writes (plus the
// optional extra line). It does not verify anything.
func ParseProof(b []byte) (*Proof, error) {
	line := func() ([]byte, bool) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, false
		}
		l := b[:i]
		b = b[i+1:]
		return l, true
	}
	bad := func(format string, args ...any) (*Proof, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformedProof, fmt.Sprintf(format, args...))
	}
	l, ok := line()
	if !ok || string(l) != proofHeader {
		return bad("the first line is not %q", proofHeader)
	}
	p := &Proof{}
	if l, ok = line(); !ok {
		return bad("it ends after its header")
	}
	if rest, ok := bytes.CutPrefix(l, []byte("extra ")); ok {
		extra, err := decodeCanonical(rest)
		if err != nil {
			return bad("its extra data is not canonical base64")
		}
		p.Extra = extra
		if l, ok = line(); !ok {
			return bad("it ends after its extra line")
		}
	}
	digits, ok := bytes.CutPrefix(l, []byte("index "))
	if !ok {
		return bad("no index line")
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != string(digits) {
		return bad("the index %q is not a decimal without leading zeroes", digits)
	}
	p.Index = n
	for {
		l, ok := line()
		if !ok {
			return bad("no empty line before the checkpoint")
		}
		if len(l) == 0 {
			break
		}
		h, err := decodeCanonical(l)
		if err != nil || len(h) != 32 {
			return bad("proof line %d is not a 32-byte hash in canonical base64", len(p.Hashes)+1)
		}
		p.Hashes = append(p.Hashes, h)
	}
	if len(b) == 0 {
		return bad("no checkpoint")
	}
	p.Checkpoint = b
	return p, nil
}

// decodeCanonical decodes standard padded base64 and refuses any other
// encoding of the same bytes (for example with non-zero trailing bits).
func decodeCanonical(s []byte) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(string(s))
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != string(s) {
		return nil, errors.New("not the canonical base64 encoding")
	}
	return b, nil
}

// ProofError rewrites the error of a Merkle proof check for people: the
// merkle library's root mismatch prints both roots as Go byte slices over
// several lines; this one names them in base64, on one line. Any other
// error is returned as it is.
func ProofError(err error) error {
	var m proof.RootMismatchError
	if errors.As(err, &m) {
		return fmt.Errorf("the proof leads to root %s, not the checkpoint's %s",
			base64.StdEncoding.EncodeToString(m.CalculatedRoot), base64.StdEncoding.EncodeToString(m.ExpectedRoot))
	}
	return err
}
