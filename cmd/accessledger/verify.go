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
)

const verifyUsage = `usage: accessledger verify FILE --vkey KEY

Checks an evidence bundle (written by "accessledger export" or GET
/v1/evidence) offline, with no server and no network: the bundle must be
for the log key KEY, its checkpoint must carry a valid signature by that
key and a valid cosignature by each witness it lists, every entry must be
proven by its C2SP tlog-proof to be at its index in that checkpoint's tree,
and no byte of the file may be changed. KEY is the log's verifier key
(origin+keyID+key), or a file holding it (such as <data>/log.vkey).

It exits 0 if everything verifies, and otherwise 1, naming the first entry
that fails and why.

flags:
`

// verifyCmd runs "accessledger verify".
func verifyCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), verifyUsage); fs.PrintDefaults() }
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or a file holding it (required)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("give one bundle FILE to verify")
	}
	if *vkeyArg == "" {
		return errors.New("--vkey is required: the log's verifier key, as the operator publishes it (GET /v1/log, <data>/log.vkey)")
	}
	vkey, err := readVKeyArg(*vkeyArg)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := evbundle.Verify(bufio.NewReaderSize(f, 1<<20), vkey)
	if err != nil {
		return fmt.Errorf("%s does not verify: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "%s: OK: %s\n", pos[0], summaryLine(sum))
	return nil
}

// summaryLine says what a bundle proved.
func summaryLine(s *evbundle.Summary) string {
	w := "no witness cosignatures"
	if len(s.Witnesses) > 0 {
		w = "cosigned by " + strings.Join(s.Witnesses, ", ") + ", keys as the bundle lists them: compare them with the witnesses' own"
	}
	return fmt.Sprintf("%d entries proven in the log %s at size %d (%s); query %q, made %s",
		s.Entries, s.Origin, s.Size, w, s.Query, s.Created.Format("2006-01-02T15:04:05Z"))
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
