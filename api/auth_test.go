package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/accessledger/accessledger/api"
)

// guarded is an endpoint and who may call it.
type guarded struct {
	method, path string
	ok           int        // status when allowed
	roles        []api.Role // besides admin
	public       bool       // served without a key when PublicTiles is set
}

// guardedEndpoints are all endpoints but health, on a log of at least one
// entry with a checkpoint of size 1.
var guardedEndpoints = []guarded{
	{"POST", "/v1/events", 201, []api.Role{api.RoleSubmitter}, false},
	{"GET", "/v1/log", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/v1/entries/0", 200, []api.Role{api.RoleAuditor}, false},
	{"GET", "/v1/proofs/inclusion?index=0&size=1", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/v1/proofs/consistency?from=1&to=1", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/v1/checkpoints/1", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/v1/checkpoints?from=1&limit=5", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/checkpoint", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/tile/0/000.p/1", 200, []api.Role{api.RoleSubmitter, api.RoleAuditor}, true},
	{"GET", "/tile/entries/000.p/1", 200, []api.Role{api.RoleAuditor}, false},
	{"GET", "/metrics", 200, nil, false},
	// Key administration (api/admin.go), on a server with a keys file
	// holding the keys matrix-revoked and matrix-rotated.
	{"GET", "/v1/admin/keys", 200, nil, false},
	{"POST", "/v1/admin/keys", 201, nil, false},
	{"POST", "/v1/admin/keys/matrix-revoked/revoke", 200, nil, false},
	{"POST", "/v1/admin/keys/matrix-rotated/rotate", 200, nil, false},
}

// callAs calls an endpoint with a raw Authorization header (none if
// empty); POSTs carry a fresh valid event, or a new key.
func callAs(t *testing.T, base string, e guarded, authorization string, n int) response {
	t.Helper()
	var body []byte
	switch {
	case e.method == "POST" && e.path == "/v1/admin/keys":
		body = fmt.Appendf(nil, `{"name":"matrix-%d","roles":["auditor"]}`, n)
	case e.method == "POST" && !strings.HasPrefix(e.path, "/v1/admin/"):
		body = eventJSON(t, 10_000+n)
	}
	req, err := http.NewRequestWithContext(bg, e.method, base+e.path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("http.NewRequest(%s %s) = %v", e.method, e.path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", e.method, e.path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b.Bytes()}
}

func TestAuthRoles(t *testing.T) {
	ts := newTestServer(t, withKeyFile(t, nil))
	ts.appendHTTP(t, 0, 1)
	ts.sign(t, 1)
	ts.createKey(t, map[string]any{"name": "matrix-revoked", "roles": []string{"submitter"}})
	ts.createKey(t, map[string]any{"name": "matrix-rotated", "roles": []string{"submitter"}})
	unknown, _, err := api.NewAPIKey("not-in-keyring", api.RoleAdmin)
	if err != nil {
		t.Fatalf("api.NewAPIKey() = %v", err)
	}

	for _, c := range []struct {
		name          string
		authorization string
		role          api.Role // "" for no valid key
	}{
		{"no key", "", ""},
		{"unknown key", "Bearer " + unknown, ""},
		{"empty bearer", "Bearer ", ""},
		{"basic auth", "Basic " + ts.admin(), ""},
		{"key without scheme", ts.admin(), ""},
		{"key hash instead of key", "Bearer " + api.HashToken(ts.admin()), ""},
		{"submitter", "Bearer " + ts.submitter(), api.RoleSubmitter},
		{"auditor", "Bearer " + ts.auditor(), api.RoleAuditor},
		{"responder", "Bearer " + ts.responder(), api.RoleResponder},
		{"admin", "Bearer " + ts.admin(), api.RoleAdmin},
	} {
		for n, e := range guardedEndpoints {
			t.Run(c.name+" "+e.method+" "+e.path, func(t *testing.T) {
				before := size(ts.l)
				r := callAs(t, ts.srv.URL, e, c.authorization, n)
				what := fmt.Sprintf("%s %s as %s", e.method, e.path, c.name)
				switch {
				case c.role == "":
					wantError(t, what, r, http.StatusUnauthorized)
					if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", what, r.header.Get("WWW-Authenticate"))
					}
				case c.role == api.RoleAdmin || slices.Contains(e.roles, c.role):
					if r.status != e.ok {
						t.Errorf("%s = %v, want %d", what, r, e.ok)
					}
				default:
					wantError(t, what, r, http.StatusForbidden)
				}
				// Only a successful change appends (an event, an admin
				// leaf); reads are not audited here.
				if r.status >= 300 || e.method == "GET" {
					if got := size(ts.l); got != before {
						t.Errorf("%s: Size() = %d, want %d (unchanged)", what, got, before)
					}
				}
			})
		}
	}
}

func TestHealthNeedsNoKey(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		r := ts.get(t, path, "")
		if r.status != http.StatusOK {
			t.Errorf("GET %s without a key = %v, want 200", path, r)
		}
		wantJSON(t, "GET "+path, r)
	}
	// A closed ledger is not ready, but the process is healthy.
	if err := ts.l.Close(bg); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if r := ts.get(t, "/readyz", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after Close = %v, want 503", r)
	}
	if r := ts.get(t, "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("GET /healthz after Close = %v, want 200", r)
	}
	r := ts.post(t, "application/json", eventJSON(t, 1))
	wantError(t, "POST /v1/events after Close", r, http.StatusServiceUnavailable)
}

func TestPublicTiles(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 1)
	ts.sign(t, 1)
	kr, tokens := newKeys(t)
	public := newAPIServer(t, ts.l, api.Config{Keys: kr, PublicTiles: true})
	for n, e := range guardedEndpoints {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			r := callAs(t, public.URL, e, "", n)
			if e.public {
				if r.status != e.ok {
					t.Errorf("%s %s without a key, public tiles = %v, want %d", e.method, e.path, r, e.ok)
				}
			} else {
				wantError(t, e.method+" "+e.path+" without a key, public tiles", r, http.StatusUnauthorized)
			}
			// Roles still count where the endpoint is not public.
			r = callAs(t, public.URL, e, "Bearer "+tokens[api.RoleSubmitter], n)
			want := http.StatusForbidden
			if e.public || slices.Contains(e.roles, api.RoleSubmitter) {
				want = e.ok
			}
			if r.status != want {
				t.Errorf("%s %s as submitter, public tiles = %v, want %d", e.method, e.path, r, want)
			}
		})
	}
}

