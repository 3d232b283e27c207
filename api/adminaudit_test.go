package api_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
	evt "github.com/accessledger/accessledger/event"
)

// adminRecords returns the access events recording requests to the admin
// endpoints in the log.
func adminRecords(t testing.TB, ts *testServer) []*evt.Event {
	t.Helper()
	var out []*evt.Event
	for _, ev := range readEvents(t, ts.l, 0) {
		if ev.Category == evt.CategoryAdmin {
			out = append(out, ev)
		}
	}
	return out
}

// waitAdminRecords waits until the log holds n records of requests to the
// admin endpoints, and returns them.
func waitAdminRecords(t testing.TB, ts *testServer, n int) []*evt.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := adminRecords(t, ts)
		if len(got) > n {
			t.Fatalf("%d records of admin requests, want %d: %+v", len(got), n, got)
		}
		if len(got) == n {
			time.Sleep(50 * time.Millisecond) // anything recorded too much would land by now
			if got := adminRecords(t, ts); len(got) != n {
				t.Fatalf("%d records of admin requests, want %d: %+v", len(got), n, got)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records of admin requests after 5s, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantAdminRecord checks one record of a request to an admin endpoint.
func wantAdminRecord(t testing.TB, ev *evt.Event, actor, action, kind, id string, status int, attempts int) {
	t.Helper()
	outcome, reason := evt.OutcomeSuccess, ""
	if status >= 400 {
		outcome, reason = evt.OutcomeFailure, fmt.Sprintf("answered %d", status)
	}
	wantAttempts := ""
	if attempts > 1 {
		wantAttempts = strconv.Itoa(attempts)
	}
	if ev.Service != api.ReadAuditService || ev.Actor.ID != actor || ev.Actor.Type != evt.ActorService || ev.Action != action ||
		ev.Category != evt.CategoryAdmin || ev.Outcome != outcome || ev.Reason != reason || ev.Resource == nil ||
		ev.Resource.Type != kind || ev.Resource.ID != id || ev.Attributes["status"] != strconv.Itoa(status) ||
		ev.Attributes["attempts"] != wantAttempts {
		t.Errorf("record = %s, want %s %s %s %q answered %d (attempts %q)", ev.Canonical(), actor, action, kind, id, status, wantAttempts)
	}
}

// TestAdminRefusalsAreRecorded: a key without the admin role calling the
// admin endpoints got 403, which only the server's access log showed. A
// refusal of a known key is now recorded in the log, as reads are, and so
// is a listing of the keys; a flood of refusals makes two records per key
// and minute, the second saying how many; requests without a known key
// are not recorded.
func TestAdminRefusalsAreRecorded(t *testing.T) {
	clock := newTestClock()
	ts := newTestServer(t, withKeyFile(t, nil), withClock(clock), withAPI(func(c *api.Config) {
		c.ReadAudit = api.ReadAudit{Enabled: true, Interval: 10 * time.Millisecond}
	}))
	ts.run(t)
	old := ts.createKey(t, map[string]any{"name": "old", "roles": []string{"admin"}})
	decodeKeyAnswer(t, "revoke old", ts.adminCall(t, "POST", "/v1/admin/keys/old/revoke", "", nil), http.StatusOK)

	for i := range 50 {
		path, method := "/v1/admin/keys", "GET"
		if i > 0 {
			path, method = "/v1/admin/keys/test-admin/revoke", "POST"
		}
		wantError(t, "the submitter's admin request", ts.adminCall(t, method, path, ts.submitter(), nil), http.StatusForbidden)
	}
	if r := ts.adminCall(t, "GET", "/v1/admin/keys", "", nil); r.status != http.StatusOK {
		t.Fatalf("GET /v1/admin/keys = %v", r)
	}
	wantError(t, "a revoked admin key", ts.adminCall(t, "GET", "/v1/admin/keys", old.Secret, nil), http.StatusUnauthorized)
	// Not recorded: no key, an unknown one, and the changes, which are
	// admin leaves.
	wantError(t, "an unknown key", ts.adminCall(t, "GET", "/v1/admin/keys", "al_unknown", nil), http.StatusUnauthorized)
	wantError(t, "no key", call(t, ts.srv.URL, "GET", "/v1/admin/keys", "", "", nil), http.StatusUnauthorized)

	got := waitAdminRecords(t, ts, 3)
	wantAdminRecord(t, got[0], "test-submitter", "read", "api_keys", "", 403, 1)
	wantAdminRecord(t, got[1], "test-admin", "read", "api_keys", "", 200, 1)
	wantAdminRecord(t, got[2], "old", "read", "api_keys", "", 401, 1)

	// The rest of the submitter's refusals, once its window ends: one
	// record, the first of them with how many.
	clock.advance(api.RefusedAdminWindow)
	got = waitAdminRecords(t, ts, 4)
	wantAdminRecord(t, got[3], "test-submitter", "revoke", "api_key", "test-admin", 403, 49)
	// A new window: recorded at once.
	wantError(t, "the submitter's admin request", ts.adminCall(t, "POST", "/v1/admin/keys", ts.submitter(), map[string]any{"name": "x"}), http.StatusForbidden)
	got = waitAdminRecords(t, ts, 5)
	wantAdminRecord(t, got[4], "test-submitter", "create", "api_key", "", 403, 1)
}

// TestAdminRefusalsRecordedAtShutdown: the refusals of a window not ended
// are recorded when the server stops.
func TestAdminRefusalsRecordedAtShutdown(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.ReadAudit = api.ReadAudit{Enabled: true, Interval: time.Hour}
	}))
	for range 3 {
		wantError(t, "the auditor's admin request", ts.adminCall(t, "GET", "/v1/admin/decisions", ts.auditor(), nil), http.StatusForbidden)
	}
	runAndStop(t, ts)
	got := adminRecords(t, ts)
	if len(got) != 2 {
		t.Fatalf("%d records of admin requests, want 2: %+v", len(got), got)
	}
	wantAdminRecord(t, got[0], "test-auditor", "read", "decisions", "", 403, 1)
	wantAdminRecord(t, got[1], "test-auditor", "read", "decisions", "", 403, 2)
}
