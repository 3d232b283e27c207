package evidence_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accessledger/accessledger/client/evidence"
)

// TestProofError: a root mismatch reads as one line with base64 roots,
// not the merkle library's byte-slice dumps over four lines.
func TestProofError(t *testing.T) {
	leaf := rfc6962.DefaultHasher.HashLeaf([]byte("entry"))
	wrong := bytes.Repeat([]byte{7}, 32)
	err := evidence.ProofError(proof.VerifyInclusion(rfc6962.DefaultHasher, 0, 1, leaf, nil, wrong))
	if err == nil || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "[") ||
		!strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(leaf)) || !strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(wrong)) {
		t.Errorf("ProofError(root mismatch) = %q, want one line naming both roots in base64", err)
	}
	other := errors.New("wrong proof size")
	if got := evidence.ProofError(other); got != other {
		t.Errorf("ProofError(%v) = %v, want it unchanged", other, got)
	}
}