func TestPublicMetrics(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) { c.PublicMetrics = true }))
	if r := ts.get(t, "/metrics", ""); r.status != http.StatusOK {
		t.Errorf("GET /metrics without a key, public metrics = %v, want 200", r)
	}
	if r := ts.get(t, "/checkpoint", ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET /checkpoint without a key, public metrics = %v, want 401", r)
	}
}

func TestSetKeyringSwapsKeysLive(t *testing.T) {
	ts := newTestServer(t)
	tok, key, err := api.NewAPIKey("rotated", api.RoleSubmitter, api.RoleAuditor)
	if err != nil {
		t.Fatalf("api.NewAPIKey() = %v", err)
	}
	kr, err := api.NewKeyring([]api.APIKey{key})
	if err != nil {
		t.Fatalf("api.NewKeyring() = %v", err)
	}
	if r := ts.post(t, "application/json", eventJSON(t, 1)); r.status != http.StatusCreated {
		t.Fatalf("POST with the old key before the swap = %v, want 201", r)
	}
	if r := call(t, ts.srv.URL, "POST", "/v1/events", tok, "application/json", eventJSON(t, 2)); r.status != http.StatusUnauthorized {
		t.Errorf("POST with the new key before the swap = %v, want 401", r)
	}

	ts.api.SetKeyring(kr)
	if r := ts.post(t, "application/json", eventJSON(t, 3)); r.status != http.StatusUnauthorized {
		t.Errorf("POST with the old key after the swap = %v, want 401", r)
	}
	if r := ts.get(t, "/metrics", ts.admin()); r.status != http.StatusUnauthorized {
		t.Errorf("GET /metrics with the old admin key after the swap = %v, want 401", r)
	}
	r := call(t, ts.srv.URL, "POST", "/v1/events", tok, "application/json", eventJSON(t, 4))
	if r.status != http.StatusCreated {
		t.Fatalf("POST with the new key after the swap = %v, want 201", r)
	}
	// Both roles of a two-role key apply.
	if r := ts.get(t, "/v1/entries/"+strconv.FormatUint(*singleResult(t, r).Index, 10), tok); r.status != http.StatusOK {
		t.Errorf("GET /v1/entries as submitter+auditor = %v, want 200", r)
	}
	if r := ts.get(t, "/metrics", tok); r.status != http.StatusForbidden {
		t.Errorf("GET /metrics as submitter+auditor = %v, want 403", r)
	}

	// An empty keyring locks everyone out of everything but health.
	empty, err := api.NewKeyring(nil)
	if err != nil {
		t.Fatalf("api.NewKeyring(nil) = %v", err)
	}
	ts.api.SetKeyring(empty)
	if r := call(t, ts.srv.URL, "POST", "/v1/events", tok, "application/json", eventJSON(t, 5)); r.status != http.StatusUnauthorized {
		t.Errorf("POST after swapping in an empty keyring = %v, want 401", r)
	}
	if r := ts.get(t, "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("GET /healthz with an empty keyring = %v, want 200", r)
	}
	if got := size(ts.l); got != 2 {
		t.Errorf("Size() = %d, want 2", got)
	}
}

