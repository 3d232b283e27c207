package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	evbundle "github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/witness"
)

const verifyUsage = `usage: accessledger verify FILE --vkey KEY [--policy POLICY]

Checks an evidence bundle (written by "accessledger export" or GET
/v1/evidence) offline, with no server and no network: the bundle must be
for the log key KEY, its checkpoint must carry a valid signature by that
key and a valid cosignature by each witness it lists, every entry must be
proven by its C2SP tlog-proof to be at its index in that checkpoint's tree,
and no byte of the file may be changed. KEY is the log's verifier key
(origin+keyID+key), or a file holding it (such as <data>/log.vkey).

Without --policy the witnesses are NOT authenticated: their keys are the
ones the bundle lists, and anyone, the log's operator included, can make a
key with a witness's name and 32-bit key ID. It prints each cosigner's full
key, to compare with the witness's own. With --policy POLICY, a C2SP
tlog-policy file (as "audit --policy" and "serve --witness-policy" read),
the cosignatures are checked against the policy's witness keys only, and
its quorum must be met. If --vkey is not given, the log key is the
policy's, which must then have one log line; if it is, the policy's log
lines for its origin, if any, must name it.

It exits 0 if everything verifies; 1 if the bundle does not, naming the
first entry that fails and why, or the witnesses missing from the quorum;
and 2 if the command line is wrong (an unknown flag, no or a bad --vkey, a
policy that cannot be read or contradicts --vkey, a FILE that cannot be
opened).

flags:
`

