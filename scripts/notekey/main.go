// Command notekey writes a new C2SP signed-note Ed25519 signer key (and
// prints its verifier key), for the side-by-side benchmark with Tessera's
// conformance server, which takes such a key file.
//
//	go run ./scripts/notekey -name bench.example/tessera -out tessera.key
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	name := flag.String("name", "bench.example/tessera", "key name (the log origin)")
	out := flag.String("out", "note.key", "file to write the signer key to (mode 0600)")
	flag.Parse()
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notekey:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(skey), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "notekey:", err)
		os.Exit(1)
	}
	fmt.Println(vkey)
}
