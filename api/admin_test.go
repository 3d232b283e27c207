package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
	evt "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// testClock is a clock the test moves by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func withClock(c *testClock) serverOption    { return withAPI(func(a *api.Config) { a.Clock = c.now }) }
func withRateLimit(r api.RateLimit) serverOption {
	return withAPI(func(a *api.Config) { a.RateLimit = r })
}

// newKeyFile returns a keys file in a temporary directory.
func newKeyFile(t testing.TB) *api.KeyFile {
	return api.NewKeyFile(filepath.Join(t.TempDir(), "api_keys.yaml"))
}

// withKeyFile moves the test server's keys into kf (a new keys file if
// nil), which the server then administers.
func withKeyFile(t testing.TB, kf *api.KeyFile) serverOption {
	return withAPI(func(c *api.Config) {
		if kf == nil {
			kf = newKeyFile(t)
		}
		if err := kf.Write(c.Keys.Keys()); err != nil {
			t.Fatalf("KeyFile.Write() = %v", err)
		}
		c.KeyFile = kf
	})
}

// run runs the server's background work (Server.Run) until the test
// ends.
func (ts *testServer) run(t testing.TB) {
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- ts.api.Run(ctx) }()
	// Registered after the server's cleanups, so it runs before them:
	// the ledger is still open.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Server.Run() = %v", err)
		}
	})
}

// adminCall sends an admin request as the test admin (or token).
func (ts *testServer) adminCall(t testing.TB, method, path, token string, body any) response {
	t.Helper()
	if token == "" {
		token = ts.admin()
	}
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw = mustJSON(t, b)
	}
	return call(t, ts.srv.URL, method, path, token, "application/json", raw)
}

// keyAnswer mirrors the answer of a key change.
type keyAnswer struct {
	Key struct {
		Name               string         `json:"name"`
		Roles              []api.Role     `json:"roles"`
		Source             string         `json:"source"`
		Status             string         `json:"status"`
		CreatedAt          time.Time      `json:"created_at"`
		CreatedBy          string         `json:"created_by"`
		ExpiresAt          time.Time      `json:"expires_at"`
		RotatedAt          time.Time      `json:"rotated_at"`
		RotatedBy          string         `json:"rotated_by"`
		PreviousValidUntil time.Time      `json:"previous_valid_until"`
		RevokedAt          time.Time      `json:"revoked_at"`
		RevokedBy          string         `json:"revoked_by"`
		RateLimit          *api.RateLimit `json:"rate_limit"`
	} `json:"key"`
	Secret   string  `json:"secret"`
	LogIndex *uint64 `json:"log_index"`
	Warning  string  `json:"warning"`
}

func decodeKeyAnswer(t testing.TB, what string, r response, status int) keyAnswer {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s = %v, want %d", what, r, status)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("%s: Cache-Control = %q, want no-store", what, cc)
	}
	var a keyAnswer
	decodeStrict(t, what, r.body, &a)
	return a
}

// createKey creates a key over the admin API and returns its secret.
func (ts *testServer) createKey(t testing.TB, body map[string]any) keyAnswer {
	t.Helper()
	a := decodeKeyAnswer(t, fmt.Sprintf("POST /v1/admin/keys %v", body), ts.adminCall(t, "POST", "/v1/admin/keys", "", body), http.StatusCreated)
	if !strings.HasPrefix(a.Secret, "al_") {
		t.Fatalf("POST /v1/admin/keys: secret %q, want al_...", a.Secret)
	}
	return a
}

// adminLeaf reads entry i from the ledger (not over HTTP, which could be
// audited) and decodes it as an admin leaf.
func adminLeaf(t testing.TB, l *ledger.Ledger, i uint64) *evt.Admin {
	t.Helper()
	data, _, err := l.Entry(bg, i)
	if err != nil {
		t.Fatalf("Entry(%d) = %v", i, err)
	}
	_, a, err := evt.DecodeAdminLeaf(data)
	if err != nil {
		t.Fatalf("entry %d = %s: DecodeAdminLeaf() = %v", i, data, err)
	}
	return a
}

// adminLeaves returns every admin leaf of the log, and fails if any entry
// holds one of secrets or their hashes.
func adminLeaves(t testing.TB, l *ledger.Ledger, secrets ...string) []*evt.Admin {
	t.Helper()
	var out []*evt.Admin
	n := size(l)
	for i := range n {
		data, _, err := l.Entry(bg, i)
		if err != nil {
			t.Fatalf("Entry(%d) = %v", i, err)
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) || bytes.Contains(data, []byte(api.HashToken(s))) {
				t.Errorf("entry %d holds a key's secret or its hash: %s", i, data)
			}
		}
		if evt.LeafKind(data) == evt.KindAdmin {
			out = append(out, adminLeaf(t, l, i))
		}
	}
	return out
}

