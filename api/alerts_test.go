package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/detect"
	alertevent "github.com/accessledger/accessledger/event"
)

const alertTestRules = `title: failed login
id: failed
name: failed_login
logsource: {product: accessledger, category: authentication}
detection:
  sel: {action: login, outcome: failure}
  condition: sel
---
title: brute force
id: bf
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition: {gte: 3}
level: high
tags: [attack.t1110]
`

// detectionServer is a test server whose API serves a detector following
// its ledger.
func detectionServer(t *testing.T) (*testServer, *detect.Detector) {
	t.Helper()
	ts := newTestServer(t)
	rs, err := detect.LoadRules(fstest.MapFS{"r/a.yml": {Data: []byte(alertTestRules)}}, "r")
	if err != nil {
		t.Fatal(err)
	}
	e, err := detect.Compile(rs, detect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := detect.OpenDetector(bg, detect.DetectorConfig{Log: ts.l, Engine: e, Dir: t.TempDir(), SaveInterval: 10 * time.Millisecond,
		BadgerOptions: func(o badger.Options) badger.Options { return o.WithMemTableSize(8 << 20) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	// Registered after the ledger's cleanup: runs before it.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Detector.Run = %v", err)
		}
		d.Close()
	})
	kr, tokens := newKeys(t)
	ts.srv = newAPIServer(t, ts.l, api.Config{Keys: kr, Detections: d})
	ts.tokens = tokens
	return ts, d
}

type alertsAnswer struct {
	Alerts []struct {
		Index      uint64          `json:"index"`
		LeafHash   string          `json:"leaf_hash"`
		ReceivedAt time.Time       `json:"received_at"`
		Alert      json.RawMessage `json:"alert"`
	} `json:"alerts"`
	Next *uint64 `json:"next"`
}

func TestAlerts(t *testing.T) {
	ts, _ := detectionServer(t)
	for i := 0; i < 3; i++ {
		ev := fmt.Sprintf(`{"time":"2026-01-05T10:00:0%dZ","service":"sso","actor":{"id":"u%d"},"source":{"ip":"45.83.64.1"},"action":"login","category":"authentication","outcome":"failure"}`, i, i)
		if r := ts.post(t, "application/json", []byte(ev)); r.status != http.StatusCreated {
			t.Fatalf("POST event = %v", r)
		}
	}
	var got alertsAnswer
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.get(t, "/v1/alerts", ts.responder())
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/alerts = %v", r)
		}
		wantJSON(t, "GET /v1/alerts", r)
		decodeStrict(t, "alerts", r.body, &got)
		if len(got.Alerts) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got.Alerts) != 1 || got.Next != nil {
		t.Fatalf("GET /v1/alerts = %+v, want one alert and no next page", got)
	}
	a, err := alertevent.ParseAlert(got.Alerts[0].Alert)
	if err != nil {
		t.Fatalf("alertevent.ParseAlert(%s) = %v", got.Alerts[0].Alert, err)
	}
	if a.Rule.ID != "bf" || a.EvidenceCount != 3 || a.Group[0].Value != "45.83.64.1" {
		t.Errorf("alert = %+v, want bf on 3 events of 45.83.64.1", a)
	}
	// The alert is the log's entry at that index, with that leaf hash.
	e := ts.getEntry(t, got.Alerts[0].Index)
	if e.LeafHash != got.Alerts[0].LeafHash {
		t.Errorf("leaf_hash %s, want the entry's %s", got.Alerts[0].LeafHash, e.LeafHash)
	}
	if _, ea, err := alertevent.DecodeAlertLeaf(e.Entry); err != nil || ea.DedupKey != a.DedupKey {
		t.Errorf("entry %d = %s (%v), want the alert leaf", got.Alerts[0].Index, e.Entry, err)
	}

	for _, tt := range []struct {
		query string
		n     int
	}{
		{"?level=high", 1}, {"?level=critical", 0}, {"?rule=bf", 1}, {"?rule=failed", 0},
		{"?since=2026-01-05T10:00:00Z", 1}, {"?since=2026-01-06T00:00:00Z", 0},
		{fmt.Sprintf("?cursor=%d", got.Alerts[0].Index+1), 0}, {"?limit=1", 1},
	} {
		r := ts.get(t, "/v1/alerts"+tt.query, ts.auditor())
		var page alertsAnswer
		if r.status == http.StatusOK {
			decodeStrict(t, "alerts", r.body, &page)
		}
		if r.status != http.StatusOK || len(page.Alerts) != tt.n {
			t.Errorf("GET /v1/alerts%s = %v, want %d alerts", tt.query, r, tt.n)
		}
	}
	for _, q := range []string{"?level=severe", "?limit=0", "?limit=1001", "?since=yesterday", "?cursor=-1",
		// What would widen the answer silently: a misspelt or repeated
		// filter, a pair the query string drops, a signed number.
		"?levl=critical", "?level=critical&level=high", "?rule=nonexistent;", "?rule=%zz", "?limit=%2B1",
		// What RFC 3339 does not allow, as event times and the event
		// queries refuse it: a comma, a tenth fractional digit, +24:00.
		"?since=2026-01-05T10:00:00,5Z", "?since=2026-01-05T10:00:00.1234567891Z", "?since=2026-01-05T10:00:00%2B24:00"} {
		wantError(t, "GET /v1/alerts"+q, ts.get(t, "/v1/alerts"+q, ts.responder()), http.StatusBadRequest)
	}
	// The detector's message, not its sentinel's text.
	if eb := wantError(t, "GET /v1/alerts?level=severe", ts.get(t, "/v1/alerts?level=severe", ts.responder()), http.StatusBadRequest); strings.Contains(eb.Error, "detect:") || !strings.Contains(eb.Error, `level "severe"`) {
		t.Errorf("GET /v1/alerts?level=severe: error %q, want the level named and no package prefix", eb.Error)
	}
	if eb := wantError(t, "GET /v1/alerts?since=+01:00", ts.get(t, "/v1/alerts?since=2026-01-05T10:00:00+01:00", ts.responder()), http.StatusBadRequest); !strings.Contains(eb.Error, "%2B") {
		t.Errorf("GET /v1/alerts?since=...+01:00: error %q, want the hint to send + as %%2B", eb.Error)
	}
	// Roles: responder, auditor and admin; not submitter, not anonymous.
	if r := ts.get(t, "/v1/alerts", ts.admin()); r.status != http.StatusOK {
		t.Errorf("GET /v1/alerts as admin = %v", r)
	}
	wantError(t, "GET /v1/alerts as submitter", ts.get(t, "/v1/alerts", ts.submitter()), http.StatusForbidden)
	wantError(t, "GET /v1/alerts without a key", ts.get(t, "/v1/alerts", ""), http.StatusUnauthorized)
	wantError(t, "GET /v1/rules as submitter", ts.get(t, "/v1/rules", ts.submitter()), http.StatusForbidden)
}