func TestNewKeyringRejectsBadKeys(t *testing.T) {
	_, good, err := api.NewAPIKey("good", api.RoleAuditor)
	if err != nil {
		t.Fatalf("api.NewAPIKey() = %v", err)
	}
	for _, tc := range []struct {
		name string
		keys []api.APIKey
	}{
		{"no name", []api.APIKey{{SHA256: good.SHA256, Roles: good.Roles}}},
		{"short hash", []api.APIKey{{Name: "k", SHA256: "abcd", Roles: good.Roles}}},
		{"non-hex hash", []api.APIKey{{Name: "k", SHA256: strings.Repeat("z", 64), Roles: good.Roles}}},
		{"no roles", []api.APIKey{{Name: "k", SHA256: good.SHA256}}},
		{"unknown role", []api.APIKey{{Name: "k", SHA256: good.SHA256, Roles: []api.Role{"root"}}}},
		{"same secret twice", []api.APIKey{good, {Name: "other", SHA256: good.SHA256, Roles: good.Roles}}},
		{"same name twice", []api.APIKey{good, {Name: good.Name, SHA256: strings.Repeat("ab", 32), Roles: good.Roles}}},
		{"bad previous hash", []api.APIKey{{Name: "k", SHA256: good.SHA256, Roles: good.Roles, PreviousSHA256: "abcd"}}},
		{"previous secret of another key", []api.APIKey{good, {Name: "k", SHA256: strings.Repeat("ab", 32), Roles: good.Roles, PreviousSHA256: good.SHA256}}},
		{"negative rate", []api.APIKey{{Name: "k", SHA256: good.SHA256, Roles: good.Roles, RateLimit: &api.RateLimit{PerSecond: -1}}}},
		{"negative burst", []api.APIKey{{Name: "k", SHA256: good.SHA256, Roles: good.Roles, RateLimit: &api.RateLimit{PerSecond: 1, Burst: -1}}}},
		// Names go into the log as who acted, and into URL paths.
		{"long name", []api.APIKey{{Name: strings.Repeat("K", 200), SHA256: good.SHA256, Roles: good.Roles}}},
		{"name with a slash", []api.APIKey{{Name: "bad/name", SHA256: good.SHA256, Roles: good.Roles}}},
		{"reserved name", []api.APIKey{{Name: "cli", SHA256: good.SHA256, Roles: good.Roles}}},
		{"reserved name in capitals", []api.APIKey{{Name: "CLI", SHA256: good.SHA256, Roles: good.Roles}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := api.NewKeyring(tc.keys); err == nil {
				t.Errorf("api.NewKeyring(%+v) = nil error, want an error", tc.keys)
			}
		})
	}
}

