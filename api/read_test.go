package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/accessledger/accessledger/internal/reftree"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tesseraapi "github.com/transparency-dev/tessera/api"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/accessledger/accessledger/api"
)

// appendHTTP posts n valid events (numbered from first) in batches and
// fails unless all are created.
func (ts *testServer) appendHTTP(t testing.TB, first, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(250, n-done)
		r := ts.post(t, "application/json", batchJSON(events(t, first+done, k)...))
		if r.status != http.StatusCreated {
			t.Fatalf("POST %d events = %v, want 201", k, r)
		}
		done += k
	}
}

// sign signs a checkpoint and fails unless it covers want entries.
func (ts *testServer) sign(t testing.TB, want uint64) {
	t.Helper()
	cp, err := ts.l.SignCheckpoint(bg)
	if err != nil {
		t.Fatalf("SignCheckpoint() = %v", err)
	}
	if cp.Size != want {
		t.Fatalf("SignCheckpoint() = size %d, want %d", cp.Size, want)
	}
}

func TestReadEndpointsBadInput(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 4)
	ts.sign(t, 4)
	ts.appendHTTP(t, 4, 6)
	ts.sign(t, 10)

	unknown := sha256b64url([]byte("not a leaf"))
	short := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	long := base64.RawURLEncoding.EncodeToString(make([]byte, 33))
	known := ts.getEntry(t, 3).LeafHash

	// Unknown paths are 404 even without a key.
	for _, path := range []string{"/", "/v1/nope", "/admin", "/checkpoint/"} {
		wantError(t, "GET "+path+" without a key", ts.get(t, path, ""), http.StatusNotFound)
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		// Entries.
		{"GET", "/v1/entries/-1", 400},
		{"GET", "/v1/entries/abc", 400},
		{"GET", "/v1/entries/1.5", 400},
		{"GET", "/v1/entries/0x1", 400},
		{"GET", "/v1/entries/+1", 400},
		{"GET", "/v1/entries/03", 400}, // one spelling per entry
		{"GET", "/v1/entries/00", 400},
		{"GET", "/v1/entries/%201", 400},
		{"GET", "/v1/entries/99999999999999999999999", 400},
		{"GET", "/v1/entries/18446744073709551616", 400},
		{"GET", "/v1/entries/10", 404},
		{"GET", "/v1/entries/18446744073709551615", 404},
		{"GET", "/v1/entries/", 404},
		{"GET", "/v1/entries", 404},

		// Inclusion proofs.
		{"GET", "/v1/proofs/inclusion", 400},
		{"GET", "/v1/proofs/inclusion?size=10", 400},
		{"GET", "/v1/proofs/inclusion?index=1&leaf_hash=" + url.QueryEscape(known), 400},
		{"GET", "/v1/proofs/inclusion?index=", 400},
		{"GET", "/v1/proofs/inclusion?index=-1", 400},
		{"GET", "/v1/proofs/inclusion?index=x", 400},
		{"GET", "/v1/proofs/inclusion?index=1.0", 400},
		{"GET", "/v1/proofs/inclusion?index=01&size=4", 400},
		{"GET", "/v1/proofs/inclusion?index=10", 400},
		{"GET", "/v1/proofs/inclusion?index=4&size=4", 400},
		{"GET", "/v1/proofs/inclusion?index=0&size=0", 400},
		{"GET", "/v1/proofs/inclusion?index=0&size=11", 400},
		{"GET", "/v1/proofs/inclusion?index=0&size=18446744073709551615", 400},
		{"GET", "/v1/proofs/inclusion?index=0&size=x", 400},
		{"GET", "/v1/proofs/inclusion?leaf_hash=", 400},
		{"GET", "/v1/proofs/inclusion?leaf_hash=!!!notbase64!!!", 400},
		{"GET", "/v1/proofs/inclusion?leaf_hash=" + short, 400},
		{"GET", "/v1/proofs/inclusion?leaf_hash=" + long, 400},
		{"GET", "/v1/proofs/inclusion?leaf_hash=" + unknown, 404},
		{"GET", "/v1/proofs/inclusion?leaf_hash=" + url.QueryEscape(known) + "&size=3", 404},
		{"GET", "/v1/proofs/inclusion?leaf_hash=" + url.QueryEscape(known) + "&size=11", 400},

		// Consistency proofs.
		{"GET", "/v1/proofs/consistency", 400},
		{"GET", "/v1/proofs/consistency?to=10", 400},
		{"GET", "/v1/proofs/consistency?from=", 400},
		{"GET", "/v1/proofs/consistency?from=0", 400},
		{"GET", "/v1/proofs/consistency?from=0&to=10", 400},
		{"GET", "/v1/proofs/consistency?from=5&to=4", 400},
		{"GET", "/v1/proofs/consistency?from=11", 400},
		{"GET", "/v1/proofs/consistency?from=4&to=11", 400},
		{"GET", "/v1/proofs/consistency?from=abc", 400},
		{"GET", "/v1/proofs/consistency?from=4&to=abc", 400},
		{"GET", "/v1/proofs/consistency?from=-4", 400},

		// Checkpoints.
		{"GET", "/v1/checkpoints/5", 404},
		{"GET", "/v1/checkpoints/11", 404},
		{"GET", "/v1/checkpoints/abc", 400},
		{"GET", "/v1/checkpoints/-1", 400},
		{"GET", "/v1/checkpoints/99999999999999999999", 400},
		{"GET", "/v1/checkpoints/", 404},

		// Unknown paths.
		{"GET", "/", 404},
		{"GET", "/v1", 404},
		{"GET", "/v1/nope", 404},
		{"GET", "/v2/events", 404},
		{"GET", "/checkpoint/extra", 404},
		{"GET", "/tile", 404},
		{"GET", "/v1/log/extra", 404},

		// Wrong methods.
		{"PUT", "/v1/events", 405},
		{"GET", "/v1/events", 503}, // queries (api/query.go), without an index
		{"DELETE", "/v1/events", 405},
		{"DELETE", "/checkpoint", 405},
		{"POST", "/checkpoint", 405},
		{"PUT", "/tile/0/000.p/10", 405},
		{"DELETE", "/v1/entries/0", 405},
		{"POST", "/v1/proofs/inclusion?index=0", 405},

		// Trailing slashes are not redirected.
		{"POST", "/v1/events/", 404},
		{"GET", "/checkpoint/", 404},
		{"GET", "/v1/log/", 404},
		{"GET", "/v1/entries/0/", 404},
		{"GET", "/v1/proofs/inclusion/?index=0", 404},
		{"GET", "/v1/checkpoints/4/", 404},
		{"GET", "/healthz/", 404},
		{"GET", "/metrics/", 404},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body []byte
			ct := ""
			if tc.method == "POST" || tc.method == "PUT" {
				body, ct = eventJSON(t, 99), "application/json"
			}
			before := size(ts.l)
			r := call(t, ts.srv.URL, tc.method, tc.path, ts.admin(), ct, body)
			wantError(t, tc.method+" "+tc.path, r, tc.status)
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("%s %s: Location %q, want no redirect", tc.method, tc.path, loc)
			}
			if got := size(ts.l); got != before {
				t.Errorf("Size() = %d, want %d (unchanged)", got, before)
			}
		})
	}
}

