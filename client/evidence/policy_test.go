package evidence_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/witness"
)

// cosign replaces tl's checkpoint with the log's signature and
// cosignatures by signers, and lists vkeys as the bundle's witness keys.
func (tl *testLog) cosign(t *testing.T, signers []note.Signer, vkeys ...string) {
	t.Helper()
	logV, err := note.NewVerifier(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(tl.cp, note.VerifierList(logV))
	if err != nil {
		t.Fatal(err)
	}
	n.Sigs = n.Sigs[:1] // the log's
	if tl.cp, err = note.Sign(n, signers...); err != nil {
		t.Fatal(err)
	}
	tl.witnesses = vkeys
}

// trusted parses a tlog-policy with witness.ParsePolicy, as the command
// does, and returns its witnesses and quorum for VerifyWith.
func trusted(t *testing.T, policy string) *evidence.WitnessPolicy {
	t.Helper()
	p, err := witness.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatalf("ParsePolicy(%q) = %v", policy, err)
	}
	wp := &evidence.WitnessPolicy{Quorum: p.Satisfied}
	for _, w := range p.Witnesses {
		wp.Witnesses = append(wp.Witnesses, evidence.TrustedWitness{Name: w.Name, VKey: w.VKey})
	}
	return wp
}

// TestVerifyImpostorWitness: the log's operator cosigns with a key of its
// own under the real witness's name. Without trusted witnesses the
// bundle verifies, but the summary says the witnesses are not
// authenticated and gives the impostor's whole key; against the real
// witness's key it fails, naming the witness and the impostor's key.
func TestVerifyImpostorWitness(t *testing.T) {
	tl := newTestLog(t, testEntries(5))
	_, realVKey := newWitness(t, "w1.example")
	impostor, impostorVKey := newWitness(t, "w1.example")
	tl.cosign(t, []note.Signer{impostor}, impostorVKey)
	b := tl.bundle(t, 1, 3)

	sum, err := evidence.Verify(bytes.NewReader(b), tl.vkey)
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	if sum.WitnessesTrusted || len(sum.Cosigners) != 1 || sum.Cosigners[0].VKey != impostorVKey || sum.Cosigners[0].Trusted != "" {
		t.Errorf("Verify() = WitnessesTrusted %v, Cosigners %+v; want not trusted, the impostor's key %s", sum.WitnessesTrusted, sum.Cosigners, impostorVKey)
	}

	opts := evidence.VerifyOptions{Witnesses: trusted(t, "witness w1 "+realVKey+"\nquorum w1\n")}
	sum, err = evidence.VerifyWith(bytes.NewReader(b), tl.vkey, opts)
	var qe *evidence.QuorumError
	if !errors.Is(err, evidence.ErrQuorum) || !errors.As(err, &qe) {
		t.Fatalf("VerifyWith(real w1 trusted) = %+v, %v; want a *QuorumError", sum, err)
	}
	if len(qe.Missing) != 1 || qe.Missing[0].Name != "w1" || len(qe.Cosigned) != 0 || len(qe.Untrusted) != 1 || qe.Untrusted[0] != impostorVKey {
		t.Errorf("QuorumError = %+v; want w1 missing and the impostor untrusted", qe)
	}
	if msg := err.Error(); !strings.Contains(msg, "no valid cosignature from w1 ("+realVKey+")") || !strings.Contains(msg, impostorVKey) {
		t.Errorf("VerifyWith() error %q does not name w1 with its key and the impostor's key", msg)
	}
	// The bundle's own witness_keys are not a way in: listing the real
	// key too fails the bundle's encoding (the real witness did not sign).
	tl.witnesses = []string{impostorVKey, realVKey}
	if _, err := evidence.VerifyWith(bytes.NewReader(tl.bundle(t, 1)), tl.vkey, opts); err == nil {
		t.Errorf("VerifyWith(real key listed, impostor signed) = nil error")
	}
}