// metricValue returns the value of the sample whose name and labels are
// exactly series in Prometheus text output.
func metricValue(t *testing.T, body []byte, series string) (float64, bool) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || name != series {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			t.Fatalf("metric %s has value %q: %v", series, value, err)
		}
		return f, true
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 3)
	ts.sign(t, 3)
	if r := ts.post(t, "application/json", eventJSON(t, 0)); r.status != http.StatusCreated {
		t.Fatalf("POST = %v, want 201", r)
	}
	withID := withID(t, 9, "evt-m")
	for range 2 {
		if r := ts.post(t, "application/json", withID); r.status >= 300 {
			t.Fatalf("POST evt-m = %v, want 201 then 200", r)
		}
	}
	if r := ts.post(t, "application/json", []byte("{}")); r.status != http.StatusBadRequest {
		t.Fatalf("POST {} = %v, want 400", r)
	}

	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"no key", "", 401},
		{"submitter", ts.submitter(), 403},
		{"auditor", ts.auditor(), 403},
		{"admin", ts.admin(), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.get(t, "/metrics", tc.token)
			if r.status != tc.status {
				t.Fatalf("GET /metrics as %s = %v, want %d", tc.name, r, tc.status)
			}
		})
	}

	r := ts.get(t, "/metrics", ts.admin())
	for _, tc := range []struct {
		series string
		min    float64
		max    float64
	}{
		{"accessledger_appended_entries_total", 5, 5},
		{"accessledger_batch_size_entries_count", 1, 5},
		{"accessledger_batch_size_entries_sum", 5, 5},
		{"accessledger_queue_depth_entries", 0, 0},
		{"accessledger_commit_latency_seconds_count", 1, 5},
		{"accessledger_checkpoint_age_seconds", 0, 60},
		{"accessledger_tree_size_entries", 5, 5},
		{"accessledger_checkpoint_size_entries", 3, 3},
		{`accessledger_http_events_total{result="appended"}`, 5, 5},
		{`accessledger_http_events_total{result="duplicate"}`, 1, 1},
		{`accessledger_http_events_total{result="rejected"}`, 1, 1},
		// The four GET /metrics above: one without a key, two refused.
		{`accessledger_http_request_duration_seconds_count{code="401",route="/metrics"}`, 1, 1},
		{`accessledger_http_request_duration_seconds_count{code="403",route="/metrics"}`, 2, 2},
		{`accessledger_http_request_duration_seconds_count{code="201",route="/v1/events"}`, 1, 10},
		// At 0 before the first, so that a rule on their rate sees it.
		{`accessledger_http_follower_pushback_total{follower="index"}`, 0, 0},
		{`accessledger_http_follower_pushback_total{follower="detector"}`, 0, 0},
	} {
		v, ok := metricValue(t, r.body, tc.series)
		if !ok {
			t.Errorf("GET /metrics lacks %s", tc.series)
			continue
		}
		if v < tc.min || v > tc.max {
			t.Errorf("GET /metrics %s = %g, want %g to %g", tc.series, v, tc.min, tc.max)
		}
	}
}

// TestMetricsPerService checks the per-service append counter and its
// bound: the first services get their own label, the rest "other";
// duplicates and rejected events are not counted.
func TestMetricsPerService(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) { c.MaxServiceLabels = 2 }))
	svc := func(n int, service string) []byte { return mustJSON(t, edit(event(n), "service", service)) }
	for _, body := range [][]byte{
		svc(1, "sso"),
		batchJSON(svc(2, "billing"), svc(3, "sso")),
		svc(4, "hr"), // the third service: "other"
		batchJSON(svc(5, "payroll"), svc(6, "billing")),
		withID(t, 7, "evt-7", func(ev map[string]any) { ev["service"] = "sso" }),
	} {
		if r := ts.post(t, "application/json", body); r.status != http.StatusCreated {
			t.Fatalf("POST = %v, want 201", r)
		}
	}
	// A duplicate and a rejected event count nothing.
	if r := ts.post(t, "application/json", withID(t, 7, "evt-7", func(ev map[string]any) { ev["service"] = "sso" })); r.status != http.StatusOK {
		t.Fatalf("POST duplicate = %v, want 200", r)
	}
	if r := ts.post(t, "application/json", mustJSON(t, edit(event(8), "outcome", "x"))); r.status != http.StatusBadRequest {
		t.Fatalf("POST invalid = %v, want 400", r)
	}
	r := ts.get(t, "/metrics", ts.admin())
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`accessledger_events_appended_total{service="sso"}`, 3},
		{`accessledger_events_appended_total{service="billing"}`, 2},
		{`accessledger_events_appended_total{service="other"}`, 2},
	} {
		if v, ok := metricValue(t, r.body, tc.series); !ok || v != tc.want {
			t.Errorf("GET /metrics %s = %g (present %v), want %g", tc.series, v, ok, tc.want)
		}
	}
	for _, absent := range []string{`service="hr"`, `service="payroll"`} {
		if bytes.Contains(r.body, []byte(absent)) {
			t.Errorf("GET /metrics has a series with %s, want it counted as other", absent)
		}
	}
}

