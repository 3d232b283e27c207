package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/api"
	alertevent "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/respond"
)

// decisionServer is a test server with a decision store (its own Badger
// in a temporary directory) and two bouncer keys, fw-1 and fw-2.
type decisionServer struct {
	*testServer
	store    *respond.Decisions
	bouncers map[string]string // key name → token
}

// decisionsRecorder keeps the responses the store records.
type decisionsRecorder struct {
	mu  sync.Mutex
	got []*alertevent.Response
}

func (r *decisionsRecorder) Record(_ context.Context, rs ...*alertevent.Response) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rs...)
	return nil
}

func newDecisionServer(t testing.TB, clock func() time.Time, opts ...serverOption) *decisionServer {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).
		WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20))
	if err != nil {
		t.Fatalf("badger.Open() = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := respond.OpenDecisions(bg, db, []byte("d/"), respond.DecisionsConfig{}, &decisionsRecorder{}, clock)
	if err != nil {
		t.Fatalf("respond.OpenDecisions() = %v", err)
	}
	ts := newTestServer(t, append(opts, withAPI(func(c *api.Config) { c.Decisions = store }))...)
	ds := &decisionServer{testServer: ts, store: store, bouncers: map[string]string{}}
	// The test keys of every role, and two bouncers.
	var keys []api.APIKey
	for role, tok := range ts.tokens {
		keys = append(keys, api.APIKey{Name: "test-" + string(role), SHA256: api.HashToken(tok), Roles: []api.Role{role}})
	}
	for _, name := range []string{"fw-1", "fw-2"} {
		tok, k, err := api.NewAPIKey(name, api.RoleBouncer)
		if err != nil {
			t.Fatal(err)
		}
		ds.bouncers[name] = tok
		keys = append(keys, k)
	}
	kr, err := api.NewKeyring(keys)
	if err != nil {
		t.Fatalf("api.NewKeyring() = %v", err)
	}
	ts.api.SetKeyring(kr)
	return ds
}

// ban adds a decision on value, as the responders would for an alert.
func (ds *decisionServer) ban(t testing.TB, alert uint64, value string, d time.Duration) alertevent.Decision {
	t.Helper()
	dec, _, err := ds.store.Add(bg, respond.DecisionInput{Key: fmt.Sprintf("%d/%s", alert, value), AlertIndex: alert,
		Scenario: "brute-force", Value: value, Duration: d})
	if err != nil {
		t.Fatalf("Add(%s) = %v", value, err)
	}
	return dec
}

// bouncerGet sends GET path as a CrowdSec bouncer does: the key in
// X-Api-Key.
func (ds *decisionServer) bouncerGet(t testing.TB, path, key string) response {
	t.Helper()
	return callAPIKey(t, ds.srv.URL, http.MethodGet, path, key, nil)
}

func callAPIKey(t testing.TB, base, method, path, key string, body []byte) response {
	t.Helper()
	return callAPIKeyWith(t, base, method, path, key, nil, body)
}

// callAPIKeyWith is callAPIKey with more request headers.
func callAPIKeyWith(t testing.TB, base, method, path, key string, hdr http.Header, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(bg, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// lapiDecision mirrors CrowdSec's models.Decision as bouncers decode it.
type lapiDecision struct {
	Duration  *string `json:"duration"`
	ID        int64   `json:"id"`
	Origin    *string `json:"origin"`
	Scenario  *string `json:"scenario"`
	Scope     *string `json:"scope"`
	Simulated *bool   `json:"simulated"`
	Type      *string `json:"type"`
	Until     string  `json:"until"`
	UUID      string  `json:"uuid"`
	Value     *string `json:"value"`
}

type lapiStream struct {
	New     []lapiDecision `json:"new"`
	Deleted []lapiDecision `json:"deleted"`
}

// decodeStream decodes a stream answer strictly and checks that both
// lists are arrays (never null) and every decision is complete.
func decodeStream(t testing.TB, r response) lapiStream {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("stream answer = %v, want 200", r)
	}
	wantJSON(t, "stream answer", r)
	var raw map[string]json.RawMessage
	decodeStrict(t, "stream answer", r.body, &raw)
	for _, k := range []string{"new", "deleted"} {
		if v, ok := raw[k]; !ok || v[0] != '[' {
			t.Errorf("stream answer %s: %q is %s, want an array", r.body, k, v)
		}
	}
	var s lapiStream
	decodeStrict(t, "stream answer", r.body, &s)
	for _, d := range slices.Concat(s.New, s.Deleted) {
		if d.Duration == nil || d.Origin == nil || d.Scenario == nil || d.Scope == nil || d.Type == nil || d.Value == nil ||
			d.Simulated == nil || *d.Simulated || d.ID <= 0 || d.UUID == "" {
			t.Errorf("stream answer %s: a decision lacks a required field (or is simulated)", r.body)
		}
	}
	return s
}

func streamValues(ds []lapiDecision) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%d:%s", d.ID, *d.Value))
	}
	return out
}

