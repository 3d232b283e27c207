package witness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// testWitnessKey makes a witness key: the signer key and the cosignature
// verifier key (type 0x04), as transparency-dev/formats writes them.
func testWitnessKey(t testing.TB, name string) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return skey, cvkey
}

func TestParsePolicy(t *testing.T) {
	_, logKey, _ := note.GenerateKey(rand.Reader, "log.example/a")
	_, w1 := testWitnessKey(t, "w1.example")
	_, w2 := testWitnessKey(t, "w2.example")
	_, w3 := testWitnessKey(t, "w3.example")
	_, plainKey, _ := note.GenerateKey(rand.Reader, "w4.example") // type 0x01: not a cosignature key
	tampered := w1[:len(w1)-4] + "AAA="
	wrongID := strings.Replace(w2, "+", "+0", 1)[:len(w2)]

	tests := []struct {
		name   string
		policy string
		err    string // substring of the error, "" for success
		logs   int
		wits   int
	}{
		{"log only", "log " + logKey + "\nquorum none\n", "", 1, 0},
		{"comments and blanks", "# a policy\n\n  # indented comment\n\tlog " + logKey + " https://log.example/\nquorum none", "", 1, 0},
		{"tabs and spaces", "log\t" + logKey + "\nwitness  w1\t" + w1 + "  https://w1.example/\nquorum\tw1\n", "", 1, 1},
		{"groups", "witness a " + w1 + "\nwitness b " + w2 + "\nwitness c " + w3 + "\ngroup g 2 a b c\ngroup h any g\nquorum h\n", "", 0, 3},
		{"no quorum", "log " + logKey + "\n", "no quorum line", 0, 0},
		{"two quorums", "quorum none\nquorum none\n", "second quorum", 0, 0},
		{"unknown keyword", "logs " + logKey + "\nquorum none\n", "unknown keyword", 0, 0},
		{"carriage return", "log " + logKey + "\r\nquorum none\n", "control character 0x0d", 0, 0},
		{"witness with a log key type", "witness a " + plainKey + "\nquorum a\n", "signature type 0x01", 0, 0},
		{"log with a witness key type", "log " + w1 + "\nquorum none\n", "signature type 0x04", 0, 0},
		{"bad base64 key", "witness a " + tampered[:len(tampered)-1] + "!\nquorum a\n", "not base64", 0, 0},
		{"key ID mismatch", "witness a " + wrongID + "\nquorum a\n", "key ID", 0, 0},
		{"duplicate witness key", "witness a " + w1 + "\nwitness b " + w1 + "\nquorum a\n", "same public key", 0, 0},
		{"duplicate name", "witness a " + w1 + "\nwitness a " + w2 + "\nquorum a\n", "already defined", 0, 0},
		{"none as a name", "witness none " + w1 + "\nquorum none\n", "predefined", 0, 0},
		{"forward reference", "group g any a\nwitness a " + w1 + "\nquorum g\n", "not defined on an earlier line", 0, 0},
		{"quorum before definition", "quorum a\nwitness a " + w1 + "\n", "not defined on an earlier line", 0, 0},
		{"member twice", "witness a " + w1 + "\ngroup g 1 a a\nquorum g\n", "listed twice", 0, 0},
		{"threshold too high", "witness a " + w1 + "\ngroup g 2 a\nquorum g\n", "threshold", 0, 0},
		{"threshold zero", "witness a " + w1 + "\ngroup g 0 a\nquorum g\n", "threshold", 0, 0},
		{"group without members", "group g any\nquorum g\n", "at least one member", 0, 0},
		{"none as a member", "witness a " + w1 + "\ngroup g any a none\nquorum g\n", "cannot be a group member", 0, 0},
		{"relative URL", "witness a " + w1 + " /add\nquorum a\n", "absolute http", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.policy))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrPolicy) {
					t.Fatalf("ParsePolicy() = %v, want an ErrPolicy containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy() = %v, want success", err)
			}
			if len(p.Logs) != tt.logs || len(p.Witnesses) != tt.wits {
				t.Errorf("ParsePolicy() = %d logs, %d witnesses; want %d, %d", len(p.Logs), len(p.Witnesses), tt.logs, tt.wits)
			}
		})
	}
}

