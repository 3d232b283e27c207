package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

// MaxProofLines is the most consistency-proof lines an add-checkpoint
// request may carry (tlog-witness: a client MUST NOT send more than 63).
const MaxProofLines = 63

// AddRequest is a tlog-witness add-checkpoint request: the size of the
// checkpoint the client believes the witness last cosigned, a consistency
// proof from it to the new checkpoint, and the new checkpoint as a signed
// note.
type AddRequest struct {
	OldSize    uint64
	Proof      [][]byte
	Checkpoint []byte
}

// ParseAddRequest parses an add-checkpoint request body: "old <N>\n", up
// to 63 base64 hash lines, an empty line, then the checkpoint. Errors wrap
// ErrMalformed. The checkpoint is only split off here; AddCheckpoint
// verifies it.
func ParseAddRequest(body []byte) (AddRequest, error) {
	var r AddRequest
	head, cp, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return r, fmt.Errorf("%w: no empty line between the old size and proof lines and the checkpoint", ErrMalformed)
	}
	lines := bytes.Split(head, []byte("\n"))
	size, ok := bytes.CutPrefix(lines[0], []byte("old "))
	if !ok {
		return r, fmt.Errorf("%w: the first line must be \"old <size>\"", ErrMalformed)
	}
	n, err := parseDecimal(size)
	if err != nil {
		return r, fmt.Errorf("%w: old size %q: %v", ErrMalformed, size, err)
	}
	r.OldSize = n
	if len(lines)-1 > MaxProofLines {
		return r, fmt.Errorf("%w: %d consistency proof lines, at most %d", ErrMalformed, len(lines)-1, MaxProofLines)
	}
	for i, l := range lines[1:] {
		// The length first: Decode panics when what it decodes does not
		// fit in h.
		if len(l) != base64.StdEncoding.EncodedLen(32) {
			return r, fmt.Errorf("%w: proof line %d is not a base64 SHA-256 hash", ErrMalformed, i+1)
		}
		h := make([]byte, 33)
		n, err := base64.StdEncoding.Decode(h, l)
		if err != nil || n != 32 {
			return r, fmt.Errorf("%w: proof line %d is not a base64 SHA-256 hash", ErrMalformed, i+1)
		}
		r.Proof = append(r.Proof, h[:32])
	}
	if len(cp) == 0 {
		return r, fmt.Errorf("%w: no checkpoint after the empty line", ErrMalformed)
	}
	r.Checkpoint = cp
	return r, nil
}

// Marshal encodes the request body.
func (r AddRequest) Marshal() []byte {
	b := make([]byte, 0, 32+45*len(r.Proof)+len(r.Checkpoint))
	b = append(b, "old "...)
	b = strconv.AppendUint(b, r.OldSize, 10)
	b = append(b, '\n')
	for _, h := range r.Proof {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, r.Checkpoint...)
}

// parseDecimal parses a tree size: ASCII decimal, no sign, no leading
// zeroes unless it is 0.
func parseDecimal(s []byte) (uint64, error) {
	if len(s) == 0 {
		return 0, fmt.Errorf("empty")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("leading zero")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	n, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	return n, nil
}
