package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Signature types of C2SP signed-note verifier keys that a policy accepts.
const (
	sigTypeEd25519     = 0x01 // log checkpoints (signed-note Ed25519)
	sigTypeCosignature = 0x04 // witness cosignatures (tlog-cosignature cosignature/v1, Ed25519)
	sigTypeMLDSA44     = 0x06 // log checkpoints or witness cosignatures (tlog-cosignature ML-DSA-44)
)

// maxPolicyItems bounds the logs, witnesses and groups of one policy. The
// spec asks implementations to support at least 32 of each.
const maxPolicyItems = 1024

// ErrPolicy means a policy file does not follow C2SP tlog-policy; the
// wrapping error names the line and what is wrong with it.
var ErrPolicy = errors.New("invalid tlog-policy")

// Policy is a C2SP tlog-policy (c2sp.org/tlog-policy): the logs a party
// trusts, the witnesses it knows and the quorum of them that a checkpoint
// needs. It is immutable once parsed and safe for concurrent use.
type Policy struct {
	// Logs are the policy's log lines, in file order.
	Logs []PolicyLog
	// Witnesses are the policy's witness lines, in file order.
	Witnesses []PolicyWitness
	// quorum is the quorum rule; nil means "quorum none".
	quorum *quorumNode
}

// PolicyLog is a log line: "log <vkey> [<url>]".
type PolicyLog struct {
	// Origin is the log's origin, the name of its key.
	Origin string
	// VKey is the log's verifier key, as written in the policy.
	VKey string
	// URL is the optional URL, empty if none.
	URL string
	// Verifier verifies the log's checkpoint signatures.
	Verifier note.Verifier
}

// PolicyWitness is a witness line: "witness <name> <vkey> [<url>]".
type PolicyWitness struct {
	// Name is the witness's name in the policy (not its key name).
	Name string
	// VKey is the witness's cosignature verifier key (type 0x04 or 0x06).
	VKey string
	// URL is the witness's submission prefix, empty if none.
	URL string
	// Verifier verifies the witness's cosignatures.
	Verifier note.Verifier
}

// quorumNode is a witness (witness >= 0) or a group of k of its children.
type quorumNode struct {
	witness  int
	k        int
	children []*quorumNode
}

func (n *quorumNode) satisfied(cosigned func(int) bool) bool {
	if n.witness >= 0 {
		return cosigned(n.witness)
	}
	got := 0
	for _, c := range n.children {
		if c.satisfied(cosigned) {
			got++
			if got >= n.k {
				return true
			}
		}
	}
	return false
}

// QuorumNone reports whether the policy needs no cosignature at all
// ("quorum none").
func (p *Policy) QuorumNone() bool { return p.quorum == nil }

// Satisfied reports whether the witnesses for which cosigned(i) is true
// (i indexes p.Witnesses) meet the quorum.
func (p *Policy) Satisfied(cosigned func(i int) bool) bool {
	if p.quorum == nil {
		return true
	}
	return p.quorum.satisfied(cosigned)
}

// LogVerifiers returns the verifiers of the log keys named origin, nil if
// the policy has none.
func (p *Policy) LogVerifiers(origin string) []note.Verifier {
	var vs []note.Verifier
	for _, l := range p.Logs {
		if l.Origin == origin {
			vs = append(vs, l.Verifier)
		}
	}
	return vs
}

// Cosigners returns which witnesses of the policy validly cosigned the
// signed note msg: the indexes into p.Witnesses whose signature line is
// present and verifies. Signatures by other keys are ignored; a line with
// a witness's name and key ID whose signature does not verify is an
// error, as signed-note asks, whichever line it is (VerifyKnownLines).
func (p *Policy) Cosigners(msg []byte) ([]int, error) {
	var out []int
	for i, w := range p.Witnesses {
		_, err := note.Open(msg, note.VerifierList(w.Verifier))
		var unverified *note.UnverifiedNoteError
		switch {
		case err == nil:
			if err := VerifyKnownLines(msg, w.Verifier); err != nil {
				return nil, fmt.Errorf("cosignature of witness %s: %w", w.Name, err)
			}
			out = append(out, i)
		case errors.As(err, &unverified):
		default:
			return nil, fmt.Errorf("cosignature of witness %s: %w", w.Name, err)
		}
	}
	return out, nil
}