func sha256b64url(data []byte) string {
	h := leafHash(data)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// logInfo is the answer of GET /v1/log.
type logInfo struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	Size        uint64 `json:"size"`
	RootHash    string `json:"root_hash"`
}

type inclusionAnswer struct {
	Index  uint64   `json:"index"`
	Size   uint64   `json:"size"`
	Hashes []string `json:"hashes"`
}

type consistencyAnswer struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes []string `json:"hashes"`
}

// openCheckpoint verifies a served checkpoint with the independent note and
// log-format libraries and returns its size and root.
func openCheckpoint(t testing.TB, what string, raw []byte, origin string, v note.Verifier) (uint64, tlog.Hash) {
	t.Helper()
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(%s) = %v\n%s", what, err, raw)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != origin || n.Sigs[0].Hash != v.KeyHash() {
		t.Errorf("note.Open(%s) signatures = %+v, want one by %s+%08x", what, n.Sigs, origin, v.KeyHash())
	}
	cp, _, _, err := log.ParseCheckpoint(raw, origin, v)
	if err != nil {
		t.Fatalf("log.ParseCheckpoint(%s) = %v", what, err)
	}
	if cp.Origin != origin || len(cp.Hash) != tlog.HashSize {
		t.Fatalf("log.ParseCheckpoint(%s) = origin %q hash %x, want origin %q and a 32-byte hash", what, cp.Origin, cp.Hash, origin)
	}
	var h tlog.Hash
	copy(h[:], cp.Hash)
	return cp.Size, h
}

