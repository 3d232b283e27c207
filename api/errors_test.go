package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/ledger"
)

// TestErrorsSpeakToClients provokes every kind of error a client can get
// and checks that each answer is a JSON sentence of ours, with the status
// and the advice the README promises, and never the text of a library, of
// the ledger or of its storage (wantError checks that for every error of
// every test).
func TestErrorsSpeakToClients(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 3)
	ts.sign(t, 3)
	good := eventJSON(t, 100)

	// Events whose stored leaves total more than one request may append
	// (ledger.MaxCallBytes), in fewer events than the batch limit and
	// fewer bytes than the body limit.
	attrs := map[string]any{}
	for i := range 30 {
		attrs[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 1000)
	}
	var big [][]byte
	for i := range ledger.MaxCallBytes/30_000 + 10 {
		big = append(big, mustJSON(t, edit(event(200+i), "attributes", attrs)))
	}
	known := ts.getEntry(t, 1).LeafHash

	for _, tc := range []struct {
		name         string
		method, path string
		contentType  string
		body         []byte
		status       int
		want         []string // fragments the message must have
	}{
		{name: "batch events a string", method: "POST", path: "/v1/events", body: []byte(`{"events":"x"}`), status: 400,
			want: []string{`"events" must be an array`, `{"events":[event, ...]}`}},
		{name: "batch events an object", method: "POST", path: "/v1/events", body: []byte(`{"events":{"a":1}}`), status: 400, want: []string{"must be an array"}},
		{name: "batch unknown member", method: "POST", path: "/v1/events", body: []byte(`{"events":[` + string(good) + `],"partial":true}`), status: 400,
			want: []string{`unknown member "partial"`}},
		{name: "batch events twice", method: "POST", path: "/v1/events", body: []byte(`{"events":[` + string(good) + `],"events":[]}`), status: 400,
			want: []string{`"events" appears twice`}},
		{name: "batch trailing data", method: "POST", path: "/v1/events", body: append(batchJSON(good), " {}"...), status: 400, want: []string{"data after the batch"}},
		{name: "batch truncated", method: "POST", path: "/v1/events", body: batchJSON(good)[:30], status: 400, want: []string{"ends early"}},
		{name: "batch invalid JSON", method: "POST", path: "/v1/events", body: []byte(`{"events":[{"a":]}`), status: 400, want: []string{"invalid JSON at byte"}},
		{name: "batch invalid JSON in an event", method: "POST", path: "/v1/events", body: []byte(`{"events":[` + string(good) + `,{"a" 1}]}`), status: 400, want: []string{"malformed batch: invalid JSON at byte"}},
		{name: "batch empty", method: "POST", path: "/v1/events", body: []byte(`{"events":[]}`), status: 400, want: []string{"non-empty array"}},
		{name: "too many events", method: "POST", path: "/v1/events", body: batchJSON(events(t, 300, 1001)...), status: 413,
			want: []string{"more than 1000 events", "split the batch"}},
		{name: "events too large together", method: "POST", path: "/v1/events", body: batchJSON(big...), status: 413,
			want: []string{"split the batch", fmt.Sprint(ledger.MaxCallBytes)}},
		{name: "wrong content type", method: "POST", path: "/v1/events", contentType: "text/plain", body: good, status: 415, want: []string{"application/json"}},

		{name: "index beyond size", method: "GET", path: "/v1/proofs/inclusion?index=5&size=3", status: 400, want: []string{"index 5 must be below the tree size 3"}},
		{name: "index at latest size", method: "GET", path: "/v1/proofs/inclusion?index=3", status: 400, want: []string{"index 3 must be below the tree size 3"}},
		{name: "size beyond log", method: "GET", path: "/v1/proofs/inclusion?index=0&size=4", status: 400, want: []string{"size 4 is beyond the log's size 3"}},
		{name: "size zero", method: "GET", path: "/v1/proofs/inclusion?index=0&size=0", status: 400, want: []string{"below the tree size 0"}},
		{name: "consistency from zero", method: "GET", path: "/v1/proofs/consistency?from=0&to=3", status: 400, want: []string{"from must be at least 1"}},
		{name: "consistency from after to", method: "GET", path: "/v1/proofs/consistency?from=3&to=2", status: 400, want: []string{"from 3 must not be greater than to 2"}},
		{name: "consistency to beyond log", method: "GET", path: "/v1/proofs/consistency?from=1&to=9", status: 400, want: []string{"to 9 is beyond the log's size 3"}},
		{name: "leaf hash not base64", method: "GET", path: "/v1/proofs/inclusion?leaf_hash=%21%21", status: 400, want: []string{"standard or URL-safe", "not base64"}},
		{name: "leaf hash too short", method: "GET", path: "/v1/proofs/inclusion?leaf_hash=AAAA", status: 400, want: []string{"32-byte", "got 3 bytes"}},
		{name: "leaf hash unknown at size", method: "GET", path: "/v1/proofs/inclusion?size=1&leaf_hash=" + url.QueryEscape(known), status: 404,
			want: []string{"no entry with that leaf hash among the first 1 entries"}},

		{name: "entry not found", method: "GET", path: "/v1/entries/3", status: 404, want: []string{"entry 3 does not exist"}},
		{name: "checkpoint not found", method: "GET", path: "/v1/checkpoints/2", status: 404, want: []string{"no checkpoint was signed at size 2", "GET /v1/checkpoints"}},
		{name: "tile not found", method: "GET", path: "/tile/0/000.p/4", status: 404, want: []string{"no such tile"}},
		{name: "bundle not found", method: "GET", path: "/tile/entries/001", status: 404, want: []string{"no such entry bundle"}},
		{name: "malformed tile path", method: "GET", path: "/tile/0/1", status: 404, want: []string{"/tile/<L>/<N>[.p/<W>]"}},
		{name: "unknown endpoint", method: "GET", path: "/v1/nope", status: 404, want: []string{"no such endpoint"}},
		{name: "wrong method", method: "DELETE", path: "/v1/events", status: 405, want: []string{"DELETE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" && tc.body != nil {
				ct = "application/json"
			}
			r := call(t, ts.srv.URL, tc.method, tc.path, ts.admin(), ct, tc.body)
			eb := wantError(t, tc.method+" "+tc.path, r, tc.status)
			for _, w := range tc.want {
				if !strings.Contains(eb.Error, w) {
					t.Errorf("%s %s error = %q, want it to say %q", tc.method, tc.path, eb.Error, w)
				}
			}
		})
	}

	// A batch too large for one storage transaction of a ledger with
	// small memtables: Badger would say "Txn is too big".
	small := newTestServer(t, withLedger(func(c *ledger.Config) {
		c.BadgerOptions = func(o badger.Options) badger.Options {
			return o.WithMemTableSize(1 << 20).WithBlockCacheSize(1 << 20).WithIndexCacheSize(1 << 20)
		}
	}))
	r := small.post(t, "application/json", batchJSON(big[:10]...))
	if eb := wantError(t, "POST 300 kB to a ledger with 1 MiB memtables", r, http.StatusRequestEntityTooLarge); !strings.Contains(eb.Error, "split the batch") {
		t.Errorf("POST 300 kB to a ledger with 1 MiB memtables: error = %q, want it to say to split the batch", eb.Error)
	}
	if r := small.post(t, "application/json", big[0]); r.status != http.StatusCreated {
		t.Errorf("POST one event to a ledger with 1 MiB memtables = %v, want 201", r)
	}

	// A closed ledger: appends and reads say the server is shutting down.
	if err := ts.l.Close(bg); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	for _, tc := range []struct {
		method, path string
		body         []byte
	}{
		{"POST", "/v1/events", good},
		{"GET", "/v1/entries/0", nil},
		{"GET", "/v1/proofs/inclusion?index=0&size=3", nil},
	} {
		r := call(t, ts.srv.URL, tc.method, tc.path, ts.admin(), "application/json", tc.body)
		eb := wantError(t, tc.method+" "+tc.path+" after Close", r, http.StatusServiceUnavailable)
		if !strings.Contains(eb.Error, "shutting down") || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s after Close = %q, Retry-After %q; want it to say the server is shutting down, with Retry-After", tc.method, tc.path, eb.Error, r.header.Get("Retry-After"))
		}
	}
	r = ts.get(t, "/readyz", "")
	wantNoInternals(t, "GET /readyz after Close", r)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "shutting down") {
		t.Errorf("GET /readyz after Close = %v, want 503 saying the server is shutting down", r)
	}
}