func TestDecisionEndpointsRoles(t *testing.T) {
	ds := newDecisionServer(t, nil)
	d := ds.ban(t, 1, "192.0.2.1", time.Hour)
	fw := ds.bouncers["fw-1"]
	bearer := func(tok string) func(method, path string) response {
		return func(method, path string) response { return call(t, ds.srv.URL, method, path, tok, "", nil) }
	}
	xkey := func(tok string) func(method, path string) response {
		return func(method, path string) response { return callAPIKey(t, ds.srv.URL, method, path, tok, nil) }
	}
	withAuthorization := func(tok, authorization string) func(method, path string) response {
		hdr := http.Header{"Authorization": {authorization}}
		return func(method, path string) response { return callAPIKeyWith(t, ds.srv.URL, method, path, tok, hdr, nil) }
	}
	xkeyBasic := func(tok string) func(method, path string) response {
		return withAuthorization(tok, "Basic cHJveHk6c2VjcmV0")
	}
	xkeyBearer := func(tok, bearer string) func(method, path string) response {
		return withAuthorization(tok, "Bearer "+bearer)
	}
	del := fmt.Sprintf("/v1/decisions/%d", d.ID)
	tests := []struct {
		who    string
		send   func(method, path string) response
		method string
		path   string
		want   int
	}{
		{"no key", bearer(""), "GET", "/v1/decisions/stream?startup=true", 401},
		{"unknown key", xkey("al_unknown"), "GET", "/v1/decisions/stream", 401},
		{"submitter", bearer(ds.submitter()), "GET", "/v1/decisions/stream", 403},
		{"auditor", bearer(ds.auditor()), "GET", "/v1/decisions/stream", 403},
		{"responder", bearer(ds.responder()), "GET", "/v1/decisions/stream", 403},
		{"bouncer X-Api-Key", xkey(fw), "GET", "/v1/decisions/stream?startup=true", 200},
		{"bouncer Bearer", bearer(fw), "GET", "/v1/decisions/stream?startup=true", 200},
		// A proxy's Basic credentials do not hide X-Api-Key from the bouncer endpoints.
		{"bouncer X-Api-Key behind Basic", xkeyBasic(fw), "GET", "/v1/decisions/stream?startup=true", 200},
		{"bouncer live X-Api-Key behind Basic", xkeyBasic(fw), "GET", "/v1/decisions?ip=192.0.2.1", 200},
		{"bouncer metrics X-Api-Key behind Basic", xkeyBasic(fw), "POST", "/v1/usage-metrics", 400},
		{"bouncer X-Api-Key behind another Bearer", xkeyBearer(fw, "al_unknown"), "GET", "/v1/decisions/stream", 200},
		{"admin list X-Api-Key behind Basic", xkeyBasic(ds.admin()), "GET", "/v1/admin/decisions", 401},
		{"admin", bearer(ds.admin()), "GET", "/v1/decisions/stream", 200},
		{"bouncer HEAD", xkey(fw), "HEAD", "/v1/decisions/stream", 200},
		{"no key live", bearer(""), "GET", "/v1/decisions?ip=192.0.2.1", 401},
		{"submitter live", bearer(ds.submitter()), "GET", "/v1/decisions?ip=192.0.2.1", 403},
		{"bouncer live", xkey(fw), "GET", "/v1/decisions?ip=192.0.2.1", 200},
		{"bouncer live HEAD", xkey(fw), "HEAD", "/v1/decisions?ip=192.0.2.1", 200},
		{"bouncer list", xkey(fw), "GET", "/v1/admin/decisions", 403},
		{"admin list", bearer(ds.admin()), "GET", "/v1/admin/decisions", 200},
		{"bouncer get", xkey(fw), "GET", del, 405}, // only DELETE there
		{"bouncer delete", xkey(fw), "DELETE", del, 403},
		{"submitter delete", bearer(ds.submitter()), "DELETE", del, 403},
		{"responder delete", bearer(ds.responder()), "DELETE", del, 403},
		{"admin delete", bearer(ds.admin()), "DELETE", del, 200},
		{"admin delete again", bearer(ds.admin()), "DELETE", del, 404},
		{"bouncer delete with X-Api-Key of admin", xkey(ds.admin()), "DELETE", del, 404},
	}
	for _, tt := range tests {
		r := tt.send(tt.method, tt.path)
		if r.status != tt.want {
			t.Errorf("%s: %s %s = %v, want %d", tt.who, tt.method, tt.path, r, tt.want)
		}
		if r.status >= 400 && tt.method != "HEAD" {
			wantError(t, tt.who, r, tt.want)
		}
	}
}