// TestAuthHeaderMessages: a key sent in the wrong form is told what is
// wrong with the header, not that no key was sent, and the answer never
// echoes what could be the key.
func TestAuthHeaderMessages(t *testing.T) {
	ts := newTestServer(t)
	key := ts.auditor()
	for _, c := range []struct {
		name, authorization, xAPIKey, want string
	}{
		{"none", "", "", "missing API key"},
		{"basic", "Basic " + key, "", `not a "Basic" credential`},
		{"token", "Token " + key, "", `not a "Token" credential`},
		{"no scheme", key, "", `put "Bearer " before the key`},
		{"key and more", key + " extra", "", `put "Bearer " before the key, and nothing after it`},
		{"key-like scheme", "abcd1234efgh " + key, "", `put "Bearer " before the key, and nothing after it`},
		{"empty bearer", "Bearer ", "", `missing API key after "Bearer"`},
		{"basic beside X-Api-Key", "Basic dXNlcjpwYXNz", key, "X-Api-Key is read only when there is no Authorization header"},
	} {
		req, err := http.NewRequest(http.MethodGet, ts.srv.URL+"/v1/log", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.authorization != "" {
			req.Header.Set("Authorization", c.authorization)
		}
		if c.xAPIKey != "" {
			req.Header.Set("X-Api-Key", c.xAPIKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(eb.Error, c.want) {
			t.Errorf("%s: %d %s, want 401 saying %q", c.name, resp.StatusCode, body, c.want)
		}
		if strings.Contains(string(body), key[:8]) || strings.Contains(string(body), "abcd1234") {
			t.Errorf("%s: the answer %s echoes (a part of) the key", c.name, body)
		}
	}
}

// TestHeadAnswersAsGet: HEAD of a GET endpoint answers what GET would,
// headers and status, without a body (RFC 9110, section 9.3.2), with the
// same key checks; the bouncer's HEAD keeps its own handler.
func TestHeadAnswersAsGet(t *testing.T) {
	ts := newTestServer(t)
	ts.appendHTTP(t, 0, 3)
	ts.sign(t, 3)
	head := func(path, key string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodHead, ts.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	for _, c := range []struct {
		path, key string
		status    int
	}{
		{"/healthz", "", http.StatusOK},
		{"/checkpoint", ts.auditor(), http.StatusOK},
		{"/v1/entries/0", ts.auditor(), http.StatusOK},
		{"/v1/entries/0", "", http.StatusUnauthorized},
		{"/v1/entries/0", ts.submitter(), http.StatusForbidden},
		{"/v1/nope", ts.auditor(), http.StatusNotFound},
	} {
		resp, body := head(c.path, c.key)
		if resp.StatusCode != c.status || len(body) != 0 {
			t.Errorf("HEAD %s = %d with %d bytes of body, want %d and none", c.path, resp.StatusCode, len(body), c.status)
		}
		if c.status == http.StatusOK {
			get := ts.get(t, c.path, c.key)
			if ct := resp.Header.Get("Content-Type"); ct != get.header.Get("Content-Type") {
				t.Errorf("HEAD %s: Content-Type %q, GET's %q", c.path, ct, get.header.Get("Content-Type"))
			}
		}
	}
	// A POST-only endpoint still says which method it takes.
	if resp, _ := head("/v1/admin/digest", ts.admin()); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("HEAD /v1/admin/digest = %d, Allow %q; want 405, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// A GET endpoint answers HEAD too, and its 405 says so.
	if r := call(t, ts.srv.URL, http.MethodDelete, "/v1/entries/0", ts.auditor(), "", nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE /v1/entries/0 = %d, Allow %q; want 405, GET, HEAD", r.status, r.header.Get("Allow"))
	}
}