// TestProofsVerifyIndependently appends events over HTTP, signs checkpoints
// at several sizes and verifies every checkpoint and proof the API serves
// with golang.org/x/mod/sumdb (note, tlog), transparency-dev/formats and
// transparency-dev/merkle, against a tree rebuilt here from the served
// entry bundles.
func TestProofsVerifyIndependently(t *testing.T) {
	ts := newTestServer(t)
	sizes := []uint64{1, 2, 100, 256, 257, 513, 600}
	prev := uint64(0)
	for _, s := range sizes {
		ts.appendHTTP(t, int(prev), int(s-prev))
		ts.sign(t, s)
		prev = s
	}
	const latest = 600
	key := ts.submitter() // submitters may verify; auditors too, tested in auth.

	// The log's identity, and its latest checkpoint.
	r := ts.get(t, "/v1/log", key)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/log = %v, want 200", r)
	}
	var info logInfo
	decodeStrict(t, "GET /v1/log", r.body, &info)
	v, err := note.NewVerifier(info.VerifierKey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", info.VerifierKey, err)
	}
	if info.Origin != testOrigin || v.Name() != testOrigin || info.Size != latest {
		t.Errorf("GET /v1/log = origin %q key name %q size %d, want %q, %q, %d", info.Origin, v.Name(), info.Size, testOrigin, testOrigin, latest)
	}

	r = ts.get(t, "/checkpoint", key)
	if r.status != http.StatusOK {
		t.Fatalf("GET /checkpoint = %v, want 200", r)
	}
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != "text/plain" {
		t.Errorf("GET /checkpoint Content-Type = %q, want text/plain", r.header.Get("Content-Type"))
	}
	cpSize, cpRoot := openCheckpoint(t, "/checkpoint", r.body, info.Origin, v)
	if cpSize != latest || b64(cpRoot[:]) != info.RootHash {
		t.Errorf("/checkpoint = size %d root %s, want size %d root %s (as /v1/log)", cpSize, b64(cpRoot[:]), latest, info.RootHash)
	}

	// Rebuild the tree here from the entry bundles.
	ref := &reftree.Tree{}
	for n := uint64(0); n*256 < latest; n++ {
		path := fmt.Sprintf("/tile/entries/%03d", n)
		if w := latest - n*256; w < 256 {
			path += fmt.Sprintf(".p/%d", w)
		}
		r := ts.get(t, path, ts.auditor())
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %v, want 200", path, r)
		}
		var eb tesseraapi.EntryBundle
		if err := eb.UnmarshalText(r.body); err != nil {
			t.Fatalf("EntryBundle.UnmarshalText(%s) = %v", path, err)
		}
		ref.Add(t, eb.Entries...)
	}
	if uint64(len(ref.Data)) != latest {
		t.Fatalf("entry bundles hold %d entries, want %d", len(ref.Data), latest)
	}
	if want := ref.Root(t, latest); cpRoot != want {
		t.Fatalf("/checkpoint root = %x, want %x (tlog root of the served entries)", cpRoot, want)
	}

	// Every checkpoint, as served at /v1/checkpoints/<size>.
	roots := map[uint64]tlog.Hash{}
	for _, s := range sizes {
		path := fmt.Sprintf("/v1/checkpoints/%d", s)
		r := ts.get(t, path, key)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %v, want 200", path, r)
		}
		gotSize, root := openCheckpoint(t, path, r.body, info.Origin, v)
		if want := ref.Root(t, s); gotSize != s || root != want {
			t.Errorf("GET %s = size %d root %x, want size %d root %x", path, gotSize, root, s, want)
		}
		roots[s] = root
	}

	hasher := rfc6962.DefaultHasher
	for _, s := range sizes {
		root := roots[s]
		for _, i := range slices.Compact([]uint64{0, 1, s / 2, s - 2, s - 1}) {
			if i >= s {
				continue
			}
			leaf := tlog.RecordHash(ref.Data[i])
			byIndex := fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", i, s)
			byHash := fmt.Sprintf("/v1/proofs/inclusion?leaf_hash=%s&size=%d", base64.RawURLEncoding.EncodeToString(leaf[:]), s)
			byStdHash := fmt.Sprintf("/v1/proofs/inclusion?leaf_hash=%s&size=%d", url.QueryEscape(b64(leaf[:])), s)
			paths := []string{byIndex, byHash, byStdHash}
			if s == latest {
				paths = append(paths, fmt.Sprintf("/v1/proofs/inclusion?index=%d", i))
			}
			var first []string
			for _, path := range paths {
				r := ts.get(t, path, key)
				if r.status != http.StatusOK {
					t.Fatalf("GET %s = %v, want 200", path, r)
				}
				var a inclusionAnswer
				decodeStrict(t, path, r.body, &a)
				if a.Index != i || a.Size != s {
					t.Errorf("GET %s = index %d size %d, want %d %d", path, a.Index, a.Size, i, s)
				}
				p := decodeHashes(t, a.Hashes)
				if err := tlog.CheckRecord(reftree.ToTlog(t, p), int64(s), root, int64(i), leaf); err != nil {
					t.Errorf("tlog.CheckRecord(GET %s) = %v", path, err)
				}
				if err := proof.VerifyInclusion(hasher, i, s, leaf[:], p, root[:]); err != nil {
					t.Errorf("proof.VerifyInclusion(GET %s) = %v", path, err)
				}
				if first == nil {
					first = a.Hashes
				} else if !slices.Equal(a.Hashes, first) {
					t.Errorf("GET %s = %v, want the same proof as %s: %v", path, a.Hashes, byIndex, first)
				}
			}
		}
	}

	// Consistency between every pair of checkpoints.
	for ai, a := range sizes {
		for _, b := range sizes[ai:] {
			paths := []string{fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", a, b)}
			if b == latest {
				paths = append(paths, fmt.Sprintf("/v1/proofs/consistency?from=%d", a))
			}
			for _, path := range paths {
				r := ts.get(t, path, key)
				if r.status != http.StatusOK {
					t.Fatalf("GET %s = %v, want 200", path, r)
				}
				var c consistencyAnswer
				decodeStrict(t, path, r.body, &c)
				if c.From != a || c.To != b {
					t.Errorf("GET %s = from %d to %d, want %d %d", path, c.From, c.To, a, b)
				}
				p := decodeHashes(t, c.Hashes)
				if err := tlog.CheckTree(reftree.ToTlog(t, p), int64(b), roots[b], int64(a), roots[a]); err != nil {
					t.Errorf("tlog.CheckTree(GET %s) = %v", path, err)
				}
				ra, rb := roots[a], roots[b]
				if err := proof.VerifyConsistency(hasher, a, b, p, ra[:], rb[:]); err != nil {
					t.Errorf("proof.VerifyConsistency(GET %s) = %v", path, err)
				}
			}
		}
	}

	// The verifiers above can fail: a proof with any one hash corrupted,
	// or checked for another index, is rejected.
	leaf := tlog.RecordHash(ref.Data[299])
	var inc inclusionAnswer
	decodeStrict(t, "inclusion", ts.get(t, "/v1/proofs/inclusion?index=299", key).body, &inc)
	incProof := decodeHashes(t, inc.Hashes)
	if err := proof.VerifyInclusion(hasher, 300, latest, leaf[:], incProof, cpRoot[:]); err == nil {
		t.Errorf("proof.VerifyInclusion(proof of 299 checked for 300) = nil, want an error")
	}
	var con consistencyAnswer
	decodeStrict(t, "consistency", ts.get(t, "/v1/proofs/consistency?from=257", key).body, &con)
	conProof := decodeHashes(t, con.Hashes)
	for _, tc := range []struct {
		name  string
		p     [][]byte
		check func([][]byte) (error, error)
	}{
		{"inclusion", incProof, func(p [][]byte) (error, error) {
			return tlog.CheckRecord(reftree.ToTlog(t, p), latest, cpRoot, 299, leaf), proof.VerifyInclusion(hasher, 299, latest, leaf[:], p, cpRoot[:])
		}},
		{"consistency", conProof, func(p [][]byte) (error, error) {
			r257 := roots[257]
			return tlog.CheckTree(reftree.ToTlog(t, p), latest, cpRoot, 257, r257), proof.VerifyConsistency(hasher, 257, latest, p, r257[:], cpRoot[:])
		}},
	} {
		for i := range tc.p {
			bad := make([][]byte, len(tc.p))
			for j := range tc.p {
				bad[j] = bytes.Clone(tc.p[j])
			}
			bad[i][i%32] ^= 1
			if e1, e2 := tc.check(bad); e1 == nil || e2 == nil {
				t.Errorf("%s proof with hash %d corrupted: tlog = %v, merkle = %v; want both to fail", tc.name, i, e1, e2)
			}
		}
	}
}