// VerifyKnownLines checks every signature line of the signed note msg
// whose key name and ID are those of one of known: each must verify.
// note.Open verifies the first line of each key and skips the others
// unchecked, so a valid line followed by an invalid one of the same key
// passed; signed-note says "If the key name and ID match a known key,
// verifiers MUST verify the signature". Call it on a note note.Open
// accepted.
func VerifyKnownLines(msg []byte, known ...note.Verifier) error {
	i := bytes.LastIndex(msg, []byte("\n\n")) // as note.Open splits
	if i < 0 {
		return errors.New("malformed note: no blank line before the signatures")
	}
	return verifyEveryKnownSignature(msg, string(msg[:i+1]), known)
}

// ParsePolicy parses a C2SP tlog-policy file. It checks everything the
// spec asks: the character set, that keys are valid verifier keys of the
// right signature type with the right key ID, that no key appears twice,
// that groups and the quorum refer only to names defined on earlier lines,
// thresholds, and exactly one quorum line. Log keys must be Ed25519 (0x01)
// or ML-DSA-44 (0x06); witness keys cosignature/v1 (0x04) or ML-DSA-44
// (0x06).
func ParsePolicy(data []byte) (*Policy, error) {
	p := &Policy{}
	names := map[string]*quorumNode{}
	keys := map[string]string{} // public key material -> where it was defined
	quorumSeen := false
	groups := 0
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, raw := range lines {
		lineNo := i + 1
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: line %d: %s", ErrPolicy, lineNo, fmt.Sprintf(format, args...))
		}
		for _, b := range raw {
			if b != '\t' && (b < 0x20 || b == 0x7f) {
				return nil, bad("control character 0x%02x (only tab and newline are allowed)", b)
			}
		}
		fields := strings.FieldsFunc(string(raw), func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "log":
			if len(fields) < 2 || len(fields) > 3 {
				return nil, bad("want \"log <vkey> [<url>]\"")
			}
			name, material, v, err := parseVKey(fields[1], sigTypeEd25519, sigTypeMLDSA44)
			if err != nil {
				return nil, bad("log key: %v", err)
			}
			if prev, dup := keys[material]; dup {
				return nil, bad("log key is the same public key as %s", prev)
			}
			keys[material] = fmt.Sprintf("the key on line %d", lineNo)
			l := PolicyLog{Origin: name, VKey: fields[1], Verifier: v}
			if len(fields) == 3 {
				if l.URL, err = checkURL(fields[2]); err != nil {
					return nil, bad("log URL: %v", err)
				}
			}
			p.Logs = append(p.Logs, l)
		case "witness":
			if len(fields) < 3 || len(fields) > 4 {
				return nil, bad("want \"witness <name> <vkey> [<url>]\"")
			}
			name := fields[1]
			if name == "none" {
				return nil, bad("\"none\" is predefined and cannot name a witness")
			}
			if _, dup := names[name]; dup {
				return nil, bad("name %q is already defined", name)
			}
			_, material, v, err := parseVKey(fields[2], sigTypeCosignature, sigTypeMLDSA44)
			if err != nil {
				return nil, bad("witness key: %v", err)
			}
			if prev, dup := keys[material]; dup {
				return nil, bad("witness key is the same public key as %s", prev)
			}
			keys[material] = fmt.Sprintf("the key on line %d", lineNo)
			w := PolicyWitness{Name: name, VKey: fields[2], Verifier: v}
			if len(fields) == 4 {
				if w.URL, err = checkURL(fields[3]); err != nil {
					return nil, bad("witness URL: %v", err)
				}
			}
			names[name] = &quorumNode{witness: len(p.Witnesses)}
			p.Witnesses = append(p.Witnesses, w)
		case "group":
			if len(fields) < 4 {
				return nil, bad("want \"group <name> all|any|<k> <name>...\" with at least one member")
			}
			name, threshold, members := fields[1], fields[2], fields[3:]
			if name == "none" {
				return nil, bad("\"none\" is predefined and cannot name a group")
			}
			if _, dup := names[name]; dup {
				return nil, bad("name %q is already defined", name)
			}
			g := &quorumNode{witness: -1}
			seen := map[string]bool{}
			for _, m := range members {
				if m == "none" {
					return nil, bad("\"none\" cannot be a group member")
				}
				child, ok := names[m]
				if !ok {
					return nil, bad("group member %q is not defined on an earlier line", m)
				}
				if seen[m] {
					return nil, bad("group member %q is listed twice", m)
				}
				seen[m] = true
				g.children = append(g.children, child)
			}
			switch threshold {
			case "all":
				g.k = len(members)
			case "any":
				g.k = 1
			default:
				k, err := strconv.Atoi(threshold)
				if err != nil || threshold[0] == '+' || threshold[0] == '-' || k < 1 || k > len(members) {
					return nil, bad("threshold %q: want all, any or a decimal from 1 to %d", threshold, len(members))
				}
				g.k = k
			}
			names[name] = g
			groups++
		case "quorum":
			if len(fields) != 2 {
				return nil, bad("want \"quorum <name>\"")
			}
			if quorumSeen {
				return nil, bad("a second quorum line (a policy has exactly one)")
			}
			quorumSeen = true
			if fields[1] == "none" {
				p.quorum = nil
				break
			}
			q, ok := names[fields[1]]
			if !ok {
				return nil, bad("quorum %q is not defined on an earlier line", fields[1])
			}
			p.quorum = q
		default:
			return nil, bad("unknown keyword %q (want log, witness, group or quorum)", fields[0])
		}
		if len(p.Logs) > maxPolicyItems || len(p.Witnesses) > maxPolicyItems || groups > maxPolicyItems {
			return nil, bad("more than %d logs, witnesses or groups", maxPolicyItems)
		}
	}
	if !quorumSeen {
		return nil, fmt.Errorf("%w: no quorum line (a policy has exactly one; \"quorum none\" asks for no cosignature)", ErrPolicy)
	}
	return p, nil
}