func TestDecisionStreamAnswer(t *testing.T) {
	clock := &decisionClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	ds := newDecisionServer(t, clock.Now)
	fw := ds.bouncers["fw-1"]
	d := ds.ban(t, 7, "192.0.2.1", 4*time.Hour)
	r := ds.ban(t, 8, "198.51.100.0/24", time.Hour)
	clock.Advance(1600 * time.Millisecond)

	s := decodeStream(t, ds.bouncerGet(t, "/v1/decisions/stream?startup=true", fw))
	if got, want := streamValues(s.New), []string{fmt.Sprintf("%d:192.0.2.1", d.ID), fmt.Sprintf("%d:198.51.100.0/24", r.ID)}; !slices.Equal(got, want) || len(s.Deleted) != 0 {
		t.Fatalf("startup: new %v deleted %v, want new %v deleted []", got, streamValues(s.Deleted), want)
	}
	n := s.New[0]
	if *n.Origin != "accessledger" || *n.Type != "ban" || *n.Scope != "Ip" || *n.Scenario != "brute-force" || *s.New[1].Scope != "Range" {
		t.Errorf("startup decision %+v: want origin accessledger, type ban, scope Ip, scenario brute-force (and Range for the range)", n)
	}
	// CrowdSec: the time left, rounded to the second, as a Go duration.
	if *n.Duration != "3h59m58s" {
		t.Errorf("duration = %q, want %q", *n.Duration, "3h59m58s")
	}
	if u, err := time.Parse(time.RFC3339, n.Until); err != nil || !u.Equal(d.Until) {
		t.Errorf("until = %q (%v), want %s in RFC 3339", n.Until, err, d.Until.Format(time.RFC3339))
	}
	var raw struct {
		New     []map[string]any `json:"new"`
		Deleted []map[string]any `json:"deleted"`
	}
	decodeStrict(t, "stream answer", ds.bouncerGet(t, "/v1/decisions/stream?startup=true", fw).body, &raw)
	fields := raw.New[0]
	if id, ok := fields["id"].(float64); !ok || id != math.Trunc(id) || id != float64(d.ID) {
		t.Errorf("id = %#v, want the JSON integer %d", fields["id"], d.ID)
	}
	if sim, ok := fields["simulated"].(bool); !ok || sim {
		t.Errorf("simulated = %#v, want false", fields["simulated"])
	}
	keys := slices.Sorted(maps.Keys(fields))
	if want := []string{"duration", "id", "origin", "scenario", "scope", "simulated", "type", "until", "uuid", "value"}; !slices.Equal(keys, want) {
		t.Errorf("decision fields = %v, want CrowdSec's %v", keys, want)
	}

	// Without startup (absent, false, or anything but "true"): only changes.
	for _, q := range []string{"", "?startup=false", "?startup=True", "?startup=1"} {
		r := ds.bouncerGet(t, "/v1/decisions/stream"+q, fw)
		if r.status != http.StatusOK || string(r.body) != `{"new":[],"deleted":[]}` {
			t.Errorf("GET /v1/decisions/stream%s = %v, want 200 {\"new\":[],\"deleted\":[]}", q, r)
		}
	}
	del := call(t, ds.srv.URL, http.MethodDelete, fmt.Sprintf("/v1/decisions/%d", d.ID), ds.admin(), "", nil)
	if del.status != http.StatusOK {
		t.Fatalf("DELETE = %v, want 200", del)
	}
	d2 := ds.ban(t, 9, "2001:db8::7", time.Hour)
	s = decodeStream(t, ds.bouncerGet(t, "/v1/decisions/stream", fw))
	if got := streamValues(s.New); !slices.Equal(got, []string{fmt.Sprintf("%d:2001:db8::7", d2.ID)}) {
		t.Errorf("delta new = %v, want [%d:2001:db8::7]", got, d2.ID)
	}
	if got := streamValues(s.Deleted); !slices.Equal(got, []string{fmt.Sprintf("%d:192.0.2.1", d.ID)}) {
		t.Errorf("delta deleted = %v, want [%d:192.0.2.1]", got, d.ID)
	}
	if len(s.Deleted) == 1 {
		if dur, err := time.ParseDuration(*s.Deleted[0].Duration); err != nil || dur > 0 {
			t.Errorf("deleted duration = %q, want a duration not above 0", *s.Deleted[0].Duration)
		}
	}
	// The other bouncer has its own cursor: it never pulled, so it gets
	// everything active.
	s = decodeStream(t, ds.bouncerGet(t, "/v1/decisions/stream", ds.bouncers["fw-2"]))
	if got := streamValues(s.New); len(got) != 2 {
		t.Errorf("fw-2's first pull: new = %v, want the 2 active decisions", got)
	}
}

