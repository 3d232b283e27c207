package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	// The key's name is recorded next to it, as its verifier key.
	raw, err := os.ReadFile(out + ".vkey")
	if err != nil || strings.TrimSpace(string(raw)) != vkey {
		t.Errorf("%s.vkey = %q, %v; want the printed verifier key %q", out, raw, err, vkey)
	}
	if fi, err := os.Stat(out + ".vkey"); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s.vkey: %v, want mode 0644", out, err)
	}

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

	// serve signs with the generated key, under the key's name, with or
	// without --origin.
	for _, extra := range [][]string{{"--origin", origin}, nil} {
		dir := t.TempDir()
		s := startServer(t, dir, append([]string{"--key", out}, extra...)...)
		if s.vkey != vkey || s.origin != origin {
			t.Errorf("serve --key %s %q printed verifier key %q, want keygen's %q (origin %q)", out, extra, s.vkey, vkey, origin)
		}
		s.latestCheckpoint() // verified with keygen's key
		if code := s.terminate(10 * time.Second); code != 0 {
			t.Fatalf("SIGTERM: exit code %d, want 0", code)
		}
	}
}

// TestServeOriginAgreement checks that serve refuses an origin setting, a
// data directory and a key that name different origins, saying how to fix
// it, and writes nothing when it does.
func TestServeOriginAgreement(t *testing.T) {
	tmp := t.TempDir()
	keygen := func(origin, out string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, "keygen", "--origin", origin, "--out", out)
		if code != 0 {
			t.Fatalf("keygen --origin %s = exit %d, stderr %q", origin, code, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	keyA, keyB := filepath.Join(tmp, "a.key"), filepath.Join(tmp, "b.key")
	keygen("logs.example.com/a", keyA)
	keygen("logs.example.com/b", keyB)
	// A key whose .vkey is another key's: not the pair keygen wrote.
	keyX := filepath.Join(tmp, "x.key")
	keygen("logs.example.com/a", keyX)
	if err := os.WriteFile(keyX+".vkey", mustRead(t, keyA+".vkey"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Another key for the same origin as a.
	keyA2 := filepath.Join(tmp, "a2.key")
	keygen("logs.example.com/a", keyA2)
	// A log created with key a, and one with a generated key and origin c.
	logA := filepath.Join(tmp, "log-a")
	s := startServer(t, logA, "--key", keyA)
	if s.origin != "logs.example.com/a" {
		t.Fatalf("serve --key %s: origin %q, want logs.example.com/a", keyA, s.origin)
	}
	s.terminate(10 * time.Second)
	logC := filepath.Join(tmp, "log-c")
	s = startServer(t, logC, "--origin", "logs.example.com/c")
	s.terminate(10 * time.Second)

	for _, tc := range []struct {
		name string
		data string // a new directory if empty
		args []string
		env  []string
		want []string
	}{
		{"origin setting and key", "", []string{"--key", keyA, "--origin", "logs.example.com/other"}, nil,
			[]string{`"logs.example.com/other"`, `"logs.example.com/a"`, "keygen --origin logs.example.com/other"}},
		{"origin from env and key", "", []string{"--key", keyA}, []string{"ACCESSLEDGER_ORIGIN=logs.example.com/env"},
			[]string{`"logs.example.com/env"`, "ACCESSLEDGER_ORIGIN"}},
		{"log and key", logA, []string{"--key", keyB}, nil,
			[]string{"created with \"logs.example.com/a\"", `"logs.example.com/b"`, "use the signing key this log was created with"}},
		{"log and origin setting", logC, []string{"--origin", "logs.example.com/other"}, nil,
			[]string{"created with \"logs.example.com/c\"", "fixed when it is created", `set it to "logs.example.com/c"`}},
		{"key and its verifier key", "", []string{"--key", keyX}, nil, []string{"does not match its verifier key"}},
		{"log and another key of the same name", logA, []string{"--key", keyA2}, nil,
			[]string{"is not the key of the log", "use the key this log was created with"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == "" {
				data = filepath.Join(t.TempDir(), "data")
			}
			before := listFiles(t, data)
			args := append([]string{"serve", "--data", data, "--listen", freeAddr(t)}, tc.args...)
			code, stdout, stderr := runCLI(t, tc.env, args...)
			if code != 1 || stdout != "" {
				t.Errorf("accessledger %q = exit %d, stdout %q; want 1 and nothing on stdout", args, code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("accessledger %q stderr = %q, want it to say %q", args, stderr, w)
				}
			}
			if after := listFiles(t, data); !slices.Equal(before, after) {
				t.Errorf("accessledger %q changed the data directory: %q, then %q", args, before, after)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listFiles lists the files under dir (nil if it does not exist).
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, path)
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return out
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

// TestKeygenLeavesNoOrphanKey: keygen and witness keygen wrote the
// private key, then failed on <out>.vkey (a directory there): the key was
// left without its verifier key, and the rerun refused to overwrite it.
// Every destination is checked first; nothing is written over, and the
// command succeeds once the obstacle is gone.
func TestKeygenLeavesNoOrphanKey(t *testing.T) {
	for _, cmd := range [][]string{{"keygen", "--origin", "example.com/log"}, {"witness", "keygen", "--name", "witness.example/w1"}} {
		for _, suffix := range []string{".vkey", ".pub"} {
			for _, dir := range []bool{true, false} {
				out := filepath.Join(t.TempDir(), "k.key")
				obstacle := out + suffix
				if dir {
					if err := os.Mkdir(obstacle, 0o700); err != nil {
						t.Fatal(err)
					}
				} else {
					writeFile(t, obstacle, "kept\n")
				}
				args := append(slices.Clone(cmd), "--out", out)
				code, stdout, stderr := runCLI(t, nil, args...)
				if code != 1 || stdout != "" || !strings.Contains(stderr, obstacle+" already exists") {
					t.Errorf("%s with %s in the way (directory: %v) = exit %d, stdout %q, stderr %q; want 1 naming it", strings.Join(args, " "), obstacle, dir, code, stdout, stderr)
				}
				for _, p := range []string{out, out + ".pub", out + ".vkey"} {
					if p == obstacle {
						continue
					}
					if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s with %s in the way left %s (Lstat: %v)", strings.Join(args, " "), obstacle, p, err)
					}
				}
				if !dir {
					if got := string(mustRead(t, obstacle)); got != "kept\n" {
						t.Errorf("%s wrote over %s: %q", strings.Join(args, " "), obstacle, got)
					}
				}
				if err := os.RemoveAll(obstacle); err != nil {
					t.Fatal(err)
				}
				if code, _, stderr := runCLI(t, nil, args...); code != 0 {
					t.Errorf("%s once %s is removed = exit %d, stderr %q; want 0", strings.Join(args, " "), obstacle, code, stderr)
				}
			}
		}
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
		{[]string{"--version"}, 0, "accessledger ", nil},
		{[]string{"-version"}, 0, "accessledger ", nil},
		{[]string{"serve", "extra"}, 1, "", []string{`unexpected argument "extra"`}},
		// serve -h shows every setting with its default and variable.
		{[]string{"serve", "-h"}, 0, "", []string{"usage: accessledger serve", `(default "127.0.0.1:8080")`, `(default "./data")`,
			"(default 1s)", "(default 4096)", "(default 67108864)", "ACCESSLEDGER_MAX_INFLIGHT_BODY_BYTES", `(default "@every 10m")`}},
		{[]string{"keygen", "-h"}, 0, "", []string{"-origin", "<out>.vkey"}},
		{[]string{"apikey", "-h"}, 0, "usage: accessledger apikey add", nil},
		{[]string{"apikey", "--help"}, 0, "usage: accessledger apikey add", nil},
		{[]string{"apikey", "add", "-h"}, 0, "", []string{"-name", "-role"}},
		{[]string{"apikey"}, 1, "", []string{`want "apikey add`, "apikey -h"}},
		{[]string{"apikey", "remove"}, 1, "", []string{`want "apikey add`}},
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

// TestCLIRejectsBadValues: values a command cannot use are refused with a
// message naming the flag, not taken as the default (the simulator's
// zero) or reported as something else.
func TestCLIRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"simulate", "--users", "-5"}, "--users must be at least 1, got -5"},
		{[]string{"simulate", "--users", "20001"}, "--users 20001: at most 20000"},
		{[]string{"simulate", "--days", "0"}, "--days must be at least 1, got 0"},
		{[]string{"simulate", "--learning", "0"}, "--learning must be at least 1, got 0"},
		{[]string{"simulate", "--attacks", "-1"}, "--attacks must be at least 1, got -1"},
		{[]string{"simulate", "--batch", "0"}, "--batch must be at least 1, got 0"},
		{[]string{"simulate", "--rate", "-3"}, "--rate must be 0 (as fast as the server takes them) or more, got -3"},
		{[]string{"simulate", "--learning", "1", "--days", "2", "--users", "5", "--start", "1969-06-01"}, "between 1970 and 2200"},
		{[]string{"simulate", "--learning", "1", "--days", "2", "--users", "5", "--start", "2262-06-01"}, "between 1970 and 2200"},
		{[]string{"simulate", "--days", "100000"}, "--days 100000: at most 36500"},
		{[]string{"audit", "--url", "http://127.0.0.1:1", "--vkey", "k", "--state", "s", "--webhook", "http://127.0.0.1:2/hook"}, "--webhook needs --follow"},
		{[]string{"audit", "--url", "http://127.0.0.1:1", "--vkey", "k", "--state", "s", "--follow", "--webhook", "not a url"}, "--webhook must be an absolute http or https URL"},
		// A private key given as --vkey is not echoed back.
		{[]string{"verify", "bundle.json", "--vkey", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"}, "not shown: it may be a secret"},
		// A mistyped verifier key says why it is not one.
		{[]string{"verify", "bundle.json", "--vkey", "example.com/log+12345678+AAAA"}, "is neither a verifier key (invalid verifier hash) nor a readable file"},
	} {
		code, stdout, stderr := runCLI(t, nil, tc.args...)
		wantCode := 1
		if tc.args[0] == "audit" || tc.args[0] == "verify" {
			wantCode = exitUsage // their statuses tell usage from findings
		}
		if code != wantCode || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("accessledger %s = exit %d, stdout %.100q, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, stdout, stderr, wantCode, tc.want)
		}
	}
}
