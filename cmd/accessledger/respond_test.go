package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/internal/prooftest"
)

// bruteForce returns n brute forces, each six failed logins one second
// apart from its own address against its own account, as the default
// pack's al-bruteforce-fast rule detects them.
func bruteForce(base time.Time, from, n int) []json.RawMessage {
	var out []json.RawMessage
	for i := from; i < from+n; i++ {
		for k := range 6 {
			ev := map[string]any{
				"id":       fmt.Sprintf("bf-%d-%d", i, k),
				"time":     base.Add(time.Duration(i)*time.Minute + time.Duration(k)*time.Second).Format(time.RFC3339Nano),
				"service":  "sso",
				"actor":    map[string]any{"id": fmt.Sprintf("victim%d", i)},
				"source":   map[string]any{"ip": fmt.Sprintf("45.83.%d.%d", 60+i/200, 1+i%200)},
				"action":   "login",
				"category": "authentication",
				"outcome":  "failure",
				"reason":   "invalid_credentials",
			}
			b, _ := json.Marshal(ev)
			out = append(out, b)
		}
	}
	return out
}

// flakyReceiver is a Standard Webhooks receiver on loopback that is down
// at first (nothing listens on its port), then answers 500, then 429
// with Retry-After, then 200. It verifies every request's signature with
// the specification's reference library.
type flakyReceiver struct {
	t      *testing.T
	addr   string
	secret string
	wh     *standardwebhooks.Webhook

	mu        sync.Mutex
	failing   int // requests still to answer 500
	limited   int // requests still to answer 429
	requests  int
	delivered map[string]int // webhook-id → 200 answers
	badSigs   int
	srv       *http.Server
}

func newFlakyReceiver(t *testing.T) *flakyReceiver {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &flakyReceiver{t: t, addr: freeAddr(t), secret: secret, wh: wh, failing: 3, limited: 2, delivered: map[string]int{}}
}

// up starts listening.
func (r *flakyReceiver) up() {
	lis, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("receiver listen: %v", err)
	}
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(lis)
	r.t.Cleanup(func() { r.srv.Close() })
}

func (r *flakyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.badSigs++
		r.t.Errorf("webhook %s: signature does not verify with the reference library: %v", req.Header.Get("webhook-id"), err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case r.failing > 0:
		r.failing--
		w.WriteHeader(http.StatusInternalServerError)
	case r.limited > 0:
		r.limited--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	default:
		r.delivered[req.Header.Get("webhook-id")]++
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *flakyReceiver) deliveredIDs() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.delivered)
}

// alertIDs lists the ids (log indexes) of every alert the server lists.
func (s *server) alertIDs() []string {
	s.t.Helper()
	var ids []string
	cursor := uint64(0)
	for {
		var page struct {
			Alerts []struct {
				Index uint64 `json:"index"`
			} `json:"alerts"`
			Next *uint64 `json:"next"`
		}
		s.get(fmt.Sprintf("/v1/alerts?limit=1000&cursor=%d", cursor), &page)
		for _, a := range page.Alerts {
			ids = append(ids, strconv.FormatUint(a.Index, 10))
		}
		if page.Next == nil {
			return ids
		}
		cursor = *page.Next
	}
}

// messageID returns the webhook-id of a message of the server's log: the
// first 16 hex digits of its first leaf's hash, an underscore, and local (an
// alert id, for alert.raised).
func (s *server) messageID(local string) string {
	s.t.Helper()
	var e struct {
		LeafHash []byte `json:"leaf_hash"`
	}
	s.get("/v1/entries/0", &e)
	if len(e.LeafHash) != 32 {
		s.t.Fatalf("GET /v1/entries/0: a %d-byte leaf hash", len(e.LeafHash))
	}
	return fmt.Sprintf("%x_%s", e.LeafHash[:8], local)
}

