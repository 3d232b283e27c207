package evidence_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/accessledger/accessledger/client/evidence"
)

// FuzzParseProof: no input makes ParseProof panic, what it refuses wraps
// ErrMalformedProof, and what it accepts is in the one encoding the spec
// allows: FormatProof writes it back byte for byte (after the optional
// extra line, which FormatProof does not write).
func FuzzParseProof(f *testing.F) {
	h := "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ="
	cp := "example.com/log\n2\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n— example.com/log abc=\n"
	for _, s := range []string{
		"c2sp.org/tlog-proof@v1\nindex 1\n" + h + "\n\n" + cp,
		"c2sp.org/tlog-proof@v1\nextra aGk=\nindex 0\n\n" + cp,
		"c2sp.org/tlog-proof@v1\nindex 01\n" + h + "\n\n" + cp,
		"c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\n" + cp,
		"c2sp.org/tlog-proof@v1\nindex 1\n" + h[:40] + "\n\n" + cp,
		"c2sp.org/tlog-proof@v1\nindex 1\n" + h + "\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := evidence.ParseProof(b)
		if err != nil {
			if !errors.Is(err, evidence.ErrMalformedProof) {
				t.Fatalf("ParseProof(%q) = %v, want an error wrapping ErrMalformedProof", b, err)
			}
			return
		}
		for i, hash := range p.Hashes {
			if len(hash) != 32 {
				t.Errorf("ParseProof(%q): hash %d is %d bytes", b, i, len(hash))
			}
		}
		want := b
		if p.Extra != nil {
			// Drop the extra line: header, then "extra ...\n".
			i := bytes.IndexByte(b, '\n')
			j := bytes.IndexByte(b[i+1:], '\n')
			want = append(append([]byte{}, b[:i+1]...), b[i+1+j+1:]...)
		}
		if got := evidence.FormatProof(p.Index, p.Hashes, p.Checkpoint); !bytes.Equal(got, want) {
			t.Errorf("ParseProof(%q) accepted a proof FormatProof writes as %q", b, got)
		}
	})
}

// FuzzVerify: no bundle, however damaged, makes Verify panic. The seeds
// are real bundles of a real ledger, so the fuzzer starts from inputs
// that reach every check.
func FuzzVerify(f *testing.F) {
	tl := newTestLog(f, testEntries(40), "witness.example/w1")
	f.Add(tl.bundle(f, 2, 19))
	f.Add(tl.bundle(f, 0, 1, 39))
	f.Add(tl.bundle(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := evidence.Verify(bytes.NewReader(b), tl.vkey); err != nil && err.Error() == "" {
			t.Errorf("Verify() = an error with no message")
		}
	})
}
