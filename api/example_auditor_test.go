package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// This is how an auditor checks an accessledger log with nothing but
// third-party code: a C2SP tiles client reads the signed checkpoint, the
// entry bundles and the hash tiles, and merkle/proof verifies inclusion.
// README.md shows the same program.
func Example_auditorVerification() {
	ctx := context.Background()
	const (
		logURL      = "http://127.0.0.1:8080/"
		apiKey      = "al_..." // an auditor key
		origin      = "accessledger.local/2501562f"
		verifierKey = "accessledger.local/2501562f+39af0ad9+AcIvTSJqpYJByoGyds19b4fhtJVmlsyyQ0KafBSQC+g/"
		index       = 0 // the entry to check
	)
	u, _ := url.Parse(logURL)
	f, err := client.NewHTTPFetcher(u, http.DefaultClient)
	if err != nil {
		panic(err)
	}
	f.SetAuthorizationHeader("Bearer " + apiKey)
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		panic(err)
	}
	// The checkpoint must carry a valid signature by the log's key.
	cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, origin)
	if err != nil {
		panic(err)
	}
	// The entry, from its entry bundle, and its RFC 6962 leaf hash.
	bundle, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, index/256, cp.Size)
	if err != nil {
		panic(err)
	}
	entry := bundle.Entries[index%256]
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	// Its inclusion proof, built from the hash tiles, against the root.
	pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	if err != nil {
		panic(err)
	}
	hashes, err := pb.InclusionProof(ctx, index)
	if err != nil {
		panic(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, leaf, hashes, cp.Hash); err != nil {
		panic(err)
	}
	fmt.Printf("entry %d is in the log of size %d: %s\n", index, cp.Size, entry)
}
