package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"testing"

	"github.com/accessledger/accessledger/internal/reftree"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
)

// tilesLogSize is more than 65,536 entries, so that the log has full
// level-0 and level-1 tiles, partial tiles at levels 0 and 1, and a partial
// level-2 tile (70,000 = 273×256 + 112; 273 = 256 + 17 level-1 nodes).
const tilesLogSize = 70_000

// tilesEntry is the content of entry i of the tiles test log. Lengths
// vary, so that bundle offsets are exercised.
func tilesEntry(i int) []byte {
	return fmt.Appendf(nil, `{"tiles-test-entry":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("p"), i%7))
}

// newTilesLog appends tilesLogSize entries directly to the ledger (the
// HTTP write path is tested elsewhere), signing checkpoints at a few
// sizes, and returns the reference tree of the same entries.
func newTilesLog(t *testing.T, ts *testServer) *reftree.Tree {
	t.Helper()
	ref := &reftree.Tree{}
	signAt := []int{773, 65_536, tilesLogSize}
	for n := 0; n < tilesLogSize; {
		k := min(1000, tilesLogSize-n)
		if next := signAt[0]; n+k > next {
			k = next - n
		}
		entries := make([]ledger.Entry, k)
		for i := range entries {
			entries[i].Data = tilesEntry(n + i)
			ref.Add(t, entries[i].Data)
		}
		if _, err := ts.l.Append(bg, entries...); err != nil {
			t.Fatalf("Append(%d entries) = %v", k, err)
		}
		n += k
		if n == signAt[0] {
			ts.sign(t, uint64(n))
			signAt = signAt[1:]
		}
	}
	return ref
}

// newFetcher returns a tessera HTTP fetcher for srv, with a bearer key if
// token is not empty.
func newFetcher(t *testing.T, base string, c *http.Client, token string) *client.HTTPFetcher {
	t.Helper()
	u, err := url.Parse(base + "/")
	if err != nil {
		t.Fatalf("url.Parse(%q) = %v", base, err)
	}
	f, err := client.NewHTTPFetcher(u, c)
	if err != nil {
		t.Fatalf("client.NewHTTPFetcher(%s) = %v", u, err)
	}
	if token != "" {
		f.SetAuthorizationHeader("Bearer " + token)
	}
	return f
}

// TestTilesClient reads the log with tessera's client from the tiles
// endpoints alone and checks everything it derives against the JSON API,
// the ledger and an independently built tree; then it checks tile paths
// one by one.
func TestTilesClient(t *testing.T) {
	ts := newTestServer(t)
	ref := newTilesLog(t, ts)
	public := newAPIServer(t, ts.l, api.Config{PublicTiles: true})
	ctx := context.Background()
	v, err := note.NewVerifier(ts.l.VerifierKey())
	if err != nil {
		t.Fatalf("note.NewVerifier() = %v", err)
	}

	for _, tc := range []struct {
		name    string
		base    string
		c       *http.Client
		token   string
		bundles bool // may read entry bundles
	}{
		{"submitter key", ts.srv.URL, ts.srv.Client(), ts.submitter(), false},
		{"auditor key", ts.srv.URL, ts.srv.Client(), ts.auditor(), true},
		{"public tiles without key", public.URL, public.Client(), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(t, tc.base, tc.c, tc.token)
			cp, raw, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, testOrigin)
			if err != nil {
				t.Fatalf("client.FetchCheckpoint() = %v", err)
			}
			want := ref.Root(t, tilesLogSize)
			if cp.Size != tilesLogSize || !bytes.Equal(cp.Hash, want[:]) {
				t.Fatalf("client.FetchCheckpoint() = size %d root %x, want %d %x", cp.Size, cp.Hash, tilesLogSize, want)
			}
			if latest := ts.l.Latest(); !bytes.Equal(raw, latest.Note) {
				t.Errorf("client.FetchCheckpoint() raw = %q, want the ledger's latest %q", raw, latest.Note)
			}

			pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
			if err != nil {
				t.Fatalf("client.NewProofBuilder(%d) = %v", cp.Size, err)
			}
			for _, i := range []uint64{0, 1, 2, 255, 256, 257, 511, 772, 773, 12_345, 65_279, 65_280, 65_535, 65_536, 65_537, 69_887, 69_888, 69_998, 69_999} {
				got, err := pb.InclusionProof(ctx, i)
				if err != nil {
					t.Fatalf("ProofBuilder.InclusionProof(%d) = %v", i, err)
				}
				want := jsonInclusion(t, ts, i, cp.Size)
				if !slices.EqualFunc(got, want, bytes.Equal) {
					t.Errorf("ProofBuilder.InclusionProof(%d) = %x, want %x (the JSON API's)", i, got, want)
				}
				leaf := tlog.RecordHash(ref.Data[i])
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leaf[:], got, cp.Hash); err != nil {
					t.Errorf("proof.VerifyInclusion(%d, %d) = %v", i, cp.Size, err)
				}
			}
			for _, m := range []uint64{1, 2, 3, 255, 256, 257, 772, 773, 774, 65_535, 65_536, 65_537, 65_792, 69_999, 70_000} {
				for _, n := range []uint64{m, 773, 65_536, 69_999, tilesLogSize} {
					if n < m {
						continue
					}
					got, err := pb.ConsistencyProof(ctx, m, n)
					if err != nil {
						t.Fatalf("ProofBuilder.ConsistencyProof(%d, %d) = %v", m, n, err)
					}
					want := jsonConsistency(t, ts, m, n)
					if !slices.EqualFunc(got, want, bytes.Equal) {
						t.Errorf("ProofBuilder.ConsistencyProof(%d, %d) = %x, want %x (the JSON API's)", m, n, got, want)
					}
					rm, rn := ref.Root(t, m), ref.Root(t, n)
					if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, n, got, rm[:], rn[:]); err != nil {
						t.Errorf("proof.VerifyConsistency(%d, %d) = %v", m, n, err)
					}
				}
			}

			bundles := []uint64{0, 1, 3, 255, 256, 272, 273}
			for _, n := range bundles {
				eb, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, n, cp.Size)
				if !tc.bundles {
					// Entry bundles hold personal data: for auditors only,
					// never public.
					if err == nil {
						t.Fatalf("client.GetEntryBundle(%d) = nil error, want a refusal", n)
					}
					continue
				}
				if err != nil {
					t.Fatalf("client.GetEntryBundle(%d) = %v", n, err)
				}
				wantN := min(256, tilesLogSize-int(n)*256)
				if len(eb.Entries) != wantN {
					t.Fatalf("client.GetEntryBundle(%d) = %d entries, want %d", n, len(eb.Entries), wantN)
				}
				for j, e := range eb.Entries {
					i := int(n)*256 + j
					if got, want := leafHash(e), ref.LeafHash(uint64(i)); got != want {
						t.Fatalf("bundle %d entry %d leaf hash = %x, want %x", n, j, got, want)
					}
				}
			}
		})
	}
	t.Run("paths", func(t *testing.T) { checkTilePaths(t, ts, ref) })
}

func jsonInclusion(t *testing.T, ts *testServer, index, size uint64) [][]byte {
	t.Helper()
	path := fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", index, size)
	r := ts.get(t, path, ts.submitter())
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %v, want 200", path, r)
	}
	var a inclusionAnswer
	decodeStrict(t, path, r.body, &a)
	return decodeHashes(t, a.Hashes)
}

func jsonConsistency(t *testing.T, ts *testServer, from, to uint64) [][]byte {
	t.Helper()
	path := fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", from, to)
	r := ts.get(t, path, ts.submitter())
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %v, want 200", path, r)
	}
	var a consistencyAnswer
	decodeStrict(t, path, r.body, &a)
	return decodeHashes(t, a.Hashes)
}

// checkTilePaths fetches hash tiles and entry bundles by path and compares
// them byte for byte with the ledger and with tiles computed by
// golang.org/x/mod/sumdb/tlog, and checks that non-canonical and
// out-of-range paths are 404. It runs on the log of TestTilesClient, which
// is costly to build.
func checkTilePaths(t *testing.T, ts *testServer, ref *reftree.Tree) {
	ctx := context.Background()

	for _, tc := range []struct {
		path    string
		level   int // -1: entry bundle
		index   uint64
		width   int // 0: full
		entries int // in a bundle
	}{
		{"/tile/0/000", 0, 0, 0, 0},
		{"/tile/0/001", 0, 1, 0, 0},
		{"/tile/0/272", 0, 272, 0, 0},
		{"/tile/0/000.p/1", 0, 0, 1, 0},
		{"/tile/0/000.p/255", 0, 0, 255, 0},
		{"/tile/0/273.p/112", 0, 273, 112, 0},
		{"/tile/0/273.p/5", 0, 273, 5, 0},
		{"/tile/1/000", 1, 0, 0, 0},
		{"/tile/1/000.p/200", 1, 0, 200, 0},
		{"/tile/1/001.p/17", 1, 1, 17, 0},
		{"/tile/1/001.p/1", 1, 1, 1, 0},
		{"/tile/2/000.p/1", 2, 0, 1, 0},
		{"/tile/entries/000", -1, 0, 0, 256},
		{"/tile/entries/272", -1, 272, 0, 256},
		{"/tile/entries/000.p/3", -1, 0, 3, 3},
		{"/tile/entries/273.p/112", -1, 273, 112, 112},
		{"/tile/entries/273.p/1", -1, 273, 1, 1},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := ts.get(t, tc.path, ts.auditor())
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %v, want 200", tc.path, r)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("GET %s Content-Type = %q, want application/octet-stream", tc.path, ct)
			}
			var stored []byte
			var err error
			if tc.level < 0 {
				stored, err = ts.l.ReadEntryBundle(ctx, tc.index, tc.width)
			} else {
				stored, err = ts.l.ReadTile(ctx, uint8(tc.level), tc.index, tc.width)
			}
			if err != nil {
				t.Fatalf("ledger read of %s = %v", tc.path, err)
			}
			if !bytes.Equal(r.body, stored) {
				t.Errorf("GET %s = %d bytes, want the ledger's %d bytes exactly", tc.path, len(r.body), len(stored))
			}
			if tc.level < 0 {
				var want []byte
				for j := range tc.entries {
					e := ref.Data[int(tc.index)*256+j]
					want = append(append(want, byte(len(e)>>8), byte(len(e))), e...)
				}
				if !bytes.Equal(r.body, want) {
					t.Errorf("GET %s = %q, want %q", tc.path, r.body, want)
				}
				return
			}
			w := tc.width
			if w == 0 {
				w = 256
			}
			want, err := tlog.ReadTileData(tlog.Tile{H: 8, L: tc.level, N: int64(tc.index), W: w}, ref)
			if err != nil {
				t.Fatalf("tlog.ReadTileData(%s) = %v", tc.path, err)
			}
			if !bytes.Equal(r.body, want) {
				t.Errorf("GET %s differs from tlog.ReadTileData (%d and %d bytes)", tc.path, len(r.body), len(want))
			}
		})
	}

	for _, path := range []string{
		// Not (yet) in the log.
		"/tile/0/273", "/tile/0/274", "/tile/0/273.p/113", "/tile/0/273.p/255",
		"/tile/1/001", "/tile/1/001.p/18", "/tile/2/000", "/tile/2/000.p/2", "/tile/3/000.p/1",
		"/tile/0/x001/000", "/tile/entries/273", "/tile/entries/273.p/113", "/tile/entries/274",
		// Not canonical.
		"/tile/0/x000/001", "/tile/00/000", "/tile/0/0", "/tile/0/00", "/tile/0/0000",
		"/tile/0/000.p/0", "/tile/0/000.p/256", "/tile/0/000.p/01", "/tile/0/000.p/", "/tile/0/000.p",
		"/tile/0/000/", "/tile/0/000/extra", "/tile/64/000", "/tile/-1/000", "/tile/+0/000", "/tile/a/000",
		"/tile/entries/abc", "/tile/entries/x000/000", "/tile/entries/000.p/0", "/tile/entries/000.p/256",
		"/tile/entries/0", "/tile/entries", "/tile/entries/", "/tile/", "/tile//0/000", "/tile/0//000",
	} {
		t.Run(path, func(t *testing.T) {
			r := ts.get(t, path, ts.auditor())
			wantError(t, "GET "+path, r, http.StatusNotFound)
		})
	}
}

// TestTilesClientNeedsKey checks that a tiles client without a key is
// refused by a server without public tiles, and that the refusal is not
// mistaken for "not found".
func TestTilesClientNeedsKey(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 3)
	ts.sign(t, 3)
	f := newFetcher(t, ts.srv.URL, ts.srv.Client(), "")
	v, err := note.NewVerifier(ts.l.VerifierKey())
	if err != nil {
		t.Fatalf("note.NewVerifier() = %v", err)
	}
	if _, _, _, err := client.FetchCheckpoint(bg, f.ReadCheckpoint, v, testOrigin); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("client.FetchCheckpoint() without a key = %v, want a non-not-found error", err)
	}
	if _, err := f.ReadTile(bg, 0, 0, 3); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("HTTPFetcher.ReadTile(0, 0, 3) without a key = %v, want a non-not-found error", err)
	}
	f.SetAuthorizationHeader("Bearer " + ts.submitter())
	if _, err := f.ReadTile(bg, 0, 0, 3); err != nil {
		t.Errorf("HTTPFetcher.ReadTile(0, 0, 3) with a submitter key = %v, want nil", err)
	}
	if _, err := f.ReadEntryBundle(bg, 0, 3); err == nil {
		t.Errorf("HTTPFetcher.ReadEntryBundle(0, 3) with a submitter key = nil error, want a refusal")
	}
	if mt, _, _ := mime.ParseMediaType(ts.get(t, "/checkpoint", ts.submitter()).header.Get("Content-Type")); mt != "text/plain" {
		t.Errorf("GET /checkpoint Content-Type = %q, want text/plain", mt)
	}
}