// TestDecisionStreamPerAddress: bouncers that pull with one key from two
// addresses each get every change, as CrowdSec's name@ip bouncers do.
// They shared one cursor: the second to pull after a ban never got it. The
// address is the one a trusted proxy forwards.
func TestDecisionStreamPerAddress(t *testing.T) {
	ds := newDecisionServer(t, nil, withAPI(func(c *api.Config) { c.TrustedProxies = []string{"127.0.0.1", "::1"} }))
	fw := ds.bouncers["fw-1"]
	pull := func(ip, query string) lapiStream {
		t.Helper()
		hdr := http.Header{"X-Forwarded-For": {ip}}
		return decodeStream(t, callAPIKeyWith(t, ds.srv.URL, http.MethodGet, "/v1/decisions/stream"+query, fw, hdr, nil))
	}
	const a, b = "192.0.2.10", "192.0.2.11"
	pull(a, "?startup=true")
	pull(b, "?startup=true")
	d := ds.ban(t, 1, "198.51.100.1", time.Hour)
	want := []string{fmt.Sprintf("%d:198.51.100.1", d.ID)}
	for _, ip := range []string{a, b} {
		if got := streamValues(pull(ip, "?startup=false").New); !slices.Equal(got, want) {
			t.Errorf("pull from %s after a ban: new = %v, want %v", ip, got, want)
		}
	}
	// One's startup does not move the other's cursor.
	d2 := ds.ban(t, 2, "198.51.100.2", time.Hour)
	pull(a, "?startup=true")
	if got, want := streamValues(pull(b, "?startup=false").New), []string{fmt.Sprintf("%d:198.51.100.2", d2.ID)}; !slices.Equal(got, want) {
		t.Errorf("pull from %s after the other's startup: new = %v, want %v", b, got, want)
	}
}

func TestDecisionStreamParameters(t *testing.T) {
	ds := newDecisionServer(t, nil)
	fw := ds.bouncers["fw-1"]
	ip := ds.ban(t, 1, "192.0.2.1", time.Hour)
	rng := ds.ban(t, 2, "198.51.100.0/24", time.Hour)
	all := []string{fmt.Sprintf("%d:192.0.2.1", ip.ID), fmt.Sprintf("%d:198.51.100.0/24", rng.ID)}
	tests := []struct {
		query string
		want  []string
	}{
		{"", all},
		{"&scopes=ip,range", all},
		{"&scopes=ip", all[:1]},
		{"&scopes=RANGE", all[1:]},
		{"&scope=Ip", all[:1]},
		{"&scopes=country", []string{}},
		{"&origins=crowdsec,cscli", []string{}},
		{"&origins=accessledger", all},
		{"&scenarios_containing=FORCE", all},
		{"&scenarios_containing=http", []string{}},
		{"&scenarios_not_containing=brute", []string{}},
		{"&ip=198.51.100.9", all[1:]},
		// What recent bouncers add, and anything unknown, is ignored.
		{"&community_pull=false&additional_pull=false&dedup=false&frobnicate=1", all},
		// So is limit, as CrowdSec overwrites it here, even malformed.
		{"&limit=1", all},
		{"&limit=abc", all},
	}
	for _, tt := range tests {
		path := "/v1/decisions/stream?startup=true" + tt.query
		s := decodeStream(t, ds.bouncerGet(t, path, fw))
		if got := streamValues(s.New); !slices.Equal(got, tt.want) {
			t.Errorf("GET %s: new = %v, want %v", path, got, tt.want)
		}
	}
	for _, q := range []string{"&ip=nope", "&range=192.0.2.0/33", "&contains=perhaps", "&ip=fe80::1%25eth0"} {
		wantError(t, "GET /v1/decisions/stream?startup=true"+q, ds.bouncerGet(t, "/v1/decisions/stream?startup=true"+q, fw), http.StatusBadRequest)
	}
}