// findAdmin returns the admin leaves of action on key.
func findAdmin(leaves []*evt.Admin, action, key string) []*evt.Admin {
	var out []*evt.Admin
	for _, a := range leaves {
		if a.Action == action && a.Key == key {
			out = append(out, a)
		}
	}
	return out
}

func TestAdminKeyLifecycle(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withKeyFile(t, nil), withClock(clock))

	a := ts.createKey(t, map[string]any{"name": "billing-svc", "roles": []string{"submitter"}, "expires_in": "90d"})
	if a.Key.Name != "billing-svc" || a.Key.Status != "active" || a.Key.Source != "file" || a.Key.CreatedBy != "test-admin" ||
		!slices.Equal(a.Key.Roles, []api.Role{api.RoleSubmitter}) || !a.Key.ExpiresAt.Equal(clock.now().Add(90*24*time.Hour).Truncate(0)) {
		t.Errorf("POST /v1/admin/keys = %+v", a.Key)
	}
	if a.LogIndex == nil {
		t.Fatalf("POST /v1/admin/keys: no log_index (warning %q)", a.Warning)
	}
	created := adminLeaf(t, ts.l, *a.LogIndex)
	if created.Action != evt.AdminKeyCreated || created.Key != "billing-svc" || created.By != "test-admin" ||
		!slices.Equal(created.Roles, []string{"submitter"}) || created.ExpiresAt.IsZero() {
		t.Errorf("admin leaf %d = %+v, want billing-svc created by test-admin", *a.LogIndex, created)
	}

	// The key works at once.
	if r := call(t, ts.srv.URL, "POST", "/v1/events", a.Secret, "application/json", eventJSON(t, 1)); r.status != http.StatusCreated {
		t.Fatalf("POST /v1/events with the new key = %v, want 201", r)
	}

	// The list shows every key, never a secret or its hash.
	r := ts.adminCall(t, "GET", "/v1/admin/keys", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/admin/keys = %v", r)
	}
	if bytes.Contains(r.body, []byte(api.HashToken(a.Secret))) || bytes.Contains(r.body, []byte("sha256")) {
		t.Errorf("GET /v1/admin/keys shows a key hash: %s", r.body)
	}
	var list struct {
		Keys []struct {
			Name, Status, Source string
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range list.Keys {
		names = append(names, k.Name+":"+k.Status)
	}
	if !slices.Contains(names, "billing-svc:active") || !slices.Contains(names, "test-admin:active") || len(names) != 5 {
		t.Errorf("GET /v1/admin/keys names = %v, want the four test keys and billing-svc, active", names)
	}

	// Revocation takes effect at once.
	rev := decodeKeyAnswer(t, "revoke", ts.adminCall(t, "POST", "/v1/admin/keys/billing-svc/revoke", "", nil), http.StatusOK)
	if rev.Key.Status != "revoked" || rev.Key.RevokedBy != "test-admin" || rev.Secret != "" || rev.LogIndex == nil {
		t.Errorf("revoke = %+v", rev)
	}
	r = call(t, ts.srv.URL, "POST", "/v1/events", a.Secret, "application/json", eventJSON(t, 2))
	if eb := wantError(t, "POST /v1/events with a revoked key", r, http.StatusUnauthorized); !strings.Contains(eb.Error, `"billing-svc" was revoked`) {
		t.Errorf("POST with a revoked key: error %q, want it to say the key was revoked", eb.Error)
	}
	revoked := adminLeaf(t, ts.l, *rev.LogIndex)
	if revoked.Action != evt.AdminKeyRevoked || revoked.Key != "billing-svc" || revoked.By != "test-admin" {
		t.Errorf("admin leaf %d = %+v, want billing-svc revoked by test-admin", *rev.LogIndex, revoked)
	}

	// The log records who was allowed to write it: the test keys (made
	// outside the API, so by "cli") and billing-svc, created then
	// revoked, exactly once each; never a secret.
	leaves := adminLeaves(t, ts.l, a.Secret, ts.admin(), ts.submitter(), ts.auditor())
	for _, name := range []string{"test-admin", "test-submitter", "test-auditor", "test-responder"} {
		if got := findAdmin(leaves, evt.AdminKeyCreated, name); len(got) != 1 || got[0].By != evt.AdminByCLI {
			t.Errorf("admin leaves creating %s = %+v, want one, by cli", name, got)
		}
	}
	if len(findAdmin(leaves, evt.AdminKeyCreated, "billing-svc")) != 1 || len(findAdmin(leaves, evt.AdminKeyRevoked, "billing-svc")) != 1 {
		t.Errorf("admin leaves = %+v, want billing-svc created and revoked once", leaves)
	}
	// Reloading records nothing twice.
	before := size(ts.l)
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatalf("ReloadKeys() = %v", err)
	}
	if got := size(ts.l); got != before {
		t.Errorf("Size() after ReloadKeys = %d, want %d (nothing new)", got, before)
	}
}