// verifyCmd runs "accessledger verify". A wrong command line exits 2
// (exitUsage), as for audit, so that a bundle that does not verify (exit
// 1) is told from a mistyped command.
func verifyCmd(args []string, stdout, stderr io.Writer) error {
	usage := func(err error) error { return exitError{err, exitUsage} }
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), verifyUsage); fs.PrintDefaults() }
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or a file holding it (required unless --policy names the log)")
	policyArg := fs.String("policy", "", "C2SP tlog-policy file: check the cosignatures against its witness keys only and require its quorum")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return usage(err)
	}
	if len(pos) != 1 {
		return usage(errors.New("give one bundle FILE to verify"))
	}
	var opts evbundle.VerifyOptions
	var policy *witness.Policy
	if *policyArg != "" {
		if policy, err = loadPolicy(*policyArg); err != nil {
			return usage(err)
		}
		opts.Witnesses = trustedWitnesses(policy)
	}
	var vkey string
	switch {
	case *vkeyArg != "":
		// As audit: --vkey is the log key; the policy's log lines are
		// only a default.
		if vkey, err = readVKeyArg(*vkeyArg); err != nil {
			return usage(err)
		}
		if err := vkeyAgreesWithPolicy(vkey, policy, *policyArg); err != nil {
			return usage(err)
		}
	case policy != nil && len(policy.Logs) == 1:
		vkey = policy.Logs[0].VKey
	case policy != nil && len(policy.Logs) > 1:
		return usage(fmt.Errorf("--vkey is required: the policy %s lists %d logs", *policyArg, len(policy.Logs)))
	default:
		return usage(errors.New("--vkey is required: the log's verifier key, as the operator publishes it (GET /v1/log, <data>/log.vkey), or a --policy with its log line"))
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return usage(err)
	}
	defer f.Close()
	sum, err := evbundle.VerifyWith(bufio.NewReaderSize(f, 1<<20), vkey, opts)
	if err != nil {
		return fmt.Errorf("%s does not verify: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "%s: OK: %s\n", pos[0], summaryLine(sum))
	return nil
}

// vkeyAgreesWithPolicy refuses a --vkey that the policy contradicts: the
// policy has log lines for the key's origin and none of them is this key.
// One of the two is wrong, and verifying with either would hide it. A
// policy without a line for the origin (a policy of witnesses only, or of
// other logs) says nothing of the key.
func vkeyAgreesWithPolicy(vkey string, policy *witness.Policy, path string) error {
	if policy == nil {
		return nil
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil // VerifyWith says what is wrong with it
	}
	var listed []string
	for _, l := range policy.Logs {
		if l.Origin != v.Name() {
			continue
		}
		if l.Verifier.KeyHash() == v.KeyHash() && l.VKey == vkey {
			return nil
		}
		listed = append(listed, l.VKey)
	}
	if len(listed) == 0 {
		return nil
	}
	return fmt.Errorf("--vkey %s is not the key the policy %s gives the log %s (%s): check which is the log's key", vkey, path, v.Name(), strings.Join(listed, ", "))
}

// trustedWitnesses is a policy's witnesses and quorum, for the evidence
// verifier.
func trustedWitnesses(p *witness.Policy) *evbundle.WitnessPolicy {
	wp := &evbundle.WitnessPolicy{Quorum: p.Satisfied}
	for _, w := range p.Witnesses {
		wp.Witnesses = append(wp.Witnesses, evbundle.TrustedWitness{Name: w.Name, VKey: w.VKey})
	}
	return wp
}

// summaryLine says what a bundle proved: a line, then one line per
// cosigner with its full verifier key, and a warning if the witnesses
// are not authenticated.
func summaryLine(s *evbundle.Summary) string {
	var w string
	switch {
	case s.WitnessesTrusted:
		var names []string
		for _, c := range s.Cosigners {
			if c.Trusted != "" {
				names = append(names, c.Trusted)
			}
		}
		w = "the witness policy's quorum is met"
		if len(names) > 0 {
			w += ": cosigned by " + strings.Join(names, ", ")
		}
	case len(s.Cosigners) > 0:
		w = fmt.Sprintf("cosigned by %d witness(es), NOT authenticated", len(s.Cosigners))
	default:
		w = "no witness cosignatures"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries proven in the log %s at size %d (%s); query %q, made %s",
		s.Entries, s.Origin, s.Size, w, s.Query, s.Created.Format("2006-01-02T15:04:05Z"))
	for _, c := range s.Cosigners {
		switch {
		case c.Trusted != "":
			fmt.Fprintf(&b, "\n  cosigner %s: %s (the policy's key)", c.Trusted, c.VKey)
		case s.WitnessesTrusted:
			fmt.Fprintf(&b, "\n  cosigner %s (the bundle's key, not in the policy: not authenticated)", c.VKey)
		default:
			fmt.Fprintf(&b, "\n  cosigner %s (the bundle's key)", c.VKey)
		}
	}
	if !s.WitnessesTrusted && len(s.Cosigners) > 0 {
		b.WriteString("\n  warning: the witnesses are not authenticated: their keys are taken from the bundle, and anyone," +
			" the log's operator included, can make a key with a witness's name and 32-bit key ID. Compare each key" +
			" above with the witness's own, obtained out of band, or verify with a witness policy (accessledger verify --policy FILE).")
	}
	return b.String()
}

// readVKeyArg returns a verifier key given as such or as a file holding
// it.
func readVKeyArg(arg string) (string, error) {
	_, verr := note.NewVerifier(arg)
	if verr == nil {
		return arg, nil
	}
	raw, err := os.ReadFile(arg)
	if err != nil {
		// Which was meant is not known: say why neither reading works.
		shown := fmt.Sprintf("%q", arg)
		if len(arg) > 200 || strings.ContainsAny(arg, "\n\r") || strings.Contains(arg, "PRIVATE") {
			shown = fmt.Sprintf("(%d bytes, not shown: it may be a secret)", len(arg))
		}
		return "", fmt.Errorf("--vkey %s is neither a verifier key (%v) nor a readable file (%w)", shown, verr, err)
	}
	key := strings.TrimSpace(string(raw))
	if _, err := note.NewVerifier(key); err != nil {
		return "", fmt.Errorf("--vkey file %s does not hold a verifier key: %w", arg, err)
	}
	return key, nil
}
