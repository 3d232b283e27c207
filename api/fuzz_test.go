package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
)

// fuzzContentTypes are the Content-Type headers a fuzz input picks from.
var fuzzContentTypes = []string{"application/json", ndjson, "", "text/plain", "application/json; charset=utf-8", "application/json; ="}

// FuzzPostEvents drives POST /v1/events with arbitrary bodies: the handler
// never answers 5xx (a panic would be recovered as a 500), rejections are
// JSON errors, and every index it acknowledges holds an entry whose leaf
// hash is the one answered.
func FuzzPostEvents(f *testing.F) {
	ts := newTestServer(f, withAPI(func(c *api.Config) { c.MaxBodyBytes = 256 << 10 }))
	h := ts.api.Handler()

	good := string(eventJSON(f, 1))
	for _, seed := range []struct {
		body string
		ct   uint8
	}{
		{good, 0},
		{good, 2},
		{good, 4},
		{`{"id":"evt-f","time":"2026-01-02T15:04:05Z","service":"s","actor":{"id":"a"},"source":{"ip":"::1"},"action":"read","category":"data_access","outcome":"failure"}`, 0},
		{`{"id":"evt-f","time":"2026-01-02T15:04:05Z","service":"s","actor":{"id":"b"},"source":{"ip":"::1"},"action":"read","category":"data_access","outcome":"failure"}`, 0},
		{string(batchJSON(eventJSON(f, 2), eventJSON(f, 3))), 0},
		{string(eventJSON(f, 4)) + "\r\n\n" + string(eventJSON(f, 5)), 1},
		{string(mustJSON(f, edit(event(6), "source.geo", map[string]any{"country": "DE", "lat": 52.5, "lon": 13.4}))), 0},
		{string(mustJSON(f, edit(event(7), "attributes", map[string]any{"k": "v", "é": "x"}))), 0},
		{`{"time":`, 0},
		{`[]`, 0},
		{`null`, 0},
		{`{"events":[]}`, 0},
		{`{"events":[{}, 1, null]}`, 0},
		{`{"events":null}`, 1},
		{"", 0},
		{"\n\n", 1},
		{good, 3},
		{good, 5},
		{strings.Replace(good, "billing", "bill\xffing", 1), 0},
		{strings.Replace(good, `"billing"`, `"\ud800"`, 1), 0},
		{strings.Replace(good, `443`, `"443"`, 1), 0},
		{strings.Replace(good, `443`, `1e400`, 1), 0},
		{strings.Replace(good, `"192.0.2.10"`, `"fe80::1%eth0"`, 1), 0},
		{strings.Replace(good, `2026`, `9999`, 1), 0},
		{strings.Replace(good, `{`, `{"events":1,`, 1), 0},
	} {
		f.Add([]byte(seed.body), seed.ct)
	}

	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ts.submitter())
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		before := size(ts.l)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusOK, http.StatusCreated:
		default:
			if rec.Code < 400 || rec.Code >= 500 {
				t.Fatalf("POST /v1/events %q = %d %s, want 200, 201 or 4xx", body, rec.Code, rec.Body)
			}
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("POST /v1/events %q = %d %s, want a JSON error", body, rec.Code, rec.Body)
			}
			if got := size(ts.l); got != before {
				t.Fatalf("POST /v1/events %q = %d, but Size() went from %d to %d", body, rec.Code, before, got)
			}
			return
		}

		var answer struct {
			appendResult
			Results []appendResult `json:"results"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("POST /v1/events %q = %d %s, not JSON: %v", body, rec.Code, rec.Body, err)
		}
		results := answer.Results
		if results == nil {
			results = []appendResult{answer.appendResult}
		}
		added := 0
		for i, res := range results {
			if res.Index == nil {
				t.Fatalf("POST /v1/events %q = %s: result %d has no index", body, rec.Body, i)
			}
			data, lh, err := ts.l.Entry(bg, *res.Index)
			if err != nil {
				t.Fatalf("POST /v1/events %q = %d index %d, but Entry(%d) = %v", body, rec.Code, *res.Index, *res.Index, err)
			}
			want := leafHash(data)
			if !bytes.Equal(lh, want[:]) || res.LeafHash != base64.StdEncoding.EncodeToString(want[:]) {
				t.Fatalf("POST /v1/events %q: result %d leaf_hash %s, want %s (SHA-256 of 0x00||entry %d)", body, i, res.LeafHash, b64(want[:]), *res.Index)
			}
			if !res.Duplicate {
				added++
			}
		}
		if (rec.Code == http.StatusCreated) != (added > 0) {
			t.Errorf("POST /v1/events %q = %d with %d new entries, want 201 exactly when some entry is new", body, rec.Code, added)
		}
		if got := size(ts.l); got != before+uint64(added) {
			t.Errorf("POST /v1/events %q: Size() went from %d to %d, want +%d", body, before, got, added)
		}
	})
}

// fuzzReadRoutes are the read endpoints of a server with an index, and
// where a fuzz input goes in each: after "?" (a query) or after the path.
var fuzzReadRoutes = []struct {
	path  string
	query bool
}{
	{"/v1/log", true},
	{"/v1/entries/", false},
	{"/v1/proofs/inclusion", true},
	{"/v1/proofs/consistency", true},
	{"/v1/checkpoints", true},
	{"/v1/checkpoints/", false},
	{"/checkpoint", true},
	{"/tile/", false},
	{"/v1/events", true},
	{"/v1/events/count", true},
	{"/v1/events/top", true},
	{"/v1/evidence", true},
}

// FuzzReadEndpoints drives every read endpoint of a server with a log
// and its index with arbitrary paths and query strings: none answers 5xx
// (a panic would be recovered as a 500), and what it refuses it refuses
// with a JSON error or, for tiles, a plain 4xx.
func FuzzReadEndpoints(f *testing.F) {
	qs := newQueryServer(f)
	qs.post(f, 0, qevents(0, 60))
	if _, err := qs.l.SignCheckpoint(bg); err != nil {
		f.Fatal(err)
	}
	h := qs.api.Handler()
	token := qs.tokens[api.RoleAdmin]
	for _, seed := range []struct {
		route uint8
		in    string
	}{
		{0, ""},
		{1, "3"}, {1, "-1"}, {1, "18446744073709551616"}, {1, "3%2F"},
		{2, "index=3&size=60"}, {2, "index=60&size=60"}, {2, "leaf_hash=AAAA&size=60"},
		{3, "from=1&to=60"}, {3, "from=60&to=1"},
		{4, "after=0&limit=2"}, {5, "60"}, {5, "0"}, {6, ""},
		{7, "0/000"}, {7, "1/000.p/60"}, {7, "entries/000.p/60"}, {7, "0/x001/002"}, {7, "0/000.p/0"},
		{8, "actor=user-1&limit=3"}, {8, "ip=203.0.113.0/24&since=2026-06-01T00:00:00Z&until=2026-06-02T00:00:00Z&order=desc"},
		{8, "cursor=%ff&limit=-1"}, {8, "outcome=failure&action=login&service=sso&q=zzz"},
		{9, "actor=user-2"}, {10, "field=actor&limit=5"}, {10, "field=nope"},
		{11, "actor=user-3"}, {11, "ip=2001:db8::/32&limit=100000000000"},
	} {
		f.Add(seed.route, seed.in)
	}
	f.Fuzz(func(t *testing.T, route uint8, in string) {
		r := fuzzReadRoutes[int(route)%len(fuzzReadRoutes)]
		target := "http://127.0.0.1" + r.path
		if r.query {
			target += "?" + in
		} else {
			target += in
		}
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkFuzzAnswer(t, "GET "+target, rec, !strings.HasPrefix(r.path, "/tile/"))
	})
}

// FuzzDecisionEndpoints drives the CrowdSec Local API a bouncer speaks to,
// and the decisions' administration, with arbitrary query strings, paths
// and bodies: nothing answers 5xx, and refusals are JSON errors.
func FuzzDecisionEndpoints(f *testing.F) {
	ds := newDecisionServer(f, nil)
	ds.ban(f, 1, "203.0.113.7", time.Hour)
	ds.ban(f, 2, "2001:db8::/48", time.Hour)
	h := ds.api.Handler()
	routes := []struct {
		method, path string
		query, admin bool
	}{
		{http.MethodGet, "/v1/decisions/stream", true, false},
		{http.MethodGet, "/v1/decisions", true, false},
		{http.MethodPost, "/v1/usage-metrics", false, false},
		{http.MethodGet, "/v1/admin/decisions", true, true},
		{http.MethodGet, "/v1/admin/decisions/", false, true},
		{http.MethodDelete, "/v1/decisions/", false, true},
	}
	for _, seed := range []struct {
		route uint8
		in    string
	}{
		{0, "startup=true"}, {0, "startup=false&scopes=ip,range&origins=accessledger&scenarios_containing=brute"},
		{1, "ip=203.0.113.7"}, {1, "range=2001:db8::/32&contains=false"}, {1, "ip=fe80::1%25eth0"}, {1, "limit=-1&type=ban&value=x"},
		{2, `{"remediation_components":[{"type":"crowdsec-custom-bouncer","version":"v0.0.16","os":{"name":"linux","version":"6"},"feature_flags":[],"utc_startup_timestamp":1,"metrics":[]}]}`},
		{2, `{`}, {2, `{"remediation_components":[{"metrics":[{"items":[{"name":"dropped","value":1e400}]}]}]}`},
		{3, "limit=1&offset=2"}, {4, "1"}, {4, "99999999999999999999"}, {5, "2"}, {5, "-1"},
	} {
		f.Add(seed.route, seed.in)
	}
	f.Fuzz(func(t *testing.T, route uint8, in string) {
		r := routes[int(route)%len(routes)]
		target, body := "http://127.0.0.1"+r.path, io.Reader(nil)
		switch {
		case r.method == http.MethodPost:
			body = strings.NewReader(in)
		case r.query:
			target += "?" + in
		default:
			target += in
		}
		req, err := http.NewRequest(r.method, target, body)
		if err != nil {
			return
		}
		token := ds.bouncers["fw-1"]
		if r.admin {
			token = ds.admin()
		}
		req.Header.Set("X-Api-Key", token)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkFuzzAnswer(t, fmt.Sprintf("%s %s %q", r.method, target, in), rec, true)
	})
}

// checkFuzzAnswer fails the test if a fuzzed request was answered 5xx (a
// panic is recovered as a 500) or, when jsonErrors, refused other than
// with a JSON error (a 404 of the router aside). what names the request.
func checkFuzzAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder, jsonErrors bool) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s = %d %s, want no 5xx", what, rec.Code, rec.Body)
	}
	if jsonErrors && rec.Code >= 400 && rec.Code != http.StatusNotFound {
		var eb errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
			t.Fatalf("%s = %d %s, want a JSON error", what, rec.Code, rec.Body)
		}
	}
}