func TestAdminRotate(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withKeyFile(t, nil), withClock(clock))
	old := ts.createKey(t, map[string]any{"name": "svc", "roles": []string{"submitter", "auditor"}})
	// A role given twice, apart, is stored once.
	if dup := ts.createKey(t, map[string]any{"name": "dup", "roles": []string{"auditor", "submitter", "auditor"}}); !slices.Equal(dup.Key.Roles, []api.Role{api.RoleAuditor, api.RoleSubmitter}) {
		t.Errorf("create with auditor twice: roles %v, want auditor, submitter", dup.Key.Roles)
	}
	post := func(token string, n int) response {
		return call(t, ts.srv.URL, "POST", "/v1/events", token, "application/json", eventJSON(t, n))
	}

	// With a grace period, both secrets work until it ends.
	rot := decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", map[string]any{"grace": "1h"}), http.StatusOK)
	if rot.Secret == "" || rot.Secret == old.Secret || rot.Key.Name != "svc" || len(rot.Key.Roles) != 2 ||
		!rot.Key.PreviousValidUntil.Equal(clock.now().Add(time.Hour).Truncate(0)) || rot.LogIndex == nil {
		t.Fatalf("rotate = %+v", rot)
	}
	leaf := adminLeaf(t, ts.l, *rot.LogIndex)
	if leaf.Action != evt.AdminKeyRotated || leaf.Key != "svc" || leaf.By != "test-admin" || !leaf.PreviousValidUntil.Equal(rot.Key.PreviousValidUntil) {
		t.Errorf("admin leaf %d = %+v, want svc rotated by test-admin with the grace period", *rot.LogIndex, leaf)
	}
	for i, tok := range []string{old.Secret, rot.Secret} {
		if r := post(tok, i); r.status != http.StatusCreated {
			t.Errorf("POST with secret %d during the grace period = %v, want 201", i, r)
		}
	}
	clock.advance(time.Hour)
	r := post(old.Secret, 3)
	if eb := wantError(t, "POST with the old secret after the grace period", r, http.StatusUnauthorized); !strings.Contains(eb.Error, "rotated") {
		t.Errorf("old secret after the grace period: error %q, want it to say the key was rotated", eb.Error)
	}
	if r := post(rot.Secret, 4); r.status != http.StatusCreated {
		t.Errorf("POST with the new secret after the grace period = %v, want 201", r)
	}

	// Without one, the old secret stops at once; the name and roles stay.
	rot2 := decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", nil), http.StatusOK)
	wantError(t, "POST with the replaced secret", post(rot.Secret, 5), http.StatusUnauthorized)
	if r := ts.get(t, "/v1/entries/0", rot2.Secret); r.status != http.StatusOK {
		t.Errorf("GET /v1/entries/0 with the rotated auditor key = %v, want 200", r)
	}
	if got := findAdmin(adminLeaves(t, ts.l, old.Secret, rot.Secret, rot2.Secret), evt.AdminKeyRotated, "svc"); len(got) != 2 {
		t.Errorf("admin leaves rotating svc = %+v, want 2", got)
	}
}

