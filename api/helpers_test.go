package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
)

const testOrigin = "example.com/accessledger/api-test"

// bg is the context of calls that a test does not bound.
var bg = context.Background()

// testServer is a real ledger in a temporary directory behind a real API
// server on loopback, with one API key per role.
type testServer struct {
	l      *ledger.Ledger
	api    *api.Server
	srv    *httptest.Server
	tokens map[api.Role]string
}

// Tokens of the test keys, by role.
func (ts *testServer) submitter() string { return ts.tokens[api.RoleSubmitter] }
func (ts *testServer) auditor() string   { return ts.tokens[api.RoleAuditor] }
func (ts *testServer) admin() string     { return ts.tokens[api.RoleAdmin] }
func (ts *testServer) responder() string { return ts.tokens[api.RoleResponder] }

// serverOption adjusts the ledger and API configurations before the test
// server is built.
type serverOption func(*ledger.Config, *api.Config)

func withAPI(f func(*api.Config)) serverOption {
	return func(_ *ledger.Config, c *api.Config) { f(c) }
}

func withLedger(f func(*ledger.Config)) serverOption {
	return func(c *ledger.Config, _ *api.Config) { f(c) }
}

// newTestSigner returns a checkpoint signer over a fresh Ed25519 key.
func newTestSigner(t testing.TB) *ledger.NoteSigner {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatalf("signature.NewED25519SignerVerifier() = %v", err)
	}
	s, err := ledger.NewNoteSigner(testOrigin, sv)
	if err != nil {
		t.Fatalf("ledger.NewNoteSigner(%q) = %v", testOrigin, err)
	}
	return s
}

// newTestLedger creates a ledger in a fresh temporary directory. The
// checkpoint cadence is an hour, so checkpoints are signed only when a
// test asks, which keeps sizes deterministic. The ledger is closed when the
// test ends.
func newTestLedger(t testing.TB, adjust ...func(*ledger.Config)) (*ledger.Ledger, ledger.Config) {
	t.Helper()
	cfg := ledger.Config{
		Dir:                t.TempDir(),
		Origin:             testOrigin,
		Signer:             newTestSigner(t),
		CheckpointInterval: time.Hour,
		BadgerOptions: func(o badger.Options) badger.Options {
			// Small memtables and caches keep many test logs cheap.
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20)
		},
	}
	for _, f := range adjust {
		f(&cfg)
	}
	l, err := ledger.Create(bg, cfg)
	if err != nil {
		t.Fatalf("ledger.Create(%s) = %v", cfg.Dir, err)
	}
	t.Cleanup(func() {
		if err := l.Close(bg); err != nil {
			t.Errorf("Ledger.Close() = %v", err)
		}
	})
	return l, cfg
}

// newKeys returns a keyring with one fresh key per role and the tokens.
func newKeys(t testing.TB) (*api.Keyring, map[api.Role]string) {
	t.Helper()
	tokens := make(map[api.Role]string)
	var keys []api.APIKey
	for _, r := range []api.Role{api.RoleSubmitter, api.RoleAuditor, api.RoleResponder, api.RoleAdmin} {
		tok, k, err := api.NewAPIKey("test-"+string(r), r)
		if err != nil {
			t.Fatalf("api.NewAPIKey(%q) = %v", r, err)
		}
		tokens[r] = tok
		keys = append(keys, k)
	}
	kr, err := api.NewKeyring(keys)
	if err != nil {
		t.Fatalf("api.NewKeyring() = %v", err)
	}
	return kr, tokens
}

