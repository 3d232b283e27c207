package witness

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseAddRequest(t *testing.T) {
	h := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	cp := "log.example/a\n3\n" + h + "\n\n— log.example/a AAAA\n"
	tests := []struct {
		name   string
		body   string
		old    uint64
		proofs int
		err    string
	}{
		{"no proof", "old 0\n\n" + cp, 0, 0, ""},
		{"proof", "old 2\n" + h + "\n" + h + "\n\n" + cp, 2, 2, ""},
		{"63 proof lines", "old 2\n" + strings.Repeat(h+"\n", 63) + "\n" + cp, 2, 63, ""},
		{"64 proof lines", "old 2\n" + strings.Repeat(h+"\n", 64) + "\n" + cp, 0, 0, "at most 63"},
		{"no empty line", "old 0\n" + cp[:20], 0, 0, "no empty line"},
		{"no old line", "new 0\n\n" + cp, 0, 0, "first line"},
		{"leading zero", "old 01\n\n" + cp, 0, 0, "leading zero"},
		{"negative", "old -1\n\n" + cp, 0, 0, "not a decimal"},
		{"plus sign", "old +1\n\n" + cp, 0, 0, "not a decimal"},
		{"two spaces", "old  1\n\n" + cp, 0, 0, "not a decimal"},
		{"overflow", "old 18446744073709551616\n\n" + cp, 0, 0, "out of range"},
		{"short hash", "old 2\nAAAA\n\n" + cp, 0, 0, "proof line 1"},
		{"long hash", "old 2\n" + strings.Repeat("A", 48) + "\n\n" + cp, 0, 0, "proof line 1"},
		{"unpadded hash", "old 2\n" + strings.TrimSuffix(h, "=") + "\n\n" + cp, 0, 0, "proof line 1"},
		{"no checkpoint", "old 0\n\n", 0, 0, "no checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseAddRequest([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseAddRequest() = %v, want ErrMalformed saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddRequest() = %v", err)
			}
			if r.OldSize != tt.old || len(r.Proof) != tt.proofs || string(r.Checkpoint) != cp {
				t.Errorf("ParseAddRequest() = old %d, %d proofs, checkpoint %q; want %d, %d, %q", r.OldSize, len(r.Proof), r.Checkpoint, tt.old, tt.proofs, cp)
			}
			if got := r.Marshal(); !bytes.Equal(got, []byte(tt.body)) {
				t.Errorf("Marshal() = %q, want %q", got, tt.body)
			}
		})
	}
}

// FuzzParseAddRequest: no body makes the parser panic, and a body it
// accepts is in the one encoding the spec allows: Marshal gives it back
// byte for byte, with 32-byte hashes and at most MaxProofLines of them.
func FuzzParseAddRequest(f *testing.F) {
	h := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	cp := "log.example/a\n3\n" + h + "\n\n— log.example/a AAAA\n"
	for _, s := range []string{
		"old 0\n\n" + cp,
		"old 2\n" + h + "\n" + h + "\n\n" + cp,
		"old 01\n\n" + cp,
		"old 18446744073709551616\n\n" + cp,
		"old 1\n" + h[:43] + "\n\n" + cp,
		"old 1\n\n",
		"old 1\n\n\n",
		"\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseAddRequest(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseAddRequest(%q) = %v, want an error wrapping ErrMalformed", body, err)
			}
			return
		}
		if len(r.Proof) > MaxProofLines {
			t.Errorf("ParseAddRequest(%q) accepted %d proof lines", body, len(r.Proof))
		}
		for i, p := range r.Proof {
			if len(p) != 32 {
				t.Errorf("ParseAddRequest(%q): proof hash %d is %d bytes", body, i, len(p))
			}
		}
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Errorf("ParseAddRequest(%q) accepted a body Marshal writes as %q", body, got)
		}
	})
}