// TestRotateTwiceWithinGrace: a second rotation dropped the first one's
// old secret, still inside its grace period, from the key: its holder got
// "unknown API key" instead of being told to use the new secret. Only the
// secret a rotation replaces may stay valid; earlier ones stop, and are
// refused with that sentence.
func TestRotateTwiceWithinGrace(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	first := ts.createKey(t, map[string]any{"name": "svc", "roles": []string{"submitter"}})
	rotate := func(body any) keyAnswer {
		return decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", body), http.StatusOK)
	}
	second := rotate(map[string]any{"grace": "1h"})
	third := rotate(nil)
	post := func(token string, n int) response {
		return call(t, ts.srv.URL, "POST", "/v1/events", token, "application/json", eventJSON(t, n))
	}
	for i, tok := range []string{first.Secret, second.Secret} {
		eb := wantError(t, fmt.Sprintf("POST with secret %d after two rotations", i), post(tok, i), http.StatusUnauthorized)
		if !strings.Contains(eb.Error, `"svc" was replaced`) || !strings.Contains(eb.Error, "use the new secret") {
			t.Errorf("secret %d after two rotations: error %q, want it to say to use the new secret", i, eb.Error)
		}
	}
	if r := post(third.Secret, 3); r.status != http.StatusCreated {
		t.Errorf("POST with the newest secret = %v, want 201", r)
	}
	// The secrets remembered are bounded.
	for range api.MaxReplacedSecrets + 2 {
		rotate(nil)
	}
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(keys, func(k api.APIKey) bool { return k.Name == "svc" }); i < 0 || len(keys[i].ReplacedSHA256) != api.MaxReplacedSecrets {
		t.Errorf("keys file = %+v, want svc with %d replaced secrets", keys, api.MaxReplacedSecrets)
	}
}

func TestAdminExpiry(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withKeyFile(t, nil), withClock(clock))
	a := ts.createKey(t, map[string]any{"name": "temp", "roles": []string{"auditor"}, "expires_at": clock.now().Add(time.Hour).UTC().Format(time.RFC3339)})
	ts.appendHTTP(t, 0, 1)
	if r := ts.get(t, "/v1/entries/0", a.Secret); r.status != http.StatusOK {
		t.Fatalf("GET with a key before its expiry = %v, want 200", r)
	}
	clock.advance(time.Hour)
	eb := wantError(t, "GET with an expired key", ts.get(t, "/v1/entries/0", a.Secret), http.StatusUnauthorized)
	if !strings.Contains(eb.Error, `"temp" expired at`) {
		t.Errorf("expired key: error %q, want it to say when the key expired", eb.Error)
	}
	r := ts.adminCall(t, "GET", "/v1/admin/keys", "", nil)
	if !strings.Contains(string(r.body), `"name":"temp","roles":["auditor"],"source":"file","status":"expired"`) {
		t.Errorf("GET /v1/admin/keys = %s, want temp expired", r.body)
	}
	// Rotating an expired key needs a new expiry; with one, it works
	// again.
	r = ts.adminCall(t, "POST", "/v1/admin/keys/temp/rotate", "", nil)
	if eb := wantError(t, "rotate an expired key without an expiry", r, http.StatusBadRequest); !strings.Contains(eb.Error, "give a new expiry") {
		t.Errorf("rotate expired: error %q", eb.Error)
	}
	rot := decodeKeyAnswer(t, "rotate with expiry", ts.adminCall(t, "POST", "/v1/admin/keys/temp/rotate", "", map[string]any{"expires_in": "2h"}), http.StatusOK)
	if r := ts.get(t, "/v1/entries/0", rot.Secret); r.status != http.StatusOK {
		t.Errorf("GET with the rotated key = %v, want 200", r)
	}
}

func TestRateLimit(t *testing.T) {
	clock := newTestClock()
	// A default for every key, and a key of its own, faster.
	ts := newTestServer(t, withKeyFile(t, nil), withClock(clock), withRateLimit(api.RateLimit{PerSecond: 1, Burst: 2}))
	own := ts.createKey(t, map[string]any{"name": "fast", "roles": []string{"submitter"}, "rate_limit": map[string]any{"per_second": 10, "burst": 5}})

	for _, tc := range []struct {
		name  string
		token string
		burst int
		every time.Duration
	}{
		{"default limit", ts.submitter(), 2, time.Second},
		{"own limit", own.Secret, 5, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.burst {
				if r := ts.get(t, "/checkpoint", tc.token); r.status != http.StatusOK {
					t.Fatalf("GET /checkpoint %d within the burst = %v, want 200", i, r)
				}
			}
			r := ts.get(t, "/checkpoint", tc.token)
			eb := wantError(t, "GET /checkpoint over the limit", r, http.StatusTooManyRequests)
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("429: Retry-After = %q, want a positive number of seconds", r.header.Get("Retry-After"))
			}
			if !strings.Contains(eb.Error, "rate limit") || !strings.Contains(eb.Error, "Retry-After") {
				t.Errorf("429: error %q, want it to name the rate limit and Retry-After", eb.Error)
			}
			// A token comes back after its interval.
			clock.advance(tc.every)
			if r := ts.get(t, "/checkpoint", tc.token); r.status != http.StatusOK {
				t.Errorf("GET /checkpoint after %s = %v, want 200", tc.every, r)
			}
		})
	}
	// Keys are limited one by one: the auditor has its whole burst.
	if r := ts.get(t, "/checkpoint", ts.auditor()); r.status != http.StatusOK {
		t.Errorf("GET /checkpoint as another key = %v, want 200", r)
	}
	// Unknown keys are refused before any limit.
	if r := ts.get(t, "/checkpoint", "al_unknown"); r.status != http.StatusUnauthorized {
		t.Errorf("GET /checkpoint with an unknown key = %v, want 401", r)
	}
}

