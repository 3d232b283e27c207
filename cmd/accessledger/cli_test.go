package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/ledger"
)

// TestKeygen writes a key, checks it matches the printed verifier key and
// that serve can sign with it, and checks the refusals.
func TestKeygen(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "keys", "k.key") // keygen creates keys/
	const origin = "example.com/log"

	code, stdout, stderr := runCLI(t, nil, "keygen", "--origin", origin, "--out", out)
	if code != 0 {
		t.Fatalf("keygen = exit %d, stderr %q; want 0", code, stderr)
	}
	vkey := strings.TrimSpace(stdout)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", vkey, err)
	}
	if v.Name() != origin {
		t.Errorf("verifier key name = %q, want %q", v.Name(), origin)
	}
	checkVerifierKeyFormat(t, vkey, origin)
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", out, perm)
	}
	// The printed verifier key verifies what the written key signs.
	sv, err := ledger.LoadKeyFile(out)
	if err != nil {
		t.Fatalf("ledger.LoadKeyFile(%s) = %v", out, err)
	}
	signer, err := ledger.NewNoteSigner(origin, sv)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("note.Open(note signed with %s) with the printed verifier key = %v", out, err)
	}
	key, _ := os.ReadFile(out)

	// Refuses to overwrite.
	code, stdout, stderr = runCLI(t, nil, "keygen", "--origin", origin, "--out", out)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "exists") {
		t.Errorf("keygen over an existing key = exit %d, stdout %q, stderr %q; want 1 and a message that it exists", code, stdout, stderr)
	}
	if key2, _ := os.ReadFile(out); string(key2) != string(key) {
		t.Errorf("keygen over an existing key changed it")
	}

	// --origin is required.
	other := filepath.Join(tmp, "other.key")
	code, stdout, stderr = runCLI(t, nil, "keygen", "--out", other)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "--origin is required") {
		t.Errorf("keygen without --origin = exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, "--origin is required")
	}
	if _, err := os.Stat(other); err == nil {
		t.Errorf("keygen without --origin wrote %s", other)
	}

	// serve signs with the generated key.
	dir := t.TempDir()
	s := startServer(t, dir, "--key", out, "--origin", origin)
	if s.vkey != vkey {
		t.Errorf("serve --key %s printed verifier key %q, want keygen's %q", out, s.vkey, vkey)
	}
	s.latestCheckpoint() // verified with keygen's key
}

// TestKeygenInvalidOriginLeavesNoKey: an origin that cannot be a key name
// must be refused before anything is written, so that the corrected
// command can be run with the same --out.
func TestKeygenInvalidOriginLeavesNoKey(t *testing.T) {
	out := filepath.Join(t.TempDir(), "k.key")
	code, stdout, stderr := runCLI(t, nil, "keygen", "--origin", "example.com/my log", "--out", out)
	if code != 1 || stdout != "" {
		t.Errorf("keygen --origin %q = exit %d, stdout %q, stderr %q; want 1 and no output", "example.com/my log", code, stdout, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("keygen with an invalid origin (%s) left a private key at %s; rerunning with a valid origin now fails", strings.TrimSpace(stderr), out)
	}
}

// TestUsage checks the exit codes of the command line itself.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		wantStdout string
		wantStderr []string
	}{
		{nil, 2, "", []string{"usage: accessledger"}},
		{[]string{"frobnicate"}, 2, "", []string{`unknown command "frobnicate"`, "usage: accessledger"}},
		{[]string{"help"}, 0, "usage: accessledger", nil},
		{[]string{"version"}, 0, "accessledger ", nil},
		{[]string{"serve", "extra"}, 1, "", []string{`unexpected argument "extra"`}},
	} {
		code, stdout, stderr := runCLI(t, nil, tc.args...)
		bad := code != tc.code || !strings.Contains(stdout, tc.wantStdout) || (tc.wantStdout == "" && stdout != "")
		for _, w := range tc.wantStderr {
			bad = bad || !strings.Contains(stderr, w)
		}
		if bad {
			t.Errorf("accessledger %q = exit %d, stdout %q, stderr %q; want %d, stdout %q, stderr with %q",
				tc.args, code, stdout, stderr, tc.code, tc.wantStdout, tc.wantStderr)
		}
	}
}