// TestVerifyTrustedWitnesses: a checkpoint cosigned by the policy's
// witnesses verifies, each cosigner named by the policy; one cosigned by
// too few fails, naming the witness missing.
func TestVerifyTrustedWitnesses(t *testing.T) {
	w1, w1VKey := newWitness(t, "w1.example")
	w2, w2VKey := newWitness(t, "w2.example")
	stranger, strangerVKey := newWitness(t, "stranger.example")
	both := "witness w1 " + w1VKey + "\nwitness w2 " + w2VKey + "\ngroup both all w1 w2\nquorum both\n"

	t.Run("QuorumMet", func(t *testing.T) {
		tl := newTestLog(t, testEntries(5))
		tl.cosign(t, []note.Signer{w1, stranger, w2}, w1VKey, strangerVKey, w2VKey)
		sum, err := evidence.VerifyWith(bytes.NewReader(tl.bundle(t, 0, 4)), tl.vkey, evidence.VerifyOptions{Witnesses: trusted(t, both)})
		if err != nil {
			t.Fatalf("VerifyWith() = %v", err)
		}
		want := []evidence.Cosigner{{VKey: w1VKey, Trusted: "w1"}, {VKey: strangerVKey}, {VKey: w2VKey, Trusted: "w2"}}
		if !sum.WitnessesTrusted || sum.Entries != 2 || len(sum.Cosigners) != len(want) {
			t.Fatalf("VerifyWith() = %+v; want trusted witnesses %+v", sum, want)
		}
		for i := range want {
			if sum.Cosigners[i] != want[i] {
				t.Errorf("Cosigners[%d] = %+v, want %+v", i, sum.Cosigners[i], want[i])
			}
		}
	})
	t.Run("QuorumNotMet", func(t *testing.T) {
		tl := newTestLog(t, testEntries(5))
		tl.cosign(t, []note.Signer{w1}, w1VKey)
		_, err := evidence.VerifyWith(bytes.NewReader(tl.bundle(t, 2)), tl.vkey, evidence.VerifyOptions{Witnesses: trusted(t, both)})
		var qe *evidence.QuorumError
		if !errors.As(err, &qe) || !errors.Is(err, evidence.ErrQuorum) {
			t.Fatalf("VerifyWith(w1 of w1, w2) = %v, want a *QuorumError", err)
		}
		if len(qe.Cosigned) != 1 || qe.Cosigned[0].Name != "w1" || len(qe.Missing) != 1 || qe.Missing[0].Name != "w2" || len(qe.Untrusted) != 0 {
			t.Errorf("QuorumError = %+v; want w1 cosigned, w2 missing", qe)
		}
		if !strings.Contains(err.Error(), "no valid cosignature from w2 ("+w2VKey+")") {
			t.Errorf("VerifyWith() error %q does not name w2", err)
		}
		// A quorum of one of the two is met by w1 alone.
		oneOf := "witness w1 " + w1VKey + "\nwitness w2 " + w2VKey + "\ngroup g 1 w1 w2\nquorum g\n"
		if sum, err := evidence.VerifyWith(bytes.NewReader(tl.bundle(t, 2)), tl.vkey, evidence.VerifyOptions{Witnesses: trusted(t, oneOf)}); err != nil || !sum.WitnessesTrusted {
			t.Errorf("VerifyWith(1 of w1, w2) = %+v, %v; want trusted", sum, err)
		}
	})
	t.Run("NoCosignature", func(t *testing.T) {
		tl := newTestLog(t, testEntries(5))
		if _, err := evidence.VerifyWith(bytes.NewReader(tl.bundle(t, 2)), tl.vkey, evidence.VerifyOptions{Witnesses: trusted(t, both)}); !errors.Is(err, evidence.ErrQuorum) {
			t.Errorf("VerifyWith(no cosignature) = %v, want ErrQuorum", err)
		}
		if sum, err := evidence.VerifyWith(bytes.NewReader(tl.bundle(t, 2)), tl.vkey, evidence.VerifyOptions{Witnesses: trusted(t, "witness w1 "+w1VKey+"\nquorum none\n")}); err != nil || !sum.WitnessesTrusted {
			t.Errorf("VerifyWith(quorum none) = %+v, %v; want trusted", sum, err)
		}
	})
}