func TestAdminRefusals(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withKeyFile(t, nil), withClock(clock))
	ts.createKey(t, map[string]any{"name": "taken", "roles": []string{"auditor"}})
	ts.createKey(t, map[string]any{"name": "gone", "roles": []string{"auditor"}})
	decodeKeyAnswer(t, "revoke gone", ts.adminCall(t, "POST", "/v1/admin/keys/gone/revoke", "", nil), http.StatusOK)

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"unknown field", "POST", "/v1/admin/keys", `{"name":"a","roles":["auditor"],"secret":"x"}`, 400, `unknown field "secret"`},
		{"wrong type", "POST", "/v1/admin/keys", `{"name":"a","roles":"auditor"}`, 400, "roles must be an array"},
		{"nested wrong type", "POST", "/v1/admin/keys", `{"name":"a","roles":["auditor"],"rate_limit":{"per_second":"9"}}`, 400, "rate_limit.per_second must be a number"},
		{"not JSON", "POST", "/v1/admin/keys", `{"name":`, 400, "not valid JSON"},
		{"empty body", "POST", "/v1/admin/keys", nil, 400, "the body is empty"},
		{"two objects", "POST", "/v1/admin/keys", `{"name":"a","roles":["auditor"]}{}`, 400, "one JSON object"},
		{"trailing brace", "POST", "/v1/admin/keys", `{"name":"a","roles":["auditor"]}}`, 400, "one JSON object"},
		{"trailing bracket", "POST", "/v1/admin/keys", `{"name":"a","roles":["auditor"]}]`, 400, "one JSON object"},
		{"name twice", "POST", "/v1/admin/keys", `{"name":"a","roles":["auditor"],"name":"b"}`, 400, "given twice"},
		{"upper-case names", "POST", "/v1/admin/keys", `{"NAME":"a","ROLES":["auditor"]}`, 400, `unknown field "NAME"`},
		{"rotate with a trailing brace", "POST", "/v1/admin/keys/taken/rotate", `{"grace":"1h"}}`, 400, "one JSON object"},
		{"rotate the last admin to expire", "POST", "/v1/admin/keys/test-admin/rotate", map[string]any{"expires_in": "3s"}, 409, "last active admin key"},
		{"too large", "POST", "/v1/admin/keys", `{"name":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "larger than"},
		{"no name", "POST", "/v1/admin/keys", map[string]any{"roles": []string{"auditor"}}, 400, "name is required"},
		{"bad name", "POST", "/v1/admin/keys", map[string]any{"name": "a b", "roles": []string{"auditor"}}, 400, "key name"},
		{"reserved name", "POST", "/v1/admin/keys", map[string]any{"name": "cli", "roles": []string{"auditor"}}, 400, "reserved"},
		{"no roles", "POST", "/v1/admin/keys", map[string]any{"name": "a"}, 400, "at least one role"},
		{"unknown role", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"root"}}, 400, `unknown role "root"`},
		{"past expiry", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"auditor"}, "expires_at": "2020-01-01T00:00:00Z"}, 400, "not in the future"},
		{"bad expiry", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"auditor"}, "expires_at": "tomorrow"}, 400, "RFC 3339"},
		{"two expiries", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"auditor"}, "expires_at": "2030-01-01T00:00:00Z", "expires_in": "1h"}, 400, "not both"},
		{"bad duration", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"auditor"}, "expires_in": "-1h"}, 400, "positive duration"},
		{"too many days", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"auditor"}, "expires_in": "99999d"}, 400, "at most 65535 days"},
		{"long unknown name", "POST", "/v1/admin/keys/" + strings.Repeat("n", 5000) + "/revoke", nil, 404, "nnn…"},
		{"negative rate", "POST", "/v1/admin/keys", map[string]any{"name": "a", "roles": []string{"auditor"}, "rate_limit": map[string]any{"per_second": -1}}, 400, "per_second"},
		{"name taken", "POST", "/v1/admin/keys", map[string]any{"name": "taken", "roles": []string{"auditor"}}, 409, "already exists"},
		{"revoked name", "POST", "/v1/admin/keys", map[string]any{"name": "gone", "roles": []string{"auditor"}}, 409, "not reused"},
		{"revoke unknown", "POST", "/v1/admin/keys/nobody/revoke", nil, 404, `no API key named "nobody"`},
		{"revoke twice", "POST", "/v1/admin/keys/gone/revoke", nil, 409, "already revoked"},
		{"revoke the last admin", "POST", "/v1/admin/keys/test-admin/revoke", nil, 409, "last active admin key"},
		{"rotate unknown", "POST", "/v1/admin/keys/nobody/rotate", nil, 404, `no API key named "nobody"`},
		{"rotate revoked", "POST", "/v1/admin/keys/gone/rotate", nil, 409, "cannot be rotated"},
		{"grace too long", "POST", "/v1/admin/keys/taken/rotate", map[string]any{"grace": "31d"}, 400, "grace"},
		{"bad grace", "POST", "/v1/admin/keys/taken/rotate", map[string]any{"grace": "soon"}, 400, "grace"},
		{"rotate unknown field", "POST", "/v1/admin/keys/taken/rotate", map[string]any{"roles": []string{"admin"}}, 400, `unknown field "roles"`},
		{"wrong method", "DELETE", "/v1/admin/keys/taken", nil, 404, ""},
		{"GET revoke", "GET", "/v1/admin/keys/taken/revoke", nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := size(ts.l)
			r := ts.adminCall(t, tc.method, tc.path, "", tc.body)
			eb := wantError(t, tc.name, r, tc.status)
			if !strings.Contains(eb.Error, tc.want) {
				t.Errorf("%s %s: error %q, want it to contain %q", tc.method, tc.path, eb.Error, tc.want)
			}
			wantNoInternals(t, tc.name, r)
			if got := size(ts.l); got != before {
				t.Errorf("%s: Size() = %d, want %d (unchanged)", tc.name, got, before)
			}
		})
	}

	// Another admin key lifts the last-admin guard.
	ts.createKey(t, map[string]any{"name": "ops", "roles": []string{"admin"}})
	decodeKeyAnswer(t, "revoke test-admin", ts.adminCall(t, "POST", "/v1/admin/keys/test-admin/revoke", "", nil), http.StatusOK)
	wantError(t, "GET /v1/admin/keys with the revoked admin", ts.adminCall(t, "GET", "/v1/admin/keys", "", nil), http.StatusUnauthorized)
}

// TestAdminConfigKeys checks that keys of the server's configuration are
// listed, recorded, and not changed over the API.
func TestAdminConfigKeys(t *testing.T) {
	tok, cfgKey, err := api.NewAPIKey("from-config", api.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf), withAPI(func(c *api.Config) {
		c.ConfigKeys, c.ConfigKeysFrom = []api.APIKey{cfgKey}, "the config file /etc/al.yaml"
	}))
	ts.appendHTTP(t, 0, 1)
	if r := ts.get(t, "/v1/entries/0", tok); r.status != http.StatusOK {
		t.Errorf("GET with a configured key = %v, want 200", r)
	}
	r := ts.adminCall(t, "GET", "/v1/admin/keys", "", nil)
	if !strings.Contains(string(r.body), `{"name":"from-config","roles":["auditor"],"source":"config","status":"active"}`) {
		t.Errorf("GET /v1/admin/keys = %s, want from-config from config", r.body)
	}
	for _, path := range []string{"/v1/admin/keys/from-config/revoke", "/v1/admin/keys/from-config/rotate"} {
		eb := wantError(t, "POST "+path, ts.adminCall(t, "POST", path, "", nil), http.StatusConflict)
		if !strings.Contains(eb.Error, "configuration") {
			t.Errorf("POST %s: error %q, want it to point at the configuration", path, eb.Error)
		}
	}
	wantError(t, "create a key named like a configured one",
		ts.adminCall(t, "POST", "/v1/admin/keys", "", map[string]any{"name": "from-config", "roles": []string{"auditor"}}), http.StatusConflict)
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatal(err)
	}
	if got := findAdmin(adminLeaves(t, ts.l, tok), evt.AdminKeyCreated, "from-config"); len(got) != 1 || got[0].By != evt.AdminByConfig {
		t.Errorf("admin leaves creating from-config = %+v, want one by config", got)
	}

	// A key of that name added to the file by another hand: the error
	// names both places.
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	if err := kf.Write(append(keys, api.APIKey{Name: "from-config", SHA256: api.HashToken("al_other"), Roles: []api.Role{api.RoleAuditor}})); err != nil {
		t.Fatal(err)
	}
	err = ts.api.ReloadKeys(bg)
	if msg := fmt.Sprint(err); !strings.Contains(msg, `"from-config" is defined twice`) || !strings.Contains(msg, "/etc/al.yaml") || !strings.Contains(msg, kf.Path()) {
		t.Errorf("ReloadKeys() with from-config in the file too = %v, want an error naming both places", err)
	}
}

// TestKeyFileChangesSeenLive changes the keys file as the apikey command
// does (another KeyFile on the same path) and by hand, while the server
// runs: it refuses a revoked key without a restart or a signal, and
// records each change, by "cli".
func TestKeyFileChangesSeenLive(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf), withAPI(func(c *api.Config) { c.KeyPollInterval = 20 * time.Millisecond }))
	ts.run(t)
	ts.appendHTTP(t, 0, 1)
	path := kf.Path()
	// The command opens the file anew each time.
	cli := func() *api.KeyFile { return api.NewKeyFile(path) }

	token, _, err := cli().Create(api.KeySpec{Name: "cli-key", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
	if err != nil {
		t.Fatalf("KeyFile.Create() = %v", err)
	}
	waitStatus(t, ts, token, http.StatusOK)
	if _, err := cli().Revoke("cli-key", evt.AdminByCLI, time.Now(), nil); err != nil {
		t.Fatalf("KeyFile.Revoke() = %v", err)
	}
	waitStatus(t, ts, token, http.StatusUnauthorized)

	// A key removed by hand counts as revoked.
	token2, _, err := cli().Create(api.KeySpec{Name: "by-hand", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ts, token2, http.StatusOK)
	keys, err := cli().Read()
	if err != nil {
		t.Fatal(err)
	}
	keys = slices.DeleteFunc(keys, func(k api.APIKey) bool { return k.Name == "by-hand" })
	if err := cli().Write(keys); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ts, token2, http.StatusUnauthorized)

	deadline := time.Now().Add(5 * time.Second)
	for {
		leaves := adminLeaves(t, ts.l, token, token2)
		// The keys the server started with are recorded by Run too.
		ok := len(findAdmin(leaves, evt.AdminKeyCreated, "test-admin")) == 1 &&
			len(findAdmin(leaves, evt.AdminKeyCreated, "cli-key")) == 1 &&
			len(findAdmin(leaves, evt.AdminKeyRevoked, "cli-key")) == 1 &&
			len(findAdmin(leaves, evt.AdminKeyRevoked, "by-hand")) == 1
		if ok {
			for _, a := range leaves {
				if a.By != evt.AdminByCLI {
					t.Errorf("admin leaf %+v, want by cli", a)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin leaves = %+v, want test-admin and cli-key created, cli-key and by-hand revoked", leaves)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A broken file keeps the keys in use.
	if err := os.WriteFile(path, []byte("keys: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if r := ts.get(t, "/v1/entries/0", ts.auditor()); r.status != http.StatusOK {
		t.Errorf("GET after the keys file broke = %v, want 200 (the old keys stay)", r)
	}
	// So does a removed one (TestKeysFileTakenAwayIsRefused).
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if r := ts.get(t, "/v1/entries/0", ts.auditor()); r.status != http.StatusOK {
		t.Errorf("GET after the keys file was removed = %v, want 200 (the old keys stay)", r)
	}
}

// TestKeysFileTakenAwayIsRefused: a keys file removed or emptied while
// the server ran revoked every key (401 for all, admins included, and a
// key_revoked leaf for each), and one edited to hold no admin key got
// round the rule that the last admin key cannot be revoked. Each is
// refused now, as a file that does not parse is: the keys in use stay,
// nothing is recorded, changes over the admin API get 503, and once the
// file is back it loads as before.
func TestKeysFileTakenAwayIsRefused(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(kf.Path())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	noAdmin := slices.DeleteFunc(keys, func(k api.APIKey) bool { return slices.Contains(k.Roles, api.RoleAdmin) })
	for _, tc := range []struct {
		name   string
		change func() error
		want   string
	}{
		{"removed", func() error { return os.Remove(kf.Path()) }, "is gone"},
		{"emptied", func() error { return os.WriteFile(kf.Path(), []byte("keys: []\n"), 0o600) }, "holds no key"},
		{"without its admin key", func() error { return kf.Write(noAdmin) }, "no active admin key"},
	} {
		if err := tc.change(); err != nil {
			t.Fatal(err)
		}
		err := ts.api.ReloadKeys(bg)
		if msg := fmt.Sprint(err); !errors.Is(err, api.ErrKeyFileRefused) || !strings.Contains(msg, tc.want) ||
			!strings.Contains(msg, kf.Path()) || !strings.Contains(msg, "apikey revoke") {
			t.Errorf("keys file %s: ReloadKeys() = %v, want ErrKeyFileRefused naming the file, saying %q and how to revoke keys", tc.name, err, tc.want)
		}
		for _, tok := range []string{ts.admin(), ts.auditor()} {
			if r := ts.get(t, "/v1/entries/0", tok); r.status != http.StatusNotFound && r.status != http.StatusOK {
				t.Errorf("keys file %s: GET /v1/entries/0 with a key loaded before = %v, want it still accepted", tc.name, r)
			}
		}
		r := ts.adminCall(t, "POST", "/v1/admin/keys", "", map[string]any{"name": "new-" + strings.ReplaceAll(tc.name, " ", "-"), "roles": []string{"auditor"}})
		if eb := wantError(t, "create with the keys file "+tc.name, r, http.StatusServiceUnavailable); !strings.Contains(eb.Error, "restore") {
			t.Errorf("create with the keys file %s: error %q, want it to say the file must be restored", tc.name, eb.Error)
		}
		if err := os.WriteFile(kf.Path(), saved, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ts.api.ReloadKeys(bg); err != nil {
			t.Fatalf("ReloadKeys() of the restored keys file = %v", err)
		}
	}
	for _, a := range adminLeaves(t, ts.l) {
		if a.Action == evt.AdminKeyRevoked {
			t.Errorf("admin leaf %+v: a key was recorded as revoked", a)
		}
	}
}

// waitStatus waits until GET /v1/entries/0 with token answers status.
func waitStatus(t testing.TB, ts *testServer, token string, status int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := ts.get(t, "/v1/entries/0", token)
		if r.status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/entries/0 = %v after 5s, want %d", r, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeyFileConcurrentChanges changes the keys file from the admin API
// and from another KeyFile (the apikey command) at once: the lock keeps
// every change.
func TestKeyFileConcurrentChanges(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	path := kf.Path()
	var wg sync.WaitGroup
	const n = 8
	for i := range n {
		wg.Go(func() {
			r, err := tryCall(ts.srv.URL, "POST", "/v1/admin/keys", ts.admin(), "application/json",
				[]byte(fmt.Sprintf(`{"name":"http-%d","roles":["auditor"]}`, i)))
			if err != nil || r.status != http.StatusCreated {
				t.Errorf("POST /v1/admin/keys http-%d = %v, %v", i, r, err)
			}
		})
		wg.Go(func() {
			if _, _, err := api.NewKeyFile(path).Create(api.KeySpec{Name: fmt.Sprintf("cli-%d", i), Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil); err != nil {
				t.Errorf("KeyFile.Create(cli-%d) = %v", i, err)
			}
		})
	}
	wg.Wait()
	keys, err := api.NewKeyFile(path).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4+2*n {
		t.Errorf("keys file holds %d keys, want %d", len(keys), 4+2*n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestKeyAdministrationOff(t *testing.T) {
	ts := newTestServer(t)
	eb := wantError(t, "GET /v1/admin/keys without a keys file", ts.adminCall(t, "GET", "/v1/admin/keys", "", nil), http.StatusNotFound)
	if !strings.Contains(eb.Error, "key administration is off") {
		t.Errorf("error %q", eb.Error)
	}
}

// TestAdminWithAnInvalidKeysFile: while the keys file does not parse (an
// operator's edit gone wrong), changing keys is refused with a 503 that
// says so, not a bare 500, and the keys loaded before keep working.
func TestAdminWithAnInvalidKeysFile(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	if err := os.WriteFile(kf.Path(), []byte("keys: [\n  - name: {oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ts.adminCall(t, "POST", "/v1/admin/keys", "", map[string]any{"name": "new", "roles": []string{"auditor"}})
	eb := wantError(t, "create with an invalid keys file", r, http.StatusServiceUnavailable)
	if !strings.Contains(eb.Error, "keys file does not parse") {
		t.Errorf("create with an invalid keys file: error %q, want it to say the keys file does not parse", eb.Error)
	}
	if r := ts.get(t, "/v1/log", ts.auditor()); r.status != http.StatusOK {
		t.Errorf("GET /v1/log with a key loaded before = %v, want 200", r)
	}
}
