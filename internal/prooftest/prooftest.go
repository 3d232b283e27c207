// Package prooftest checks C2SP tlog-proofs (c2sp.org/tlog-proof@v1) with
// third-party code alone, golang.org/x/mod/sumdb's note and tlog, for the
// tests that must not verify our proofs with our own code, and makes
// witness keys as third-party witnesses do.
package prooftest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// CheckTLogProof checks that entry is at the index a tlog-proof names in
// the tree of the checkpoint it embeds, signed by v: note.Open for the
// signature, tlog.CheckRecord for the inclusion.
func CheckTLogProof(entry []byte, proof string, v note.Verifier) error {
	header, rest, _ := strings.Cut(proof, "\n")
	if header != "c2sp.org/tlog-proof@v1" {
		return fmt.Errorf("header %q", header)
	}
	idxLine, rest, _ := strings.Cut(rest, "\n")
	n, err := strconv.ParseInt(strings.TrimPrefix(idxLine, "index "), 10, 64)
	if err != nil {
		return fmt.Errorf("index line %q", idxLine)
	}
	var p tlog.RecordProof
	for {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if line == "" {
			break
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(b) != tlog.HashSize {
			return fmt.Errorf("proof line %q", line)
		}
		p = append(p, tlog.Hash(b))
	}
	signed, err := note.Open([]byte(rest), note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("note.Open: %w", err)
	}
	lines := strings.Split(signed.Text, "\n")
	if len(lines) < 4 || lines[0] != v.Name() {
		return fmt.Errorf("checkpoint %q", signed.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	root, err2 := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || err2 != nil || len(root) != tlog.HashSize {
		return fmt.Errorf("checkpoint %q", signed.Text)
	}
	return tlog.CheckRecord(p, size, tlog.Hash(root), n, tlog.RecordHash(entry))
}

// WitnessKey makes a witness key with transparency-dev/formats, as a
// third-party witness would: its cosignature/v1 signer and verifier key.
func WitnessKey(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, cvkey
}