func TestDecisionLiveQuery(t *testing.T) {
	ds := newDecisionServer(t, nil)
	fw := ds.bouncers["fw-1"]
	ip := ds.ban(t, 1, "192.0.2.1", time.Hour)
	rng := ds.ban(t, 2, "192.0.2.0/24", time.Hour)
	tests := []struct {
		query string
		want  []string
	}{
		{"?ip=192.0.2.1", []string{fmt.Sprintf("%d:192.0.2.1", ip.ID), fmt.Sprintf("%d:192.0.2.0/24", rng.ID)}},
		{"?ip=192.0.2.200", []string{fmt.Sprintf("%d:192.0.2.0/24", rng.ID)}},
		{"?range=192.0.2.0/24", []string{fmt.Sprintf("%d:192.0.2.0/24", rng.ID)}},
		{"?range=192.0.0.0/16&contains=false", []string{fmt.Sprintf("%d:192.0.2.1", ip.ID), fmt.Sprintf("%d:192.0.2.0/24", rng.ID)}},
		{"?ip=192.0.2.1&scope=ip", []string{fmt.Sprintf("%d:192.0.2.1", ip.ID)}},
		{"?ip=192.0.2.1&limit=1", []string{fmt.Sprintf("%d:192.0.2.1", ip.ID)}},
		{"?ip=192.0.2.1&unknown=x", []string{fmt.Sprintf("%d:192.0.2.1", ip.ID), fmt.Sprintf("%d:192.0.2.0/24", rng.ID)}},
	}
	for _, tt := range tests {
		r := ds.bouncerGet(t, "/v1/decisions"+tt.query, fw)
		var got []lapiDecision
		if r.status != http.StatusOK {
			t.Errorf("GET /v1/decisions%s = %v, want 200", tt.query, r)
			continue
		}
		decodeStrict(t, "live answer", r.body, &got)
		if g := streamValues(got); !slices.Equal(g, tt.want) {
			t.Errorf("GET /v1/decisions%s = %v, want %v", tt.query, g, tt.want)
		}
	}
	// None: null, as CrowdSec answers.
	if r := ds.bouncerGet(t, "/v1/decisions?ip=203.0.113.1", fw); r.status != http.StatusOK || string(r.body) != "null" {
		t.Errorf("GET /v1/decisions?ip=203.0.113.1 = %v, want 200 null", r)
	}
	wantError(t, "bad ip", ds.bouncerGet(t, "/v1/decisions?ip=999.1.1.1", fw), http.StatusBadRequest)
	wantError(t, "bad limit", ds.bouncerGet(t, "/v1/decisions?limit=x", fw), http.StatusBadRequest)
}