// newTestServer builds a ledger and an API server over it, served on
// loopback, with a private Prometheus registry shared by both.
func newTestServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	kr, tokens := newKeys(t)
	acfg := api.Config{Keys: kr, Gatherer: reg, Registerer: reg}
	l, _ := newTestLedger(t, func(c *ledger.Config) {
		c.Registerer = reg
		for _, o := range opts {
			o(c, &acfg)
		}
	})
	acfg.Ledger = l
	s, err := api.New(acfg)
	if err != nil {
		t.Fatalf("api.New() = %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	// Registered after the ledger's cleanup, so it runs first: no request
	// is in flight when the ledger closes.
	t.Cleanup(srv.Close)
	return &testServer{l: l, api: s, srv: srv, tokens: tokens}
}

// newAPIServer serves another API server over an existing ledger.
func newAPIServer(t testing.TB, l *ledger.Ledger, cfg api.Config) *httptest.Server {
	t.Helper()
	_, srv := newAPI(t, l, cfg)
	return srv
}

// newAPI is newAPIServer that also returns the API server.
func newAPI(t testing.TB, l *ledger.Ledger, cfg api.Config) (*api.Server, *httptest.Server) {
	t.Helper()
	cfg.Ledger = l
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	s, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New() = %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

// response is what a test looks at in an HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	b := r.body
	if len(b) > 300 {
		b = append(b[:300:300], "…"...)
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

// noRedirects is a client that reports redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// call sends a request to base+path with the token (if any) as a bearer
// key and returns the answer. It must run on the test's goroutine.
func call(t testing.TB, base, method, path, token, contentType string, body []byte) response {
	t.Helper()
	r, err := tryCall(base, method, path, token, contentType, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// tryCall is call for other goroutines: it returns errors.
func tryCall(base, method, path, token, contentType string, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(bg, method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("reading body: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// postConcurrently posts each body from its own goroutine, all at once,
// and returns the answers in order.
func (ts *testServer) postConcurrently(t testing.TB, bodies [][]byte) []response {
	t.Helper()
	var wg sync.WaitGroup
	rs := make([]response, len(bodies))
	errs := make([]error, len(bodies))
	for i, b := range bodies {
		wg.Go(func() {
			rs[i], errs[i] = tryCall(ts.srv.URL, http.MethodPost, "/v1/events", ts.submitter(), "application/json", b)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
	}
	return rs
}

func (ts *testServer) get(t testing.TB, path, token string) response {
	t.Helper()
	return call(t, ts.srv.URL, http.MethodGet, path, token, "", nil)
}

func (ts *testServer) post(t testing.TB, contentType string, body []byte) response {
	t.Helper()
	return call(t, ts.srv.URL, http.MethodPost, "/v1/events", ts.submitter(), contentType, body)
}

// appendResult mirrors the API's answer for one event.
type appendResult struct {
	Index     *uint64 `json:"index"`
	LeafHash  string  `json:"leaf_hash"`
	Duplicate bool    `json:"duplicate"`
}

// errorBody mirrors the API's error answer.
type errorBody struct {
	Error  string `json:"error"`
	Events []struct {
		Index  int    `json:"index"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
		Status int    `json:"status"`
	} `json:"events"`
}

// decodeStrict decodes a JSON body into v, rejecting unknown fields and
// trailing data.
func decodeStrict(t testing.TB, what string, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s %q: %v", what, body, err)
	}
	if dec.More() {
		t.Fatalf("decoding %s %q: trailing data", what, body)
	}
}

// wantJSON fails unless the answer is declared as JSON.
func wantJSON(t testing.TB, what string, r response) {
	t.Helper()
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Errorf("%s: Content-Type = %q, want application/json", what, r.header.Get("Content-Type"))
	}
}

// wantError fails unless r has the status and a JSON error body with a
// non-empty message, and returns the body.
func wantError(t testing.TB, what string, r response, status int) errorBody {
	t.Helper()
	if r.status != status {
		t.Errorf("%s = %v, want status %d", what, r, status)
		return errorBody{}
	}
	wantJSON(t, what, r)
	var eb errorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Errorf("%s: body %q is not a JSON error: %v", what, r.body, err)
		return eb
	}
	if eb.Error == "" {
		t.Errorf("%s: body %q has an empty \"error\", want a message", what, r.body)
	}
	wantNoInternals(t, what, r)
	return eb
}

// internalTexts are fragments of error texts of our libraries, the ledger
// and its storage, which must never reach a client.
var internalTexts = []string{"ledger:", "badger", "jsontext", "go struct", "json:", "txn", "<nil>"}

// wantNoInternals fails if the body of r contains an internal error text.
func wantNoInternals(t testing.TB, what string, r response) {
	t.Helper()
	lower := strings.ToLower(string(r.body))
	for _, s := range internalTexts {
		if strings.Contains(lower, s) {
			t.Errorf("%s: body %s contains %q, an internal error text", what, r.body, s)
		}
	}
}

// singleResult decodes the answer to a single-event POST.
func singleResult(t testing.TB, r response) appendResult {
	t.Helper()
	var res appendResult
	decodeStrict(t, "single-event answer", r.body, &res)
	if res.Index == nil || res.LeafHash == "" {
		t.Fatalf("single-event answer %s lacks index or leaf_hash", r.body)
	}
	return res
}

// batchResults decodes the answer to a batch or NDJSON POST.
func batchResults(t testing.TB, r response) []appendResult {
	t.Helper()
	var res struct {
		Results []appendResult `json:"results"`
	}
	decodeStrict(t, "batch answer", r.body, &res)
	for i, x := range res.Results {
		if x.Index == nil || x.LeafHash == "" {
			t.Fatalf("batch answer %s: result %d lacks index or leaf_hash", r.body, i)
		}
	}
	return res.Results
}

// size returns the ledger's durable size. Appends are answered only once
// durable, so a size read after a response is final for that response.
func size(l *ledger.Ledger) uint64 {
	n, _ := l.Size()
	return n
}

// leafHash is the RFC 6962 leaf hash, computed here without the ledger:
// SHA-256(0x00 || data).
func leafHash(data []byte) [32]byte {
	return sha256.Sum256(append([]byte{0}, data...))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// storedEntry is the answer of GET /v1/entries/<i>, with the entry bytes
// exactly as served.
type storedEntry struct {
	Index    uint64          `json:"index"`
	LeafHash string          `json:"leaf_hash"`
	Entry    json.RawMessage `json:"entry"`
}

// getEntry fetches entry i as an auditor and checks that its leaf hash,
// recomputed here, matches the one served.
func (ts *testServer) getEntry(t testing.TB, i uint64) storedEntry {
	t.Helper()
	r := ts.get(t, fmt.Sprintf("/v1/entries/%d", i), ts.auditor())
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/entries/%d = %v, want 200", i, r)
	}
	var e storedEntry
	decodeStrict(t, "entry", r.body, &e)
	h := leafHash(e.Entry)
	if e.Index != i || e.LeafHash != b64(h[:]) {
		t.Fatalf("GET /v1/entries/%d = index %d leaf_hash %s, want index %d leaf_hash %s (SHA-256 of 0x00||entry)",
			i, e.Index, e.LeafHash, i, b64(h[:]))
	}
	return e
}

// leafBody decodes the event body of a stored leaf.
func leafBody(t testing.TB, entry []byte) map[string]any {
	t.Helper()
	var leaf struct {
		Kind        string         `json:"kind"`
		ReceivedAt  string         `json:"received_at"`
		SubmittedBy string         `json:"submitted_by"`
		Body        map[string]any `json:"body"`
	}
	decodeStrict(t, "leaf", entry, &leaf)
	if leaf.Kind != "event" {
		t.Errorf("leaf kind = %q, want \"event\"", leaf.Kind)
	}
	if _, err := time.Parse(time.RFC3339Nano, leaf.ReceivedAt); err != nil {
		t.Errorf("leaf received_at = %q, not RFC 3339: %v", leaf.ReceivedAt, err)
	}
	return leaf.Body
}

// testTime is the time of test events: in the past, so never "future".
const testTime = "2026-01-02T15:04:05Z"

// event returns a valid test event, unique per n, as a generic map that
// tests may edit before encoding.
func event(n int) map[string]any {
	return map[string]any{
		"time":     testTime,
		"service":  "billing",
		"actor":    map[string]any{"id": fmt.Sprintf("user-%d", n), "type": "user"},
		"source":   map[string]any{"ip": "192.0.2.10", "port": 443},
		"action":   "login",
		"category": "authentication",
		"outcome":  "success",
	}
}

// del marks a field for deletion in edit.
type del struct{}

// edit sets (or with del{}, deletes) the field at a dotted path in ev.
func edit(ev map[string]any, path string, v any) map[string]any {
	parts := strings.Split(path, ".")
	m := ev
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	last := parts[len(parts)-1]
	if _, ok := v.(del); ok {
		delete(m, last)
	} else {
		m[last] = v
	}
	return ev
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%v) = %v", v, err)
	}
	return b
}

// eventJSON encodes the valid test event n.
func eventJSON(t testing.TB, n int) []byte { return mustJSON(t, event(n)) }

// batchJSON encodes {"events":[...]} from raw events.
func batchJSON(events ...[]byte) []byte {
	return append(append([]byte(`{"events":[`), bytes.Join(events, []byte(","))...), "]}"...)
}

// events returns the valid test events first..first+n-1.
func events(t testing.TB, first, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = eventJSON(t, first+i)
	}
	return out
}

// decodeHashes decodes base64 proof hashes.
func decodeHashes(t testing.TB, hs []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(hs))
	for i, h := range hs {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			t.Fatalf("proof hash %d %q: %v", i, h, err)
		}
		out[i] = b
	}
	return out
}

// startPost opens a connection to ts and sends the headers of POST
// /v1/events with token and a declared Content-Length of n, and no body:
// the caller sends what it will of it. The connection is closed when the
// test ends.
func startPost(t testing.TB, ts *testServer, token string, n int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("net.Dial(%s) = %v", ts.srv.Listener.Addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: accessledger\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", token, n)
	return conn
}