// TestReadAnswers checks the shape and headers of the read answers.
func TestReadAnswers(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 3)
	ts.sign(t, 3)

	for _, tc := range []struct {
		path        string
		contentType string
	}{
		{"/v1/log", "application/json"},
		{"/v1/entries/2", "application/json"},
		{"/v1/proofs/inclusion?index=1", "application/json"},
		{"/v1/proofs/consistency?from=1", "application/json"},
		{"/v1/checkpoints", "application/json"},
		{"/v1/checkpoints/3", "text/plain"},
		{"/checkpoint", "text/plain"},
		{"/tile/0/000.p/3", "application/octet-stream"},
		{"/tile/entries/000.p/3", "application/octet-stream"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := ts.get(t, tc.path, ts.auditor())
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %v, want 200", tc.path, r)
			}
			if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != tc.contentType {
				t.Errorf("GET %s Content-Type = %q, want %s", tc.path, r.header.Get("Content-Type"), tc.contentType)
			}
			if tc.contentType == "application/json" && !json.Valid(r.body) {
				t.Errorf("GET %s body %q is not JSON", tc.path, r.body)
			}
		})
	}
}

// TestCacheControl checks who may cache each kind of answer, and for how
// long: what needs a key is private, only what public_tiles serves without
// one is public; tiles and bundles (partial ones too), entries,
// checkpoints by size and proofs for an explicit size are immutable; what
// follows the latest checkpoint must be revalidated; errors and writes are
// never stored.
func TestCacheControl(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 300)
	ts.sign(t, 300)
	kr, tokens := newKeys(t)
	public := newAPIServer(t, ts.l, api.Config{Keys: kr, PublicTiles: true})

	const (
		immutable = "max-age=31536000, immutable"
		latest    = "no-cache"
	)
	for _, tc := range []struct {
		method, path string
		status       int
		cache        string // without the scope; the full value if noScope
		publicRead   bool   // served without a key with public_tiles
		noScope      bool
	}{
		{"GET", "/checkpoint", 200, latest, true, false},
		{"GET", "/v1/log", 200, latest, true, false},
		{"GET", "/v1/checkpoints", 200, latest, true, false},
		{"GET", "/v1/checkpoints/300", 200, immutable, true, false},
		{"GET", "/tile/0/000", 200, immutable, true, false},
		{"GET", "/tile/0/001.p/44", 200, immutable, true, false},
		{"GET", "/tile/1/000.p/1", 200, immutable, true, false},
		{"GET", "/tile/entries/000", 200, immutable, false, false},
		{"GET", "/tile/entries/001.p/44", 200, immutable, false, false},
		{"GET", "/v1/entries/7", 200, immutable, false, false},
		{"GET", "/v1/proofs/inclusion?index=7&size=300", 200, immutable, true, false},
		{"GET", "/v1/proofs/inclusion?index=7", 200, latest, true, false},
		{"GET", "/v1/proofs/consistency?from=3&to=300", 200, immutable, true, false},
		{"GET", "/v1/proofs/consistency?from=3", 200, latest, true, false},
		{"POST", "/v1/events", 201, "private, no-store", false, true},
		{"GET", "/metrics", 200, "private, no-store", false, true},
		{"GET", "/healthz", 200, "no-store", false, true},
		{"GET", "/readyz", 200, "no-store", false, true},
		// Errors, including a tile that may exist later.
		{"GET", "/tile/0/002", 404, "no-store", false, true},
		{"GET", "/v1/entries/400", 404, "no-store", false, true},
		{"GET", "/v1/checkpoints/299", 404, "no-store", false, true},
		{"GET", "/v1/proofs/inclusion?index=x", 400, "no-store", false, true},
		{"GET", "/nope", 404, "no-store", false, true},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body []byte
			if tc.method == "POST" {
				body = eventJSON(t, 1000)
			}
			r := call(t, ts.srv.URL, tc.method, tc.path, ts.admin(), "application/json", body)
			want := tc.cache
			if !tc.noScope {
				want = "private, " + tc.cache
			}
			if r.status != tc.status || r.header.Get("Cache-Control") != want {
				t.Errorf("%s %s with a key = %d, Cache-Control %q; want %d, %q", tc.method, tc.path, r.status, r.header.Get("Cache-Control"), tc.status, want)
			}
			if strings.Contains(r.header.Get("Cache-Control"), "public") {
				t.Errorf("%s %s with a key: Cache-Control %q is public", tc.method, tc.path, r.header.Get("Cache-Control"))
			}
			if !tc.publicRead {
				return
			}
			// public_tiles: without a key the answer is public; with one
			// it is the same answer, so public too.
			for _, token := range []string{"", tokens[api.RoleAuditor]} {
				r := call(t, public.URL, tc.method, tc.path, token, "", nil)
				if want := "public, " + tc.cache; r.status != tc.status || r.header.Get("Cache-Control") != want {
					t.Errorf("%s %s, public tiles, key %v = %d, Cache-Control %q; want %d, %q", tc.method, tc.path, token != "", r.status, r.header.Get("Cache-Control"), tc.status, want)
				}
			}
		})
	}
	// Entry bundles are never public, even with public_tiles.
	r := call(t, public.URL, "GET", "/tile/entries/000", tokens[api.RoleAuditor], "", nil)
	if cc := r.header.Get("Cache-Control"); r.status != 200 || cc != "private, "+immutable {
		t.Errorf("GET /tile/entries/000, public tiles, as auditor = %d, Cache-Control %q; want 200, %q", r.status, cc, "private, "+immutable)
	}
}

