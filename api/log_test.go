package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/internal/syncbuf"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the
// test's.
type syncBuffer = syncbuf.Buffer

// requestLogs returns the "http request" records logged so far.
func requestLogs(t *testing.T, logs *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["msg"] == "http request" {
			out = append(out, rec)
		}
	}
	return out
}

// TestRequestLog checks the one info line per request: method, route
// pattern, status, API key name, duration in milliseconds and client IP,
// and never a secret, a body, a query string or a value from the path.
func TestRequestLog(t *testing.T) {
	logs := &syncBuffer{}
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}))
	const bodyMarker, queryMarker = "body-marker-alice", "query-marker-bob"

	type want struct {
		method, route string
		status        int
		key           string // "" for none
	}
	requests := []struct {
		method, path, token string
		body                []byte
		want                *want // nil: not logged at info
	}{
		{"POST", "/v1/events?partial=false", ts.submitter(), mustJSON(t, edit(event(1), "actor.id", bodyMarker)),
			&want{"POST", "/v1/events", 201, "test-submitter"}},
		// An unknown parameter is refused (400); its value is not logged.
		{"GET", "/v1/entries/0?marker=" + queryMarker, ts.auditor(), nil, &want{"GET", "/v1/entries/:index", 400, "test-auditor"}},
		{"GET", "/v1/entries/0", ts.auditor(), nil, &want{"GET", "/v1/entries/:index", 200, "test-auditor"}},
		{"GET", "/v1/entries/0", "", nil, &want{"GET", "/v1/entries/:index", 401, ""}},
		{"GET", "/v1/entries/0", ts.submitter(), nil, &want{"GET", "/v1/entries/:index", 403, "test-submitter"}},
		{"GET", "/tile/entries/000.p/1", ts.auditor(), nil, &want{"GET", "/tile/*path", 200, "test-auditor"}},
		{"GET", "/v1/nope/" + queryMarker, ts.admin(), nil, &want{"GET", "unmatched", 404, ""}},
		{"GET", "/healthz", "", nil, nil},
	}
	var wants []want
	for _, rq := range requests {
		call(t, ts.srv.URL, rq.method, rq.path, rq.token, "application/json", rq.body)
		if rq.want != nil {
			wants = append(wants, *rq.want)
		}
	}
	// A request is logged once its handler returns, which may be just
	// after the client has the answer.
	var recs []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if recs = requestLogs(t, logs); len(recs) >= len(wants) || time.Now().After(deadline) {
			break
		}
	}
	if len(recs) != len(wants) {
		t.Fatalf("logged %d request lines at info, want %d (health probes only at debug):\n%s", len(recs), len(wants), logs)
	}
	for i, w := range wants {
		rec := recs[i]
		if rec["level"] != "INFO" || rec["method"] != w.method || rec["route"] != w.route || rec["status"] != float64(w.status) {
			t.Errorf("request log %d = %v, want level INFO method %s route %s status %d", i, rec, w.method, w.route, w.status)
		}
		if key, _ := rec["api_key"].(string); key != w.key {
			t.Errorf("request log %d api_key = %q, want %q", i, key, w.key)
		}
		if d, ok := rec["duration_ms"].(float64); !ok || d < 0 || d > 60_000 {
			t.Errorf("request log %d duration_ms = %v, want a number of milliseconds", i, rec["duration_ms"])
		}
		if rec["client_ip"] != "127.0.0.1" {
			t.Errorf("request log %d client_ip = %v, want 127.0.0.1", i, rec["client_ip"])
		}
	}
	out := logs.String()
	for _, secret := range []string{ts.submitter(), ts.auditor(), ts.admin(), api.HashToken(ts.auditor()), bodyMarker, queryMarker, "partial=", "/v1/entries/0"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains %q, which it must never hold:\n%s", secret, out)
		}
	}
	if r := ts.get(t, "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("GET /healthz = %v, want 200", r)
	}
}
