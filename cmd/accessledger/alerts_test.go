package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/respond"
)

// alertsServer is a ledger, a respond service following it and the API
// over both, served on loopback, with a responder and an auditor key.
type alertsServer struct {
	l         *ledger.Ledger
	handler   http.Handler
	url       string
	responder string
	auditor   string
}

func newAlertsServer(t *testing.T) *alertsServer {
	t.Helper()
	ctx := context.Background()
	l := ledgertest.New(t, ledger.Config{Origin: "example.com/accessledger/alerts-cli-test",
		CheckpointInterval: time.Hour, Registerer: prometheus.NewRegistry()})
	svc, err := respond.Open(ctx, respond.Config{Log: l, Dir: t.TempDir(), BadgerOptions: ledgertest.SmallBadger})
	if err != nil {
		t.Fatalf("respond.Open() = %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Service.Run = %v", err)
		}
		svc.Close()
	})
	rtok, rkey, _ := api.NewAPIKey("oncall", api.RoleResponder)
	atok, akey, _ := api.NewAPIKey("audit", api.RoleAuditor)
	kr, err := api.NewKeyring([]api.APIKey{rkey, akey})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Ledger: l, Keys: kr, Responses: svc, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("api.New() = %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &alertsServer{l: l, handler: s.Handler(), url: srv.URL, responder: rtok, auditor: atok}
}