// TestInclusionByLeafHashEncodings checks that leaf_hash takes the
// standard base64 that every answer uses, as well as URL-safe base64,
// padded or not, and escaped or not in the query string (an unescaped "+"
// arrives as a space).
func TestInclusionByLeafHashEncodings(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 40)
	ts.sign(t, 40)
	// An entry whose standard base64 leaf hash has a "+", which a query
	// string turns into a space unless escaped.
	var index uint64
	var std string
	for i := range uint64(40) {
		if h := ts.getEntry(t, i).LeafHash; strings.Contains(h, "+") {
			index, std = i, h
			break
		}
	}
	if std == "" {
		t.Fatal("no leaf hash of 40 has a \"+\" in base64")
	}
	raw, err := base64.StdEncoding.DecodeString(std)
	if err != nil {
		t.Fatalf("base64.StdEncoding.DecodeString(%q) = %v", std, err)
	}
	for _, tc := range []struct{ name, query string }{
		{"standard, unescaped", std},
		{"standard, escaped", url.QueryEscape(std)},
		{"standard unpadded, unescaped", strings.TrimRight(std, "=")},
		{"url-safe unpadded", base64.RawURLEncoding.EncodeToString(raw)},
		{"url-safe padded", url.QueryEscape(base64.URLEncoding.EncodeToString(raw))},
		{"url-safe padded, unescaped", base64.URLEncoding.EncodeToString(raw)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/proofs/inclusion?size=40&leaf_hash=" + tc.query
			r := ts.get(t, path, ts.submitter())
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %v, want 200", path, r)
			}
			var a inclusionAnswer
			decodeStrict(t, "inclusion proof", r.body, &a)
			if a.Index != index || a.Size != 40 {
				t.Errorf("GET %s = index %d size %d, want index %d size 40", path, a.Index, a.Size, index)
			}
		})
	}
}