func TestRules(t *testing.T) {
	ts, d := detectionServer(t)
	deadline := time.Now().Add(5 * time.Second)
	for d.Status().Engine.Rules == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r := ts.get(t, "/v1/rules", ts.auditor())
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/rules = %v", r)
	}
	var got struct {
		Rules    []detect.RuleStatus `json:"rules"`
		Detector map[string]any      `json:"detector"`
	}
	decodeStrict(t, "rules", r.body, &got)
	if len(got.Rules) != 2 || got.Rules[1].ID != "bf" || got.Rules[1].Type != "event_count" || !got.Rules[1].Alerting || got.Rules[0].Alerting {
		t.Errorf("GET /v1/rules rules = %+v, want failed (not alerting) and bf (event_count, alerting)", got.Rules)
	}
	if _, ok := got.Detector["cursor"]; !ok {
		t.Errorf("GET /v1/rules detector = %v, want a cursor", got.Detector)
	}
	// Without a detector, both endpoints say detection is off.
	plain := newTestServer(t)
	wantError(t, "GET /v1/alerts without detection", plain.get(t, "/v1/alerts", plain.responder()), http.StatusNotFound)
	wantError(t, "GET /v1/rules without detection", plain.get(t, "/v1/rules", plain.responder()), http.StatusNotFound)
}

// behindDetector is the server's detector, saying it is behind.
type behindDetector struct{ api.Detections }

func (behindDetector) Behind() bool { return true }

// TestAppendsWaitForABehindDetector: while the detector lags more than it
// may, appends get 503 with Retry-After and a message naming it, nothing
// is appended, and the pushback is counted.
func TestAppendsWaitForABehindDetector(t *testing.T) {
	ts, d := detectionServer(t)
	reg := prometheus.NewRegistry()
	srv := newAPIServer(t, ts.l, api.Config{Keys: mustKeyring(t, ts.tokens), Detections: behindDetector{d}, Gatherer: reg, Registerer: reg})
	ev := []byte(`{"time":"2026-01-05T10:00:00Z","service":"sso","actor":{"id":"u"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}`)
	before, _ := ts.l.Size()
	r := call(t, srv.URL, http.MethodPost, "/v1/events", ts.submitter(), "application/json", ev)
	eb := wantError(t, "POST while the detector is behind", r, http.StatusServiceUnavailable)
	if !strings.Contains(eb.Error, "detector is behind") {
		t.Errorf("POST while the detector is behind: error %q does not name the detector", eb.Error)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("POST while the detector is behind: no Retry-After")
	}
	if after, _ := ts.l.Size(); after != before {
		t.Errorf("log size %d, want %d: nothing appended", after, before)
	}
	m := call(t, srv.URL, http.MethodGet, "/metrics", ts.admin(), "", nil)
	if v, ok := metricValue(t, m.body, `accessledger_http_follower_pushback_total{follower="detector"}`); !ok || v != 1 {
		t.Errorf("accessledger_http_follower_pushback_total{follower=\"detector\"} = %v (found %v), want 1", v, ok)
	}
	// The real detector, caught up, does not hold appends back.
	if r := ts.post(t, "application/json", ev); r.status != http.StatusCreated {
		t.Errorf("POST = %v, want 201", r)
	}
}