// appendLeaves appends events and then alerts raised on them, and
// returns the alerts' indexes.
func (as *alertsServer) appendAlerts(t *testing.T, first, n int) []uint64 {
	t.Helper()
	ctx := context.Background()
	ev, err := event.EncodeLeaf(event.KindEvent, time.Now(), []byte(fmt.Sprintf(`{"time":"2026-01-05T10:00:00Z","service":"sso","n":%d}`, first)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := as.l.Append(ctx, ledger.Entry{Data: ev})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for i := first; i < first+n; i++ {
		t0 := time.Date(2026, 1, 5, 10, 0, i, 0, time.UTC)
		a := &event.Alert{DedupKey: "bf|" + strconv.Itoa(i), Time: t0,
			Rule:   event.AlertRule{ID: "bf", Title: "brute force", Level: event.LevelHigh},
			Group:  []event.GroupValue{{Field: "source.ip", Value: "45.83.64.1"}},
			Window: event.Window{Start: t0.Add(-time.Minute), End: t0}, Evidence: []uint64{res[0].Index}, EvidenceCount: 1,
			Summary: fmt.Sprintf("alert %d: failed logins", i)}
		leaf, err := event.EncodeAlertLeaf(a, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r, err := as.l.Append(ctx, ledger.Entry{Data: leaf})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r[0].Index)
	}
	return out
}

// cli runs accessledger with the server's URL and key in the
// environment.
func (as *alertsServer) cli(t *testing.T, key string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := environment{"ACCESSLEDGER_URL": as.url, "ACCESSLEDGER_API_KEY": key}
	var out, errb bytes.Buffer
	code = run(args, env, &out, &errb)
	return code, out.String(), errb.String()
}

// waitList polls "alerts list" until it prints n alerts of the status.
func (as *alertsServer) waitList(t *testing.T, n int, status string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errs := as.cli(t, as.auditor, "alerts", "list", "--status", status)
		if code != 0 {
			t.Fatalf("alerts list = exit %d: %s", code, errs)
		}
		if strings.Count(out, "\n") == n+1 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts list --status %s = %q after 10s, want %d alerts", status, out, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAlertsCLI(t *testing.T) {
	as := newAlertsServer(t)
	ids := as.appendAlerts(t, 0, 3)
	out := as.waitList(t, 3, "open")
	if !strings.HasPrefix(out, "INDEX") || !strings.Contains(out, "alert 2: failed logins") || !strings.Contains(out, "source.ip=45.83.64.1") {
		t.Errorf("alerts list = %q, want a table of the alerts", out)
	}
	code, out, errs := as.cli(t, as.responder, "alerts", "list", "--json", "--after", strconv.FormatUint(ids[0], 10), "--limit", "1")
	var items []feedAlert
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil || len(items) != 1 || items[0].Index != ids[1] {
		t.Errorf("alerts list --json --after %d --limit 1 = exit %d %q %q, want alert %d", ids[0], code, out, errs, ids[1])
	}

	// Acknowledge, then resolve.
	code, out, errs = as.cli(t, as.responder, "alerts", "ack", strconv.FormatUint(ids[0], 10), "--note", "on it")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("acknowledged alert %d", ids[0])) {
		t.Fatalf("alerts ack = exit %d %q %q", code, out, errs)
	}
	as.waitList(t, 1, "acknowledged")
	code, _, errs = as.cli(t, as.responder, "alerts", "ack", strconv.FormatUint(ids[0], 10))
	if code != 1 || !strings.Contains(errs, "409") || !strings.Contains(errs, "already acknowledged") {
		t.Errorf("alerts ack again = exit %d %q, want 1 and the conflict", code, errs)
	}
	if code, out, errs = as.cli(t, as.responder, "alerts", "resolve", strconv.FormatUint(ids[1], 10), "--note", "false positive"); code != 0 || !strings.Contains(out, "resolved alert") {
		t.Errorf("alerts resolve = exit %d %q %q", code, out, errs)
	}
	as.waitList(t, 1, "resolved")
	if code, _, errs = as.cli(t, as.auditor, "alerts", "ack", strconv.FormatUint(ids[2], 10)); code != 1 || !strings.Contains(errs, "403") {
		t.Errorf("alerts ack as auditor = exit %d %q, want 403", code, errs)
	}
	if code, _, errs = as.cli(t, as.responder, "alerts", "ack", "0"); code != 1 || !strings.Contains(errs, "404") {
		t.Errorf("alerts ack of an event = exit %d %q, want 404", code, errs)
	}
	for _, args := range [][]string{{"alerts"}, {"alerts", "frob"}, {"alerts", "ack"}, {"alerts", "ack", "x"}, {"alerts", "list", "--status", "new"},
		{"alerts", "incident", "1", "--verify"}, {"alerts", "watch", "--from-now", "--after", "3"}} {
		if code, _, _ := as.cli(t, as.responder, args...); code == 0 {
			t.Errorf("accessledger %q = exit 0, want an error", args)
		}
	}
	// A refused --after is named as the user gave it, not as a header.
	if code, _, errs := as.cli(t, as.responder, "alerts", "watch", "--after", "999999"); code == 0 || !strings.Contains(errs, "after 999999") || strings.Contains(errs, "Last-Event-ID") {
		t.Errorf("alerts watch --after 999999 = exit %d %q, want a refusal naming after", code, errs)
	}
	if code, out, _ := as.cli(t, as.responder, "alerts", "-h"); code != 0 || !strings.Contains(out, "usage: accessledger alerts") {
		t.Errorf("alerts -h = exit %d %q", code, out)
	}

	// The incident, verified offline, and its bundle for "verify".
	if _, err := as.l.SignCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	vkeyFile := filepath.Join(t.TempDir(), "log.vkey")
	if err := os.WriteFile(vkeyFile, []byte(as.l.VerifierKey()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "incident.json")
	code, out, errs = as.cli(t, as.auditor, "alerts", "incident", strconv.FormatUint(ids[0], 10), "--verify", "--vkey", vkeyFile, "-o", bundle)
	if code != 0 || !strings.Contains(out, "verified: 3 entries proven") || !strings.Contains(out, "status acknowledged") ||
		!regexp.MustCompile(`acknowledged\s+by oncall\s+on it`).MatchString(out) {
		t.Fatalf("alerts incident --verify = exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := as.cli(t, "", "verify", bundle, "--vkey", vkeyFile); code != 0 || !strings.Contains(out, "OK: 3 entries") {
		t.Errorf("verify %s = exit %d %q %q", bundle, code, out, errs)
	}
	other, _, _ := signature.NewED25519SignerVerifier(rand.Reader)
	otherSigner, _ := ledger.NewNoteSigner("example.com/other", other)
	if code, _, errs := as.cli(t, as.auditor, "alerts", "incident", strconv.FormatUint(ids[0], 10), "--verify", "--vkey", otherSigner.VerifierKey()); code != 1 || !strings.Contains(errs, "does not verify") {
		t.Errorf("alerts incident --verify with another log's key = exit %d %q, want a failure", code, errs)
	}
}

// TestVerifyIncidentRefuses changes what an incident says, one claim at a
// time: each change fails verification.
func TestVerifyIncidentRefuses(t *testing.T) {
	as := newAlertsServer(t)
	ids := as.appendAlerts(t, 0, 2)
	as.waitList(t, 2, "open")
	if code, _, errs := as.cli(t, as.responder, "alerts", "ack", strconv.FormatUint(ids[0], 10)); code != 0 {
		t.Fatal(errs)
	}
	as.waitList(t, 1, "acknowledged")
	if _, err := as.l.SignCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, errs := as.cli(t, as.auditor, "alerts", "incident", strconv.FormatUint(ids[0], 10), "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var good incidentAnswer
	if err := json.Unmarshal([]byte(out), &good); err != nil {
		t.Fatal(err)
	}
	vkey := as.l.VerifierKey()
	if _, err := verifyIncident(&good, vkey); err != nil {
		t.Fatalf("verifyIncident(the served incident) = %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(*incidentAnswer)
	}{
		{"status", func(i *incidentAnswer) { i.Status = "open" }},
		{"evidence", func(i *incidentAnswer) { i.Evidence = []uint64{1} }},
		{"evidence count", func(i *incidentAnswer) { i.EvidenceCount = 2 }},
		{"another alert", func(i *incidentAnswer) { i.Index = ids[1] }},
		{"a response left out", func(i *incidentAnswer) {
			i.Bundle = strings.Replace(i.Bundle, fmt.Sprintf(`{"index":%d,`, i.Responses[0]), `{"index":999,`, 1)
		}},
		{"a changed bundle byte", func(i *incidentAnswer) { i.Bundle = strings.Replace(i.Bundle, "brute force", "brute-force", 1) }},
		{"another checkpoint size", func(i *incidentAnswer) { i.CheckpointSize++ }},
		{"a response of another alert", func(i *incidentAnswer) { i.Responses = append(i.Responses, ids[1]) }},
	} {
		bad := good
		bad.Evidence = append([]uint64(nil), good.Evidence...)
		bad.Responses = append([]uint64(nil), good.Responses...)
		tt.change(&bad)
		if _, err := verifyIncident(&bad, vkey); err == nil {
			t.Errorf("verifyIncident(incident with %s changed) = nil, want an error", tt.name)
		}
	}
}

// TestAlertsWatchResumes cuts the stream of "alerts watch" and checks
// that it reconnects with Last-Event-ID and prints every alert once.
func TestAlertsWatchResumes(t *testing.T) {
	as := newAlertsServer(t)
	first := as.appendAlerts(t, 0, 2)
	var mu sync.Mutex
	var lastIDs []string
	streams := 0
	// The first stream is cut once it has sent both alerts, whenever that
	// is on a loaded machine; the server ends it cleanly and the watcher
	// must come back. The next alerts are appended only once the watcher
	// has reconnected, so that they can only reach it by the second
	// stream.
	reconnected := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/alerts/stream" {
			mu.Lock()
			streams++
			n := streams
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
			mu.Unlock()
			switch n {
			case 1:
				ctx, cancel := context.WithCancel(r.Context())
				defer cancel()
				r = r.WithContext(ctx)
				w = &cutAfterIDs{ResponseWriter: w, n: len(first), cut: cancel}
			case 2:
				close(reconnected)
			}
		}
		as.handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan error, 1)
	env := map[string]string{"ACCESSLEDGER_URL": srv.URL, "ACCESSLEDGER_API_KEY": as.auditor}
	go func() {
		done <- alertsCmd(ctx, []string{"watch", "--json", "--max", "4"}, func(k string) string { return env[k] }, &out, &errb)
	}()
	select {
	case <-reconnected:
	case err := <-done:
		t.Fatalf("alerts watch = %v before it reconnected; stdout %s; stderr %s", err, out.String(), errb.String())
	case <-ctx.Done():
		t.Fatal("alerts watch did not reconnect within 60s")
	}
	more := as.appendAlerts(t, 2, 2)
	if err := <-done; err != nil {
		t.Fatalf("alerts watch = %v; stderr %s", err, errb.String())
	}
	var got []uint64
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var a feedAlert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alerts watch --json line %q: %v", line, err)
		}
		got = append(got, a.Index)
	}
	want := append(first, more...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts watch printed %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[1] != strconv.FormatUint(first[1], 10) {
		t.Errorf("Last-Event-ID of the streams = %q, want none and then %d", lastIDs, first[1])
	}
	if !strings.Contains(errb.String(), "reconnecting") {
		t.Errorf("stderr = %q, want it to say it reconnects", errb.String())
	}
}

// cutAfterIDs passes a stream through and calls cut once it has flushed
// n "id:" lines to the client: the stream then ends after exactly those
// events, however late they come.
type cutAfterIDs struct {
	http.ResponseWriter
	n       int
	cut     func()
	written strings.Builder // all of the stream so far (a few alerts)
}

func (c *cutAfterIDs) Write(p []byte) (int, error) {
	c.written.Write(p)
	return c.ResponseWriter.Write(p)
}

// Flush sends what was written, and then cuts if it holds the n ids:
// the server writes whole events before it flushes.
func (c *cutAfterIDs) Flush() {
	c.ResponseWriter.(http.Flusher).Flush()
	if strings.Count("\n"+c.written.String(), "\nid: ") >= c.n {
		c.cut()
	}
}

func (c *cutAfterIDs) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// TestOneLineNeutralisesControls: what the alerts commands print of other
// people's text (summaries, notes) holds no control character, so no
// escape sequence reaches the reader's terminal.
func TestOneLineNeutralisesControls(t *testing.T) {
	got := oneLine("hi\x1b[2J\x1b]0;pwned\x07 there\r\n\ttab \u009b2J")
	for _, r := range got {
		if unicode.IsControl(r) {
			t.Fatalf("oneLine() = %q, holds control character %U", got, r)
		}
	}
	if want := "hi\uFFFD[2J\uFFFD]0;pwned\uFFFD there   tab \uFFFD2J"; got != want {
		t.Errorf("oneLine() = %q, want %q", got, want)
	}
}