// TestWebhookDeliverySurvivesSIGKILL drives real alerts to a real webhook
// receiver that is down, then fails, then rate-limits, then accepts, with
// a SIGKILL of the server in the middle: every alert arrives, every
// signature verifies with the Standard Webhooks reference library, and
// an alert arrives more than once only if it was in flight at the kill.
func TestWebhookDeliverySurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rcv := newFlakyReceiver(t)
	cfg := writeConfig(t, fmt.Sprintf(`
responders:
  - name: soc
    type: webhook
    url: http://%s/hook
    secret: %s
    filter: {levels: [high, critical]}
delivery:
  schedule: [0s, 200ms, 400ms, 800ms]
  max_attempts: 50
  timeout: 2s
`, rcv.addr, rcv.secret))
	dir := t.TempDir()
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	s := startServer(t, dir, "--config", cfg)
	if status, _, body, err := s.postEvents(t.Context(), "", bruteForce(base, 0, 4)); err != nil || status/100 != 2 {
		t.Fatalf("POST /v1/events = %d %s, %v", status, body, err)
	}
	s.caughtUp(30 * time.Second)
	// The receiver is down: the deliveries wait in the outbox. Kill the
	// server with them there.
	time.Sleep(300 * time.Millisecond)
	s.kill()
	rcv.up()
	s = startServer(t, dir, "--config", cfg)
	if status, _, body, err := s.postEvents(t.Context(), "", bruteForce(base, 4, 4)); err != nil || status/100 != 2 {
		t.Fatalf("POST /v1/events = %d %s, %v", status, body, err)
	}
	s.caughtUp(30 * time.Second)
	var ids []string
	for _, id := range s.alertIDs() {
		ids = append(ids, s.messageID(id))
	}
	if len(ids) != 8 {
		t.Fatalf("%d alerts, want 8 (one per brute force)", len(ids))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := rcv.deliveredIDs()
		missing := 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d alerts never delivered; receiver got %v", missing, len(ids), got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := rcv.deliveredIDs()
	for id, n := range got {
		if !slices.Contains(ids, id) {
			t.Errorf("delivered webhook-id %q is not an alert's message id", id)
		}
		if n > 1 {
			// Nothing was in flight at the kill (the receiver was down).
			t.Errorf("alert %s delivered %d times", id, n)
		}
	}
	rcv.mu.Lock()
	if rcv.failing != 0 || rcv.limited != 0 {
		t.Errorf("the receiver's 500 and 429 phases were not reached")
	}
	rcv.mu.Unlock()
	// Each delivery is recorded in the log as a response leaf.
	waitResponses(t, s, "delivered", len(ids))
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Errorf("server exit code %d after SIGTERM", code)
	}
}