// checkURL accepts an absolute http or https URL.
func checkURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http or https URL", s)
	}
	return s, nil
}

// parseVKey parses a C2SP signed-note verifier key of one of the allowed
// signature types, checking its key ID. It returns the key name, the
// public key material (for duplicate detection: the key without its type
// byte) and a verifier.
func parseVKey(vkey string, allowed ...byte) (name, material string, v note.Verifier, err error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || name == "" || len(hash16) != 8 {
		return "", "", nil, fmt.Errorf("%q is not a verifier key <name>+<hex key ID>+<base64 key>", vkey)
	}
	id, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil {
		return "", "", nil, fmt.Errorf("%q: key ID %q is not 8 hex digits", vkey, hash16)
	}
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) < 2 {
		return "", "", nil, fmt.Errorf("%q: the key is not base64", vkey)
	}
	typ := key[0]
	allowedType := false
	for _, a := range allowed {
		allowedType = allowedType || typ == a
	}
	if !allowedType {
		return "", "", nil, fmt.Errorf("%q has signature type 0x%02x; want %s", vkey, typ, typeNames(allowed))
	}
	if want := keyID(name, key); uint32(id) != want {
		return "", "", nil, fmt.Errorf("%q: key ID %s does not match the key (want %08x)", vkey, hash16, want)
	}
	switch typ {
	case sigTypeEd25519:
		v, err = note.NewVerifier(vkey)
	default:
		v, err = fnote.NewVerifierForCosignatureV1(vkey)
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("%q: %v", vkey, err)
	}
	return name, string(key[1:]), v, nil
}

// keyID is the C2SP signed-note key ID: SHA-256(name || "\n" || type ||
// key)[:4], big-endian.
func keyID(name string, typeAndKey []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(typeAndKey)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func typeNames(types []byte) string {
	var s []string
	for _, t := range types {
		switch t {
		case sigTypeEd25519:
			s = append(s, "0x01 (Ed25519)")
		case sigTypeCosignature:
			s = append(s, "0x04 (cosignature/v1, Ed25519)")
		case sigTypeMLDSA44:
			s = append(s, "0x06 (ML-DSA-44)")
		}
	}
	return strings.Join(s, " or ")
}