func TestPolicyQuorum(t *testing.T) {
	keys := map[string]string{}
	var policy strings.Builder
	for _, n := range []string{"x1", "x2", "x3", "y1", "y2", "y3"} {
		_, keys[n] = testWitnessKey(t, n+".example")
		fmt.Fprintf(&policy, "witness %s %s\n", n, keys[n])
	}
	policy.WriteString("group X 2 x1 x2 x3\ngroup Y any y1 y2 y3\ngroup XY all X Y\nquorum XY\n")
	p, err := ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cosigned string
		want     bool
	}{
		{"", false},
		{"x1 x2", false},
		{"x1 y1", false},
		{"x1 x2 y3", true},
		{"x1 x2 x3 y1 y2 y3", true},
		{"y1 y2 y3 x3", false},
	}
	for _, tt := range tests {
		set := map[string]bool{}
		for _, n := range strings.Fields(tt.cosigned) {
			set[n] = true
		}
		got := p.Satisfied(func(i int) bool { return set[p.Witnesses[i].Name] })
		if got != tt.want {
			t.Errorf("Satisfied(%q) = %v, want %v", tt.cosigned, got, tt.want)
		}
	}
	none, _ := ParsePolicy([]byte("quorum none\n"))
	if !none.Satisfied(func(int) bool { return false }) || !none.QuorumNone() {
		t.Error("quorum none: Satisfied() = false, want true")
	}
}

// TestPolicyCosigners checks cosignatures made by transparency-dev/formats
// (NewSignerForCosignatureV1) and by our Cosigner against a policy.
func TestPolicyCosigners(t *testing.T) {
	lg := newTestLog(t, "log.example/a")
	lg.append(3, "a")
	skey, vkey := testWitnessKey(t, "w1.example")
	fs, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	ours := testCosigner(t, "w2.example")
	_, absent := testWitnessKey(t, "w3.example")
	p, err := ParsePolicy([]byte(fmt.Sprintf("log %s\nwitness a %s\nwitness b %s\nwitness c %s\ngroup g 2 a b c\nquorum g\n", lg.vkey, vkey, ours.VerifierKey(), absent)))
	if err != nil {
		t.Fatal(err)
	}
	cp := lg.checkpoint(3)
	n, err := note.Open(cp, note.VerifierList(lg.policyLog().Verifier))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(n, fs, ours)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Cosigners(signed)
	if err != nil || fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("Cosigners() = %v, %v; want [0 1]", got, err)
	}
	if !p.Satisfied(func(i int) bool { return i == 0 || i == 1 }) {
		t.Error("Satisfied(a, b) = false, want true")
	}
	// A cosignature line of a known witness that does not verify is an
	// error, not an absent cosignature.
	if _, err := p.Cosigners(corruptSig(signed, "w2.example")); err == nil {
		t.Error("Cosigners(corrupted cosignature) succeeded, want an error")
	}
	// Also when it follows a valid line of the same witness: note.Open
	// skips a key's later lines unchecked, and the order of the lines
	// decided whether the note was accepted.
	line := func(b []byte, name string) string {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "— "+name+" ") {
				return l + "\n"
			}
		}
		t.Fatalf("no line by %s", name)
		return ""
	}
	good, bad := line(signed, "w2.example"), line(corruptSig(signed, "w2.example"), "w2.example")
	without := bytes.Replace(signed, []byte(good), nil, 1)
	for _, order := range [][2]string{{good, bad}, {bad, good}} {
		twice := append(bytes.Clone(without), order[0]+order[1]...)
		if got, err := p.Cosigners(twice); err == nil {
			t.Errorf("lines %q: Cosigners() = %v, nil; want an error for the invalid line", twice[len(without):], got)
		}
	}
}

// corruptSig flips a bit in the signature (after the key ID and
// timestamp) of the line by name.
func corruptSig(signed []byte, name string) []byte {
	lines := strings.Split(string(signed), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "— "+name+" "); ok {
			raw, _ := base64.StdEncoding.DecodeString(rest)
			raw[20] ^= 1
			lines[i] = "— " + name + " " + base64.StdEncoding.EncodeToString(raw)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// FuzzParsePolicy: no policy file makes the parser panic; what it
// refuses wraps ErrPolicy, and a policy it accepts can be evaluated.
func FuzzParsePolicy(f *testing.F) {
	_, logKey, _ := note.GenerateKey(rand.Reader, "log.example/a")
	_, w1 := testWitnessKey(f, "w1.example")
	_, w2 := testWitnessKey(f, "w2.example")
	for _, s := range []string{
		"log " + logKey + "\nquorum none\n",
		"log " + logKey + " https://log.example/\nwitness a " + w1 + " https://w1.example/\nwitness b " + w2 + "\ngroup g 2 a b\ngroup h any g a\nquorum h\n",
		"# comment\n\n\tlog\t" + logKey + "\nquorum\tnone",
		"witness a " + w1 + "\ngroup g 0 a\nquorum g\n",
		"group g any a\nwitness a " + w1 + "\nquorum g\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("ParsePolicy(%q) = %v, want an error wrapping ErrPolicy", data, err)
			}
			return
		}
		all := p.Satisfied(func(int) bool { return true })
		if !all {
			t.Errorf("ParsePolicy(%q): a policy that every witness cosigning does not satisfy", data)
		}
		if none := p.Satisfied(func(int) bool { return false }); none != p.QuorumNone() {
			t.Errorf("ParsePolicy(%q): Satisfied(no cosignatures) = %v, QuorumNone() = %v", data, none, p.QuorumNone())
		}
	})
}