// waitResponses waits until the log holds at least n response leaves of
// the action.
func waitResponses(t *testing.T, s *server, action string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		count := 0
		var log struct {
			Size uint64 `json:"size"`
		}
		s.get("/v1/log", &log)
		for i := range log.Size {
			data, _, err := s.entry(t.Context(), i)
			if err != nil {
				t.Fatal(err)
			}
			var leaf struct {
				Kind string `json:"kind"`
				Body struct {
					Action string `json:"action"`
				} `json:"body"`
			}
			if json.Unmarshal(data, &leaf) == nil && leaf.Kind == "response" && leaf.Body.Action == action {
				count++
			}
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log holds %d %s response leaves, want %d", count, action, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestExampleConfig checks that examples/serve.yaml, the documented
// example of every responder, loads and passes every check serve makes.
func TestExampleConfig(t *testing.T) {
	text, err := os.ReadFile("../../examples/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's command does not exist here; everything else is as
	// written.
	p := writeConfig(t, strings.ReplaceAll(string(text), "/usr/local/bin/disable-account", "/bin/true"))
	cfg, err := loadConfig([]string{"--config", p}, envMap(), io.Discard)
	if err != nil {
		t.Fatalf("loading examples/serve.yaml: %v", err)
	}
	if len(cfg.Responders) != 4 || !cfg.Decisions.Enabled || len(cfg.Delivery.Schedule) != 10 || cfg.Delivery.Schedule[2] != 5*time.Minute {
		t.Errorf("examples/serve.yaml loaded as %d responders, decisions %v, schedule %v", len(cfg.Responders), cfg.Decisions.Enabled, cfg.Delivery.Schedule)
	}
	types := map[string]bool{}
	for _, r := range cfg.Responders {
		types[r.Type] = true
	}
	if len(types) != 4 {
		t.Errorf("the example shows responder types %v, want all four", types)
	}
	if _, err := loadConfig([]string{"--respond=false"}, envMap(), io.Discard); err != nil {
		t.Errorf("--respond=false with the defaults: %v", err)
	}
	if _, err := loadConfig([]string{"--config", p, "--respond=false"}, envMap(), io.Discard); err == nil {
		t.Error("--respond=false with responders configured: no error")
	}
	bad := writeConfig(t, "responders:\n  - name: x\n    type: carrier-pigeon\n")
	if _, err := loadConfig([]string{"--config", bad}, envMap(), io.Discard); err == nil || !strings.Contains(err.Error(), "carrier-pigeon") {
		t.Errorf("an unknown responder type: %v, want an error naming it", err)
	}
}

// incidentEntry is an entry of an incident's evidence bundle.
type incidentEntry struct {
	Index     uint64          `json:"index"`
	Entry     json.RawMessage `json:"entry"`
	TLogProof string          `json:"tlog_proof"`
}

// bundleEntries reads the entries of an evidence bundle (one per line).
func bundleEntries(t *testing.T, bundle string) []incidentEntry {
	t.Helper()
	var out []incidentEntry
	for _, line := range strings.Split(bundle, "\n") {
		if !strings.HasPrefix(line, `{"index":`) {
			continue
		}
		var e incidentEntry
		if err := json.Unmarshal([]byte(strings.TrimSuffix(line, ",")), &e); err != nil {
			t.Fatalf("bundle entry %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// TestIncidentEndToEnd follows one incident through the real binary: a
// simulated brute force raises an alert, the alert is delivered to a
// webhook (signature checked with the reference library), a bouncer pulls
// the ban decision, a responder acknowledges and resolves it, and the
// incident's entries (event, alert, responses) are proven against one
// signed checkpoint with golang.org/x/mod/sumdb code.
func TestIncidentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rcv := newFlakyReceiver(t)
	rcv.failing, rcv.limited = 0, 0
	rcv.up()
	const bouncerToken = "al_e2e-bouncer-token-0123456789abcdefghijklmnop"
	const adminToken = "al_e2e-admin-token-0123456789abcdefghijklmnopq"
	dir := t.TempDir()
	// The test's helpers read the admin token from <data>/admin.key.
	if err := os.WriteFile(filepath.Join(dir, "admin.key"), []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`
responders:
  - name: soc
    type: webhook
    url: http://%s/hook
    secret: %s
    lifecycle: true
delivery:
  schedule: [0s, 200ms]
  timeout: 2s
api_keys:
  - name: firewall
    sha256: %s
    roles: [bouncer]
  - name: soc-analyst
    sha256: %s
    roles: [admin]
`, rcv.addr, rcv.secret, api.HashToken(bouncerToken), api.HashToken(adminToken)))
	s := startServer(t, dir, "--config", cfg)
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	if status, _, body, err := s.postEvents(t.Context(), "", bruteForce(base, 0, 1)); err != nil || status/100 != 2 {
		t.Fatalf("POST /v1/events = %d %s, %v", status, body, err)
	}
	s.caughtUp(30 * time.Second)
	ids := s.alertIDs()
	if len(ids) != 1 {
		t.Fatalf("%d alerts, want 1", len(ids))
	}
	id := ids[0]

	// The webhook.
	msgID := s.messageID(id)
	waitUntil(t, "the webhook delivery", func() bool { return rcv.deliveredIDs()[msgID] == 1 })

	// The bouncer's pull.
	var stream struct {
		New []struct {
			ID       int64  `json:"id"`
			Origin   string `json:"origin"`
			Type     string `json:"type"`
			Scope    string `json:"scope"`
			Value    string `json:"value"`
			Duration string `json:"duration"`
			Scenario string `json:"scenario"`
		} `json:"new"`
	}
	waitUntil(t, "the ban decision", func() bool {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.base+"/v1/decisions/stream?startup=true", nil)
		req.Header.Set("X-Api-Key", bouncerToken)
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET /v1/decisions/stream = %d %s", resp.StatusCode, b)
		}
		stream.New = nil
		if err := json.NewDecoder(resp.Body).Decode(&stream); err != nil {
			t.Fatal(err)
		}
		return len(stream.New) == 1
	})
	d := stream.New[0]
	if d.Value != "45.83.60.1" || d.Scope != "Ip" || d.Type != "ban" || d.Scenario != "al-bruteforce-fast" {
		t.Errorf("decision %+v, want a ban of 45.83.60.1 by al-bruteforce-fast", d)
	}
	if dur, err := time.ParseDuration(d.Duration); err != nil || dur <= 3*time.Hour || dur > 4*time.Hour {
		t.Errorf("decision duration %q, want just under 4h", d.Duration)
	}

	// Acknowledge, then resolve.
	for _, step := range []string{"ack", "resolve"} {
		code, body, err := s.do(t.Context(), http.MethodPost, "/v1/alerts/"+id+"/"+step, s.token, []byte(`{"note":"e2e `+step+`"}`))
		if err != nil || code != http.StatusCreated {
			t.Fatalf("POST /v1/alerts/%s/%s = %d %s, %v", id, step, code, body, err)
		}
		if step == "ack" {
			waitUntil(t, "the acknowledgement to count", func() bool {
				var a struct {
					Status string `json:"status"`
				}
				s.get("/v1/alerts/"+id, &a)
				return a.Status == "acknowledged"
			})
		}
	}
	// The lifecycle notifications reach the webhook too.
	waitUntil(t, "three notifications", func() bool { return len(rcv.deliveredIDs()) == 3 })

	// The incident, proven.
	var inc struct {
		Status    string          `json:"status"`
		Evidence  json.RawMessage `json:"evidence"`
		Responses json.RawMessage `json:"responses"`
		Pending   []uint64        `json:"pending"`
		Bundle    string          `json:"bundle"`
	}
	var kinds map[string]int
	var actions map[string]int
	waitUntil(t, "the incident complete and proven", func() bool {
		inc.Pending = nil
		s.get("/v1/incidents/"+id, &inc)
		kinds, actions = map[string]int{}, map[string]int{}
		for _, e := range bundleEntries(t, inc.Bundle) {
			if err := prooftest.CheckTLogProof(e.Entry, e.TLogProof, s.verifier); err != nil {
				t.Fatalf("entry %d of the incident: %v", e.Index, err)
			}
			var leaf struct {
				Kind string `json:"kind"`
				Body struct {
					Action string `json:"action"`
				} `json:"body"`
			}
			json.Unmarshal(e.Entry, &leaf)
			kinds[leaf.Kind]++
			if leaf.Kind == "response" {
				actions[leaf.Body.Action]++
			}
		}
		return inc.Status == "resolved" && len(inc.Pending) == 0 && actions["delivered"] == 3
	})
	if kinds["event"] != 6 || kinds["alert"] != 1 {
		t.Errorf("incident holds %v, want the 6 events and the alert", kinds)
	}
	for _, a := range []string{"acknowledged", "resolved", "decision_added", "delivered"} {
		if actions[a] == 0 {
			t.Errorf("incident responses %v lack %s", actions, a)
		}
	}
	// A changed byte fails the third-party check.
	e := bundleEntries(t, inc.Bundle)[0]
	bad := slices.Clone([]byte(e.Entry))
	bad[len(bad)/2] ^= 1
	if prooftest.CheckTLogProof(bad, e.TLogProof, s.verifier) == nil {
		t.Error("a changed entry still verifies")
	}
	if code := s.terminate(30 * time.Second); code != 0 {
		t.Errorf("server exit code %d after SIGTERM", code)
	}
}

// waitUntil polls cond for up to 20 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeliveryConfigBounds: the bounds of the outbox and the dead
// letters are on by default, kept when the delivery section sets other
// fields, and taken as written.
func TestDeliveryConfigBounds(t *testing.T) {
	for _, tc := range []struct {
		yaml                 string
		wantQueued, wantDead int
	}{
		{"", 100_000, 100_000},
		{"delivery: {timeout: 20s}\n", 100_000, 100_000},
		{"delivery: {max_queued: 5000, max_dead_letters: 7}\n", 5000, 7},
	} {
		var args []string
		if tc.yaml != "" {
			args = []string{"--config", writeConfig(t, tc.yaml)}
		}
		cfg, err := loadConfig(args, envMap(), io.Discard)
		if err != nil {
			t.Fatalf("loadConfig(%q): %v", tc.yaml, err)
		}
		if cfg.Delivery.MaxQueued != tc.wantQueued || cfg.Delivery.MaxDeadLetters != tc.wantDead {
			t.Errorf("loadConfig(%q): delivery.max_queued = %d, max_dead_letters = %d; want %d, %d",
				tc.yaml, cfg.Delivery.MaxQueued, cfg.Delivery.MaxDeadLetters, tc.wantQueued, tc.wantDead)
		}
	}
}