// TestRoleErrorsNameTheRoles checks that a 403 says, in a sentence, which
// roles the endpoint accepts, admin included.
func TestRoleErrorsNameTheRoles(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 1)
	ts.sign(t, 1)
	for _, tc := range []struct {
		method, path string
		token        string
		want         string
	}{
		{"GET", "/metrics", ts.submitter(), `API key "test-submitter" may not use this endpoint: it needs the admin role`},
		{"GET", "/v1/entries/0", ts.submitter(), `API key "test-submitter" may not use this endpoint: it needs the role auditor or admin`},
		{"GET", "/tile/entries/000.p/1", ts.responder(), `API key "test-responder" may not use this endpoint: it needs the role auditor or admin`},
		{"GET", "/checkpoint", ts.responder(), `API key "test-responder" may not use this endpoint: it needs the role submitter, auditor or admin`},
		{"POST", "/v1/events", ts.auditor(), `API key "test-auditor" may not use this endpoint: it needs the role submitter or admin`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := call(t, ts.srv.URL, tc.method, tc.path, tc.token, "application/json", eventJSON(t, 1))
			if eb := wantError(t, tc.method+" "+tc.path, r, http.StatusForbidden); eb.Error != tc.want {
				t.Errorf("%s %s error = %q, want %q", tc.method, tc.path, eb.Error, tc.want)
			}
		})
	}
	if r := ts.get(t, "/metrics", ts.admin()); r.status != http.StatusOK {
		t.Errorf("GET /metrics as admin = %v, want 200", r)
	}
}