func TestDecisionAdmin(t *testing.T) {
	ds := newDecisionServer(t, nil)
	d := ds.ban(t, 5, "192.0.2.1", time.Hour)
	ds.ban(t, 6, "192.0.2.2", time.Hour)

	type adminDecision struct {
		ID        uint64     `json:"id"`
		UUID      string     `json:"uuid"`
		Origin    string     `json:"origin"`
		Type      string     `json:"type"`
		Scope     string     `json:"scope"`
		Value     string     `json:"value"`
		Scenario  string     `json:"scenario"`
		Until     time.Time  `json:"until"`
		Duration  string     `json:"duration"`
		CreatedAt time.Time  `json:"created_at"`
		Alert     uint64     `json:"alert"`
		DedupKey  string     `json:"dedup_key"`
		Key       string     `json:"key"`
		EndedAt   *time.Time `json:"ended_at"`
		DeletedBy string     `json:"deleted_by"`
	}
	r := ds.get(t, "/v1/admin/decisions?ip=192.0.2.1", ds.admin())
	var list struct {
		Decisions []adminDecision `json:"decisions"`
	}
	decodeStrict(t, "admin list", r.body, &list)
	if len(list.Decisions) != 1 || list.Decisions[0].ID != d.ID || list.Decisions[0].Alert != 5 || list.Decisions[0].Key != "5/192.0.2.1" {
		t.Errorf("GET /v1/admin/decisions?ip=192.0.2.1 = %s, want decision %d of alert 5", r.body, d.ID)
	}
	for _, bad := range []string{"abc", "-1", "1.5"} {
		wantError(t, "DELETE "+bad, call(t, ds.srv.URL, http.MethodDelete, "/v1/decisions/"+bad, ds.admin(), "", nil), http.StatusBadRequest)
	}
	wantError(t, "DELETE unknown", call(t, ds.srv.URL, http.MethodDelete, "/v1/decisions/999", ds.admin(), "", nil), http.StatusNotFound)
	r = call(t, ds.srv.URL, http.MethodDelete, fmt.Sprintf("/v1/decisions/%d", d.ID), ds.admin(), "", nil)
	var got adminDecision
	if r.status != http.StatusOK {
		t.Fatalf("DELETE = %v, want 200", r)
	}
	wantJSON(t, "DELETE", r)
	decodeStrict(t, "deleted decision", r.body, &got)
	if got.ID != d.ID || got.Value != "192.0.2.1" || got.DeletedBy != "test-admin" || got.EndedAt == nil || !got.Until.Equal(d.Until) {
		t.Errorf("DELETE = %s, want decision %d deleted by test-admin, with ended_at", r.body, d.ID)
	}
	r = ds.get(t, fmt.Sprintf("/v1/admin/decisions/%d", d.ID), ds.admin())
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"deleted_by":"test-admin"`) {
		t.Errorf("GET /v1/admin/decisions/%d = %v, want it, deleted by test-admin", d.ID, r)
	}
	r = ds.get(t, "/v1/admin/decisions", ds.admin())
	decodeStrict(t, "admin list", r.body, &list)
	if len(list.Decisions) != 1 {
		t.Errorf("GET /v1/admin/decisions after a delete = %s, want 1 decision", r.body)
	}
}

func TestDecisionUsageMetrics(t *testing.T) {
	ds := newDecisionServer(t, nil)
	body := []byte(`{"remediation_components":[{"type":"crowdsec-custom-bouncer","version":"v0.0.16","os":{"name":"linux","version":"6"},"feature_flags":[],"utc_startup_timestamp":1,"metrics":[]}]}`)
	if r := callAPIKey(t, ds.srv.URL, http.MethodPost, "/v1/usage-metrics", ds.bouncers["fw-1"], body); r.status != http.StatusCreated {
		t.Errorf("POST /v1/usage-metrics = %v, want 201", r)
	}
	wantError(t, "POST /v1/usage-metrics not JSON", callAPIKey(t, ds.srv.URL, http.MethodPost, "/v1/usage-metrics", ds.bouncers["fw-1"], []byte("{")), http.StatusBadRequest)
	for _, b := range []string{"[]", "1", "null", `"str"`, ""} {
		wantError(t, "POST /v1/usage-metrics "+b, callAPIKey(t, ds.srv.URL, http.MethodPost, "/v1/usage-metrics", ds.bouncers["fw-1"], []byte(b)), http.StatusBadRequest)
	}
}

func TestDecisionsOff(t *testing.T) {
	ts := newTestServer(t)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/decisions/stream?startup=true"}, {"GET", "/v1/decisions?ip=192.0.2.1"},
		{"DELETE", "/v1/decisions/1"}, {"GET", "/v1/admin/decisions"}, {"POST", "/v1/usage-metrics"},
	} {
		r := call(t, ts.srv.URL, c.method, c.path, ts.admin(), "application/json", []byte("{}"))
		if eb := wantError(t, c.method+" "+c.path, r, http.StatusNotFound); !strings.Contains(eb.Error, "decisions are off") {
			t.Errorf("%s %s without decisions: error %q, want it to say decisions are off", c.method, c.path, eb.Error)
		}
	}
}

// decisionClock is a clock the test moves.
type decisionClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *decisionClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *decisionClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestUsageMetricsStalledBodyIs408: a bouncer's usage metrics that do not
// arrive within the read timeout are a 408, not a 413 saying they were too
// large (found by review).
func TestUsageMetricsStalledBodyIs408(t *testing.T) {
	ds := newDecisionServer(t, nil)
	srv := httptest.NewUnstartedServer(ds.api.Handler())
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	postStalled(t, srv, "/v1/usage-metrics", "X-Api-Key: "+ds.bouncers["fw-1"], []byte(`{"remediation_components":[]}`))
}