// checkpointPage is the answer of GET /v1/checkpoints.
type checkpointPage struct {
	Checkpoints []struct {
		Size     uint64 `json:"size"`
		RootHash string `json:"root_hash"`
	} `json:"checkpoints"`
	Next *uint64 `json:"next"`
}

// TestCheckpointList pages through the signed checkpoints and checks each
// listed root against the signed checkpoint of its size.
func TestCheckpointList(t *testing.T) {
	ts := newTestServer(t)
	signed := []uint64{0}
	for _, n := range []uint64{1, 2, 5, 10} {
		ts.appendHTTP(t, int(size(ts.l)), int(n-size(ts.l)))
		ts.sign(t, n)
		signed = append(signed, n)
	}
	var info logInfo
	decodeStrict(t, "log", ts.get(t, "/v1/log", ts.submitter()).body, &info)
	v, err := note.NewVerifier(info.VerifierKey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", info.VerifierKey, err)
	}

	next := func(n uint64) *uint64 { return &n }
	for _, tc := range []struct {
		query string
		sizes []uint64
		next  *uint64
	}{
		{"", signed, nil},
		{"?limit=2", []uint64{0, 1}, next(2)},
		{"?from=2&limit=2", []uint64{2, 5}, next(10)},
		{"?from=10&limit=2", []uint64{10}, nil},
		{"?from=3", []uint64{5, 10}, nil},
		{"?from=5&limit=1", []uint64{5}, next(10)},
		{"?from=11", nil, nil},
		{"?limit=1000", signed, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			path := "/v1/checkpoints" + tc.query
			r := ts.get(t, path, ts.auditor())
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %v, want 200", path, r)
			}
			var page checkpointPage
			decodeStrict(t, "checkpoint page", r.body, &page)
			if page.Checkpoints == nil {
				t.Errorf("GET %s = %s, want \"checkpoints\" to be an array, even if empty", path, r.body)
			}
			var sizes []uint64
			for _, cp := range page.Checkpoints {
				sizes = append(sizes, cp.Size)
				raw := ts.get(t, fmt.Sprintf("/v1/checkpoints/%d", cp.Size), ts.auditor())
				n, root := openCheckpoint(t, fmt.Sprintf("checkpoint %d", cp.Size), raw.body, info.Origin, v)
				if n != cp.Size || b64(root[:]) != cp.RootHash {
					t.Errorf("GET %s lists size %d root %s, but its signed checkpoint has size %d root %s", path, cp.Size, cp.RootHash, n, b64(root[:]))
				}
			}
			if !slices.Equal(sizes, tc.sizes) || fmt.Sprint(deref(page.Next)) != fmt.Sprint(deref(tc.next)) {
				t.Errorf("GET %s = sizes %v next %v, want %v next %v", path, sizes, deref(page.Next), tc.sizes, deref(tc.next))
			}
		})
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?from=-1", "?from=1.5"} {
		wantError(t, "GET /v1/checkpoints"+q, ts.get(t, "/v1/checkpoints"+q, ts.auditor()), http.StatusBadRequest)
	}
}

// deref shows an optional number: its value, or "none".
func deref(p *uint64) any {
	if p == nil {
		return "none"
	}
	return *p
}
