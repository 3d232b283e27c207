package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"

	evbundle "github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/internal/prooftest"
	"github.com/accessledger/accessledger/ledger"
)

// policyTestLog is a real ledger of a few entries, its signed
// checkpoint and verifier key, for bundles cosigned as a test asks.
type policyTestLog struct {
	l    *ledger.Ledger
	vkey string
	cp   []byte // the log's signed checkpoint, no cosignature
	size uint64
}

func newPolicyTestLog(t *testing.T) *policyTestLog {
	t.Helper()
	ctx := context.Background()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/accessledger/verify-policy-test"
	s, err := ledger.NewNoteSigner(origin, sv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Create(ctx, ledger.Config{Dir: t.TempDir(), Origin: origin, Signer: s, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("ledger.Create() = %v", err)
	}
	t.Cleanup(func() { l.Close(ctx) })
	var batch []ledger.Entry
	for i := range 4 {
		batch = append(batch, ledger.Entry{Data: []byte(fmt.Sprintf(`{"kind":"event","body":{"id":"e%d","actor":{"id":"alice"}}}`, i))})
	}
	if _, err := l.Append(ctx, batch...); err != nil {
		t.Fatalf("Append() = %v", err)
	}
	cp, err := l.SignCheckpoint(ctx)
	if err != nil {
		t.Fatalf("SignCheckpoint() = %v", err)
	}
	return &policyTestLog{l: l, vkey: l.VerifierKey(), cp: cp.Note, size: cp.Size}
}

// bundle writes a bundle of entries 1 and 2 whose checkpoint is cosigned
// by signers, listing vkeys as its witness keys, and returns its path.
func (tl *policyTestLog) bundle(t *testing.T, signers []note.Signer, vkeys ...string) string {
	t.Helper()
	ctx := context.Background()
	logV, err := note.NewVerifier(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(tl.cp, note.VerifierList(logV))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := note.Sign(n, signers...)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := evbundle.NewWriter(&b, evbundle.Header{
		Origin: logV.Name(), VerifierKey: tl.vkey, WitnessKeys: vkeys, Checkpoint: cp,
		Query: "actor=alice", IndexedSize: tl.size, Created: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{1, 2} {
		entry, _, err := tl.l.Entry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		p, err := tl.l.InclusionProof(ctx, i, tl.size)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(i, entry, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, "bundle.json", b.String())
}

func writeTestFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVerifyPolicyCLI runs "accessledger verify" on bundles cosigned by
// an impostor under the real witness's name, by the policy's witnesses,
// and by too few of them: without --policy the impostor verifies but is
// reported unauthenticated with its whole key; with --policy only the
// policy's keys count and the quorum must be met, else exit 1 naming the
// witness missing.
func TestVerifyPolicyCLI(t *testing.T) {
	tl := newPolicyTestLog(t)
	vkeyFile := writeTestFile(t, "log.vkey", tl.vkey+"\n")
	w1, w1VKey := prooftest.WitnessKey(t, "w1.example")
	w2, w2VKey := prooftest.WitnessKey(t, "w2.example")
	impostor, impostorVKey := prooftest.WitnessKey(t, "w1.example")
	onlyW1 := writeTestFile(t, "w1.policy", "witness w1 "+w1VKey+"\nquorum w1\n")
	both := writeTestFile(t, "both.policy", "# the log and both witnesses\nlog "+tl.vkey+"\nwitness w1 "+w1VKey+"\nwitness w2 "+w2VKey+"\ngroup both all w1 w2\nquorum both\n")

	t.Run("ImpostorWithoutPolicy", func(t *testing.T) {
		bundle := tl.bundle(t, []note.Signer{impostor}, impostorVKey)
		code, out, errOut := runCLI(t, nil, "verify", bundle, "--vkey", vkeyFile)
		if code != 0 || !strings.Contains(out, "OK: 2 entries") {
			t.Fatalf("verify (no policy) = %d %q %q, want exit 0", code, out, errOut)
		}
		for _, want := range []string{"NOT authenticated", "cosigner " + impostorVKey, "not authenticated: their keys are taken from the bundle"} {
			if !strings.Contains(out, want) {
				t.Errorf("verify (no policy) printed %q, want it to say %q", out, want)
			}
		}
	})
	t.Run("ImpostorWithPolicy", func(t *testing.T) {
		bundle := tl.bundle(t, []note.Signer{impostor}, impostorVKey)
		code, out, errOut := runCLI(t, nil, "verify", bundle, "--vkey", vkeyFile, "--policy", onlyW1)
		if code != 1 || strings.Contains(out, "OK") {
			t.Fatalf("verify --policy (impostor) = %d %q %q, want exit 1", code, out, errOut)
		}
		for _, want := range []string{"does not meet the witness quorum", "no valid cosignature from w1 (" + w1VKey + ")", impostorVKey} {
			if !strings.Contains(errOut, want) {
				t.Errorf("verify --policy (impostor) stderr %q, want it to say %q", errOut, want)
			}
		}
	})
	t.Run("QuorumMet", func(t *testing.T) {
		bundle := tl.bundle(t, []note.Signer{w1, w2}, w1VKey, w2VKey)
		// The log key from --vkey, and from the policy's log line.
		for _, args := range [][]string{{"--vkey", vkeyFile, "--policy", both}, {"--policy", both}} {
			code, out, errOut := runCLI(t, nil, append([]string{"verify", bundle}, args...)...)
			if code != 0 || !strings.Contains(out, "OK: 2 entries") {
				t.Fatalf("verify %v = %d %q %q, want exit 0", args, code, out, errOut)
			}
			for _, want := range []string{"the witness policy's quorum is met: cosigned by w1, w2", "cosigner w1: " + w1VKey + " (the policy's key)", "cosigner w2: " + w2VKey} {
				if !strings.Contains(out, want) {
					t.Errorf("verify %v printed %q, want it to say %q", args, out, want)
				}
			}
			if strings.Contains(out, "not authenticated") {
				t.Errorf("verify %v printed %q: the policy's witnesses are authenticated", args, out)
			}
		}
	})
	t.Run("QuorumNotMet", func(t *testing.T) {
		bundle := tl.bundle(t, []note.Signer{w1}, w1VKey)
		code, out, errOut := runCLI(t, nil, "verify", bundle, "--policy", both)
		if code != 1 || strings.Contains(out, "OK") || !strings.Contains(errOut, "no valid cosignature from w2 ("+w2VKey+")") {
			t.Errorf("verify --policy (w1 of both) = %d %q %q, want exit 1 naming w2", code, out, errOut)
		}
		// Not another log's key from the policy: that of its log line.
		other := newPolicyTestLog(t)
		code, out, errOut = runCLI(t, nil, "verify", other.bundle(t, []note.Signer{w1, w2}, w1VKey, w2VKey), "--policy", both)
		if code != 1 || !strings.Contains(errOut, "not for the given log key") {
			t.Errorf("verify --policy (another log) = %d %q %q, want exit 1, the wrong log key", code, out, errOut)
		}
	})
	// A --vkey the policy contradicts (its log line for the origin is
	// another key) is refused whatever the bundle: one of them is wrong,
	// and verifying with either would hide it.
	t.Run("VKeyContradictsPolicy", func(t *testing.T) {
		other := newPolicyTestLog(t) // the same origin, another key
		bundle := other.bundle(t, []note.Signer{w1, w2}, w1VKey, w2VKey)
		code, out, errOut := runCLI(t, nil, "verify", bundle, "--vkey", other.vkey, "--policy", both)
		if code != exitUsage || strings.Contains(out, "OK") || !strings.Contains(errOut, "is not the key the policy") || !strings.Contains(errOut, tl.vkey) {
			t.Errorf("verify --vkey (another key) --policy = %d %q %q, want exit 2 naming the policy's key", code, out, errOut)
		}
	})
}

// TestVerifyExitCodes: verify exits 0 for a bundle that verifies, 1 for
// one that does not, and 2 for a wrong command line, as audit does: a
// missing or unreadable --vkey exited 1, as a forged bundle does.
func TestVerifyExitCodes(t *testing.T) {
	tl := newPolicyTestLog(t)
	vkeyFile := writeTestFile(t, "log.vkey", tl.vkey+"\n")
	w1, w1VKey := prooftest.WitnessKey(t, "w1.example")
	bundle := tl.bundle(t, []note.Signer{w1}, w1VKey)
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	forged := writeTestFile(t, "forged.json", strings.Replace(string(raw), `"id":"e1"`, `"id":"e9"`, 1))
	unreadable := writeTestFile(t, "unreadable.json", strings.Replace(string(raw), `{"index":2,`, `{"index":"2",`, 1))
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout if code is 0, else in stderr
	}{
		{[]string{bundle, "--vkey", vkeyFile}, 0, "OK: 2 entries"},
		{[]string{forged, "--vkey", vkeyFile}, 1, "entry 0 of the bundle (log index 1)"},
		{[]string{unreadable, "--vkey", vkeyFile}, 1, "entry 1 of the bundle (log index unknown)"},
		{[]string{bundle}, exitUsage, "--vkey is required"},
		{[]string{"--vkey", vkeyFile}, exitUsage, "give one bundle FILE"},
		{[]string{bundle, bundle, "--vkey", vkeyFile}, exitUsage, "give one bundle FILE"},
		{[]string{bundle, "--vkey", vkeyFile, "--frobnicate"}, exitUsage, "flag provided but not defined"},
		{[]string{bundle, "--vkey", missing}, exitUsage, "is neither a verifier key"},
		{[]string{bundle, "--vkey", writeTestFile(t, "junk.vkey", "not a key\n")}, exitUsage, "does not hold a verifier key"},
		{[]string{bundle, "--vkey", vkeyFile, "--policy", missing}, exitUsage, "reading policy"},
		{[]string{missing, "--vkey", vkeyFile}, exitUsage, "no such file"},
	} {
		code, out, errOut := runCLI(t, nil, append([]string{"verify"}, tc.args...)...)
		got := errOut
		if tc.code == 0 {
			got = out
		}
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("verify %q = %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}
