package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/client/evidence"
	alertevent "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/prooftest"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/respond"
)

// respondServer is a test server whose API serves a respond service
// following its ledger. adjust, if not nil, changes the service's
// configuration and the API's before they are built.
func respondServer(t testing.TB, adjust func(*respond.Config, *api.Config)) (*testServer, *respond.Service) {
	t.Helper()
	ts := newTestServer(t)
	rcfg := respond.Config{Log: ts.l, Dir: t.TempDir(),
		BadgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(4 << 20).WithIndexCacheSize(2 << 20)
		}}
	kr, tokens := newKeys(t)
	acfg := api.Config{Keys: kr}
	if adjust != nil {
		adjust(&rcfg, &acfg)
	}
	svc, err := respond.Open(bg, rcfg)
	if err != nil {
		t.Fatalf("respond.Open() = %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	// Registered after the ledger's cleanup: runs before it.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Service.Run = %v", err)
		}
		if err := svc.Close(); err != nil {
			t.Errorf("Service.Close = %v", err)
		}
	})
	acfg.Responses = svc
	ts.api, ts.srv = newAPI(t, ts.l, acfg)
	ts.tokens = tokens
	return ts, svc
}

// testAlert returns a valid alert, unique per n, raised on evidence.
func testAlert(n int, evidence ...uint64) *alertevent.Alert {
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	return &alertevent.Alert{
		DedupKey: fmt.Sprintf("bf|45.83.64.1|%d", n),
		Time:     t0,
		Rule:     alertevent.AlertRule{ID: "bf", Title: "brute force", Level: alertevent.LevelHigh, Tags: []string{"attack.t1110"}},
		Group:    []alertevent.GroupValue{{Field: "source.ip", Value: "45.83.64.1"}},
		Window:   alertevent.Window{Start: t0.Add(-time.Minute), End: t0},
		Evidence: evidence, EvidenceCount: len(evidence),
		Summary: fmt.Sprintf("alert %d: failed logins from 45.83.64.1", n),
	}
}

// appendAlerts appends n alert leaves in one call, as the detector does,
// and returns their indexes.
func appendAlerts(t testing.TB, l *ledger.Ledger, first, n int, evidence ...uint64) []uint64 {
	t.Helper()
	entries := make([]ledger.Entry, n)
	for i := range entries {
		leaf, err := alertevent.EncodeAlertLeaf(testAlert(first+i, evidence...), time.Now())
		if err != nil {
			t.Fatalf("EncodeAlertLeaf() = %v", err)
		}
		entries[i] = ledger.Entry{Data: leaf}
	}
	res, err := l.Append(bg, entries...)
	if err != nil {
		t.Fatalf("Ledger.Append(%d alerts) = %v", n, err)
	}
	out := make([]uint64, n)
	for i, r := range res {
		out[i] = r.Index
	}
	return out
}

// feedItem mirrors an alert of the feed.
type feedItem struct {
	Index      uint64          `json:"index"`
	LeafHash   string          `json:"leaf_hash"`
	ReceivedAt time.Time       `json:"received_at"`
	Alert      json.RawMessage `json:"alert"`
	Status     string          `json:"status"`
}

type feedPage struct {
	Alerts []feedItem `json:"alerts"`
	Next   int64      `json:"next"`
}

// waitStatus polls GET /v1/alerts/<id> until the alert has the status.
func (ts *testServer) waitStatus(t testing.TB, id uint64, status string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.get(t, fmt.Sprintf("/v1/alerts/%d", id), ts.responder())
		var it feedItem
		if r.status == http.StatusOK {
			decodeStrict(t, "alert", r.body, &it)
			if it.Status == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/alerts/%d = %v, want status %q within 10s", id, r, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFeed polls the feed until it holds n alerts.
func (ts *testServer) waitFeed(t testing.TB, n int) []feedItem {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.get(t, "/v1/alerts?after=-1&limit=1000", ts.responder())
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/alerts?after=-1 = %v", r)
		}
		var p feedPage
		decodeStrict(t, "feed page", r.body, &p)
		if len(p.Alerts) >= n {
			return p.Alerts
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed holds %d alerts after 10s, want %d", len(p.Alerts), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRespondRoles(t *testing.T) {
	ts, _ := respondServer(t, nil)
	ids := appendAlerts(t, ts.l, 0, 1)
	ts.waitFeed(t, 1)
	a := ids[0]
	type endpoint struct {
		method, path string
		body         string
		allowed      []api.Role // admin is always allowed
	}
	var (
		read      = []api.Role{api.RoleResponder, api.RoleAuditor}
		responder = []api.Role{api.RoleResponder}
		admin     = []api.Role{}
	)
	endpoints := []endpoint{
		{"GET", "/v1/alerts/stream?after=" + strconv.FormatUint(a, 10), "", read},
		{"GET", "/v1/alerts?after=-1", "", read},
		{"GET", fmt.Sprintf("/v1/alerts/%d", a), "", read},
		{"POST", fmt.Sprintf("/v1/alerts/%d/ack", a), `{"note":"x"}`, responder},
		{"POST", fmt.Sprintf("/v1/alerts/%d/resolve", a), `{}`, responder},
		{"GET", fmt.Sprintf("/v1/incidents/%d", a), "", read},
		{"GET", "/v1/responders", "", responder},
		{"GET", "/v1/responders/none/dead-letters", "", admin},
		{"POST", "/v1/responders/none/redeliver", "", admin},
		{"POST", "/v1/responders/none/enable", "", admin},
		{"POST", "/v1/admin/digest?day=2026-01-05", "", admin},
	}
	roles := []api.Role{api.RoleSubmitter, api.RoleAuditor, api.RoleResponder}
	for _, e := range endpoints {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			var body []byte
			if e.body != "" {
				body = []byte(e.body)
			}
			do := func(token string) response {
				if strings.Contains(e.path, "/stream") {
					return streamStatus(t, ts.srv.URL+e.path, token)
				}
				return call(t, ts.srv.URL, e.method, e.path, token, "", body)
			}
			wantError(t, "without a key", do(""), http.StatusUnauthorized)
			for _, r := range roles {
				got := do(ts.tokens[r])
				if slices.Contains(e.allowed, r) {
					if got.status == http.StatusUnauthorized || got.status == http.StatusForbidden {
						t.Errorf("as %s = %v, want admitted", r, got)
					}
				} else {
					wantError(t, "as "+string(r), got, http.StatusForbidden)
				}
			}
			if got := do(ts.admin()); got.status == http.StatusUnauthorized || got.status == http.StatusForbidden {
				t.Errorf("as admin = %v, want admitted", got)
			}
		})
	}

	// Without a respond service every endpoint says responders are off.
	plain := newTestServer(t)
	for _, e := range endpoints {
		var r response
		if strings.Contains(e.path, "/stream") {
			r = streamStatus(t, plain.srv.URL+e.path, plain.admin())
		} else {
			r = call(t, plain.srv.URL, e.method, e.path, plain.admin(), "", []byte(e.body))
		}
		if eb := wantError(t, e.method+" "+e.path+" without responders", r, http.StatusNotFound); !strings.Contains(eb.Error, "responders are off") {
			t.Errorf("%s %s without responders: error %q, want it to say responders are off", e.method, e.path, eb.Error)
		}
	}
}

// streamStatus opens a stream and returns its status and, for an error,
// its body; the stream itself is closed at once.
func streamStatus(t testing.TB, url, token string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		r.body, _ = readAllLimit(resp, 64<<10)
	}
	return r
}

func readAllLimit(resp *http.Response, n int64) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, resp.Body, n))
	return b.Bytes(), err
}

// sseMsg is one block of an event stream.
type sseMsg struct {
	id, event, data string
	hasID           bool
	comment         string
	retry           string
}

// sseStream reads an alert stream on its own goroutine.
type sseStream struct {
	msgs   chan sseMsg
	done   chan error
	cancel context.CancelFunc
	header http.Header
}

// openStream opens GET /v1/alerts/stream<query>, with Last-Event-ID if
// lastID is not empty. The stream is closed when the test ends.
func openStream(t testing.TB, base, query, token, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(bg)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/alerts/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/alerts/stream%s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := readAllLimit(resp, 64<<10)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /v1/alerts/stream%s = %d %s, want 200", query, resp.StatusCode, b)
	}
	s := &sseStream{msgs: make(chan sseMsg, 100000), done: make(chan error, 1), cancel: cancel, header: resp.Header}
	go func() {
		defer resp.Body.Close()
		s.done <- readSSE(bufio.NewReader(resp.Body), func(m sseMsg) { s.msgs <- m })
		close(s.msgs)
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	for range s.msgs {
	}
}

// readSSE parses an event stream into blocks until it ends.
func readSSE(r *bufio.Reader, fn func(sseMsg)) error {
	var m sseMsg
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			m.data = strings.Join(data, "\n")
			fn(m)
			m, data = sseMsg{}, nil
			continue
		}
		if c, ok := strings.CutPrefix(line, ":"); ok {
			m.comment = strings.TrimSpace(c)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.id, m.hasID = value, true
		case "event":
			m.event = value
		case "data":
			data = append(data, value)
		case "retry":
			m.retry = value
		}
	}
}

// nextEvent returns the next alert event, skipping other blocks, or
// fails after the timeout.
func (s *sseStream) nextEvent(t testing.TB, timeout time.Duration) sseMsg {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("the stream ended: %v", <-s.done)
			}
			if m.event != "" || m.data != "" {
				return m
			}
		case <-deadline:
			t.Fatalf("no event within %v", timeout)
		}
	}
}

// events reads n alert events and checks each is well-formed.
func (s *sseStream) events(t testing.TB, n int) []feedItem {
	t.Helper()
	out := make([]feedItem, 0, n)
	for range n {
		m := s.nextEvent(t, 30*time.Second)
		var it feedItem
		decodeStrict(t, "event data", []byte(m.data), &it)
		if m.event != "alert" || m.id != strconv.FormatUint(it.Index, 10) {
			t.Fatalf("event id %q event %q, want id %d (the data's index) and event alert", m.id, m.event, it.Index)
		}
		out = append(out, it)
	}
	return out
}

// quiet fails if an alert event arrives within d.
func (s *sseStream) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				return
			}
			if m.event != "" || m.data != "" {
				t.Fatalf("unexpected event id %s: %s", m.id, m.data)
			}
		case <-deadline:
			return
		}
	}
}

func indexesOf(items []feedItem) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Index
	}
	return out
}

func TestAlertStreamResume(t *testing.T) {
	ts, _ := respondServer(t, nil)
	// Events between the alerts: alert indexes are not consecutive.
	ts.post(t, "application/json", eventJSON(t, 0))
	first := appendAlerts(t, ts.l, 0, 5, 0)
	ts.post(t, "application/json", eventJSON(t, 1))

	s := openStream(t, ts.srv.URL, "", ts.responder(), "")
	if ct := s.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	if cc, xa := s.header.Get("Cache-Control"), s.header.Get("X-Accel-Buffering"); cc != "no-store" || xa != "no" {
		t.Errorf("Cache-Control = %q, X-Accel-Buffering = %q, want no-store and no", cc, xa)
	}
	if m := <-s.msgs; m.retry != "2000" || m.hasID {
		t.Errorf("first block = %+v, want retry 2000 and no id (the stream starts at the beginning)", m)
	}
	got := s.events(t, 5)
	if !slices.Equal(indexesOf(got), first) {
		t.Fatalf("stream from the beginning = %v, want %v", indexesOf(got), first)
	}
	if got[0].Status != respond.StatusOpen || got[0].LeafHash == "" || got[0].ReceivedAt.IsZero() {
		t.Errorf("event = %+v, want an open alert with leaf hash and receive time", got[0])
	}
	if a, err := alertevent.ParseAlert(got[0].Alert); err != nil || a.DedupKey != testAlert(0).DedupKey {
		t.Errorf("event alert = %s (%v), want alert 0", got[0].Alert, err)
	}
	s.close()

	// Missed while disconnected: resuming gets exactly these, in order.
	missed := appendAlerts(t, ts.l, 5, 3, 0)
	ts.post(t, "application/json", eventJSON(t, 2))
	missed = append(missed, appendAlerts(t, ts.l, 8, 4, 0)...)
	last := strconv.FormatUint(first[len(first)-1], 10)
	r := openStream(t, ts.srv.URL, "", ts.responder(), last)
	if m := <-r.msgs; m.retry != "2000" || m.id != last {
		t.Errorf("first block of the resumed stream = %+v, want retry 2000 and id %s", m, last)
	}
	if got := indexesOf(r.events(t, len(missed))); !slices.Equal(got, missed) {
		t.Fatalf("resumed with Last-Event-ID %s = %v, want %v", last, got, missed)
	}
	r.quiet(t, 200*time.Millisecond)
	// Alerts appended while it streams arrive once each.
	live := appendAlerts(t, ts.l, 12, 3, 0)
	if got := indexesOf(r.events(t, 3)); !slices.Equal(got, live) {
		t.Fatalf("live alerts = %v, want %v", got, live)
	}
	r.quiet(t, 200*time.Millisecond)

	// after= resumes like Last-Event-ID, which wins over it.
	q := openStream(t, ts.srv.URL, fmt.Sprintf("?after=%d", missed[len(missed)-1]), ts.auditor(), "")
	if got := indexesOf(q.events(t, 3)); !slices.Equal(got, live) {
		t.Errorf("?after=%d = %v, want %v", missed[len(missed)-1], got, live)
	}
	h := openStream(t, ts.srv.URL, "?after=-1", ts.auditor(), strconv.FormatUint(live[1], 10))
	if got := indexesOf(h.events(t, 1)); got[0] != live[2] {
		t.Errorf("Last-Event-ID %d with ?after=-1 = %v, want %d", live[1], got, live[2])
	}

	// from=now: only alerts appended after the request; its first block
	// carries the position, so a reconnecting client misses nothing.
	n := openStream(t, ts.srv.URL, "?from=now", ts.responder(), "")
	if m := <-n.msgs; !m.hasID {
		t.Errorf("first block of ?from=now = %+v, want the log's end as id", m)
	}
	n.quiet(t, 100*time.Millisecond)
	fresh := appendAlerts(t, ts.l, 15, 1)
	if got := indexesOf(n.events(t, 1)); got[0] != fresh[0] {
		t.Errorf("?from=now = %v, want %v", got, fresh)
	}

	size := size(ts.l)
	for _, tt := range []struct{ query, lastID string }{
		{"?after=x", ""}, {"?after=-2", ""}, {fmt.Sprintf("?after=%d", size), ""}, {"?from=then", ""},
		{"?after=1&from=now", ""}, {"", "abc"}, {"", fmt.Sprint(size + 5)},
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.srv.URL+"/v1/alerts/stream"+tt.query, nil)
		req.Header.Set("Authorization", "Bearer "+ts.responder())
		if tt.lastID != "" {
			req.Header.Set("Last-Event-ID", tt.lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := readAllLimit(resp, 64<<10)
		resp.Body.Close()
		wantError(t, fmt.Sprintf("stream%s Last-Event-ID %q", tt.query, tt.lastID), response{status: resp.StatusCode, header: resp.Header, body: b}, http.StatusBadRequest)
	}
}

// TestAlertStreamConcurrent streams to several clients while alerts are
// appended, one of them reconnecting repeatedly: each gets every alert
// exactly once, in order.
func TestAlertStreamConcurrent(t *testing.T) {
	ts, _ := respondServer(t, nil)
	const batches, perBatch = 30, 10
	var want []uint64
	appended := make(chan []uint64, batches)
	streams := make([]*sseStream, 4)
	for i := range streams {
		streams[i] = openStream(t, ts.srv.URL, "", ts.responder(), "")
	}
	go func() {
		for b := range batches {
			appended <- appendAlerts(t, ts.l, b*perBatch, perBatch)
			time.Sleep(2 * time.Millisecond)
		}
		close(appended)
	}()
	for ids := range appended {
		want = append(want, ids...)
	}
	for i, s := range streams {
		if got := indexesOf(s.events(t, len(want))); !slices.Equal(got, want) {
			t.Errorf("stream %d got %d alerts %v…, want %d in order", i, len(got), got[:min(len(got), 10)], len(want))
		}
		s.quiet(t, 50*time.Millisecond)
	}
	// A client that reconnects after every few events.
	var got []uint64
	last := ""
	for len(got) < len(want) {
		s := openStream(t, ts.srv.URL, "", ts.responder(), last)
		got = append(got, indexesOf(s.events(t, min(37, len(want)-len(got))))...)
		s.close()
		last = strconv.FormatUint(got[len(got)-1], 10)
	}
	if !slices.Equal(got, want) {
		t.Errorf("reconnecting client got %v, want %v", got, want)
	}
}

func TestAlertStreamHeartbeat(t *testing.T) {
	ts, _ := respondServer(t, func(_ *respond.Config, c *api.Config) { c.SSEHeartbeat = 20 * time.Millisecond })
	// A server whose ReadTimeout is shorter than the stream: it must not
	// end it.
	srv := newUnstartedAPI(t, ts)
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	s := openStream(t, srv.URL, "", ts.auditor(), "")
	defer s.close()
	deadline := time.After(5 * time.Second)
	start := time.Now()
	beats := 0
	for beats < 3 || time.Since(start) < 300*time.Millisecond {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("the stream ended after %v, %d heartbeats: %v", time.Since(start), beats, <-s.done)
			}
			if m.comment == "heartbeat" {
				beats++
			}
		case <-deadline:
			t.Fatalf("%d heartbeats in 5s, want 3 or more", beats)
		}
	}
	appendAlerts(t, ts.l, 0, 1)
	s.events(t, 1)
}

// newUnstartedAPI serves ts's API (built again over its ledger with its
// keys and respond service) on an unstarted httptest server.
func newUnstartedAPI(t testing.TB, ts *testServer) *httptest.Server {
	t.Helper()
	return httptest.NewUnstartedServer(ts.srv.Config.Handler)
}

// TestAlertStreamShutdown checks that http.Server.Shutdown ends streams
// instead of waiting for them.
func TestAlertStreamShutdown(t *testing.T) {
	ts, _ := respondServer(t, nil)
	srv := newUnstartedAPI(t, ts)
	srv.Start()
	s := openStream(t, srv.URL, "", ts.responder(), "")
	<-s.msgs // the first block: the stream is being served
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Errorf("http.Server.Shutdown() = %v after %v, want the stream ended", err, time.Since(start))
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Errorf("the stream is still open after Shutdown")
	}
	srv.Close()
}

// revokeKey swaps in the keys of kr, ts's, with the key of role revoked,
// as the server does when the keys file changes.
func revokeKey(t testing.TB, ts *testServer, kr *api.Keyring, role api.Role) {
	t.Helper()
	keys := kr.Keys()
	for i := range keys {
		if keys[i].Name == "test-"+string(role) {
			keys[i].RevokedAt = time.Now().Add(-time.Second)
		}
	}
	revoked, err := api.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	ts.api.SetKeyring(revoked)
}

// TestRevokedKeyEndsItsWaits: keys are checked when a request starts; an
// alert stream or a long poll opened before its key was revoked must not
// go on receiving alerts.
func TestRevokedKeyEndsItsWaits(t *testing.T) {
	var kr *api.Keyring
	ts, _ := respondServer(t, func(_ *respond.Config, c *api.Config) { kr = c.Keys })
	s := openStream(t, ts.srv.URL, "?from=now", ts.responder(), "")
	<-s.msgs // the first block: the stream is being served
	type answer struct {
		r   response
		err error
	}
	poll := make(chan answer, 1)
	go func() {
		r, err := tryCall(ts.srv.URL, http.MethodGet, "/v1/alerts?after=-1&wait=30s", ts.responder(), "", nil)
		poll <- answer{r, err}
	}()
	time.Sleep(100 * time.Millisecond)
	revokeKey(t, ts, kr, api.RoleResponder)
	appendAlerts(t, ts.l, 0, 1)
	a := <-poll
	if a.err != nil || a.r.status != http.StatusUnauthorized || !strings.Contains(string(a.r.body), "revoked") {
		t.Errorf("a long poll whose key was revoked while it waited = %v, %v; want 401 saying it was revoked", a.r, a.err)
	}
	s.quiet(t, 500*time.Millisecond)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Errorf("the stream of a revoked key is still open")
	}
}

// TestRevokedKeyEndsItsWaitsAtOnce: a key's revocation ends its alert
// streams and long polls when the keys change, not at the stream's next
// alert or heartbeat (15 s) or the poll's deadline (here 30 s), holding
// the key's stream slots meanwhile.
func TestRevokedKeyEndsItsWaitsAtOnce(t *testing.T) {
	var kr *api.Keyring
	ts, _ := respondServer(t, func(_ *respond.Config, c *api.Config) { kr = c.Keys })
	s := openStream(t, ts.srv.URL, "?from=now", ts.responder(), "")
	<-s.msgs // the first block: the stream is being served
	poll := make(chan response, 1)
	go func() {
		r, _ := tryCall(ts.srv.URL, http.MethodGet, "/v1/alerts?after=-1&wait=30s", ts.responder(), "", nil)
		poll <- r
	}()
	time.Sleep(200 * time.Millisecond)
	revokeKey(t, ts, kr, api.RoleResponder) // and no alert comes
	deadline := time.After(10 * time.Second)
	select {
	case r := <-poll:
		if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "revoked") {
			t.Errorf("a long poll whose key was revoked while it waited = %v; want 401 saying it was revoked", r)
		}
	case <-deadline:
		t.Errorf("a long poll whose key was revoked still waits 10 s later")
	}
	select {
	case <-s.done:
	case <-deadline:
		t.Errorf("the stream of a revoked key is still open 10 s later")
	}
}

// TestAlertStreamsPerKeyBounded: each alert stream holds a connection,
// goroutines and buffers for as long as its client keeps it; one key
// opened thousands. A key may hold 64 at once; another key still gets its
// own.
func TestAlertStreamsPerKeyBounded(t *testing.T) {
	ts, _ := respondServer(t, nil)
	for range 64 {
		s := openStream(t, ts.srv.URL, "", ts.responder(), "")
		<-s.msgs // served
	}
	r := ts.get(t, "/v1/alerts/stream", ts.responder())
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "64 alert streams") {
		t.Errorf("a 65th alert stream of one key = %v, want 503 naming the bound", r)
	}
	s := openStream(t, ts.srv.URL, "", ts.auditor(), "")
	<-s.msgs
}

// TestAlertFeedLongPollShutdown: a long poll answers when the server
// shuts down, instead of holding the shutdown and losing its connection.
func TestAlertFeedLongPollShutdown(t *testing.T) {
	ts, _ := respondServer(t, nil)
	srv := newUnstartedAPI(t, ts)
	srv.Start()
	defer srv.Close()
	got := make(chan response, 1)
	go func() {
		r, _ := tryCall(srv.URL, http.MethodGet, "/v1/alerts?after=-1&wait=30s", ts.responder(), "", nil)
		got <- r
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Config.Shutdown(ctx); err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("http.Server.Shutdown() = %v after %v, want the poll answered at once", err, time.Since(start))
	}
	if r := <-got; r.status != http.StatusOK {
		t.Errorf("the long poll at shutdown = %v, want 200 (no alerts: poll again)", r)
	}
}

func TestAlertFeedLongPoll(t *testing.T) {
	ts, _ := respondServer(t, nil)
	ids := appendAlerts(t, ts.l, 0, 3)
	items := ts.waitFeed(t, 3)
	if !slices.Equal(indexesOf(items), ids) {
		t.Fatalf("feed = %v, want %v", indexesOf(items), ids)
	}
	r := ts.get(t, "/v1/alerts?after=-1&limit=2", ts.auditor())
	var p feedPage
	decodeStrict(t, "feed page", r.body, &p)
	if len(p.Alerts) != 2 || p.Next != int64(ids[1]) {
		t.Fatalf("GET /v1/alerts?after=-1&limit=2 = %s, want 2 alerts and next %d", r.body, ids[1])
	}
	wantJSON(t, "feed page", r)
	r = ts.get(t, fmt.Sprintf("/v1/alerts?after=%d", p.Next), ts.auditor())
	decodeStrict(t, "feed page", r.body, &p)
	if len(p.Alerts) != 1 || p.Alerts[0].Index != ids[2] || p.Next != int64(ids[2]) || p.Alerts[0].Status != "open" {
		t.Fatalf("second page = %s, want alert %d, next %d", r.body, ids[2], ids[2])
	}

	// An empty wait times out with 200 and no alerts, next unchanged: no
	// sooner than 200ms, and well before the 60s longest wait (the upper
	// bound is generous for a loaded machine).
	start := time.Now()
	r = ts.get(t, fmt.Sprintf("/v1/alerts?after=%d&wait=200ms", ids[2]), ts.responder())
	took := time.Since(start)
	decodeStrict(t, "feed page", r.body, &p)
	if r.status != http.StatusOK || len(p.Alerts) != 0 || p.Next != int64(ids[2]) || took < 200*time.Millisecond || took > 20*time.Second {
		t.Errorf("wait=200ms with nothing new = %v after %v, want 200, no alerts, next %d, after 200ms", r, took, ids[2])
	}

	// A wait answers as soon as an alert arrives.
	type answer struct {
		r    response
		err  error
		took time.Duration
	}
	got := make(chan answer, 1)
	go func() {
		start := time.Now()
		r, err := tryCall(ts.srv.URL, http.MethodGet, fmt.Sprintf("/v1/alerts?after=%d&wait=30s", ids[2]), ts.responder(), "", nil)
		got <- answer{r, err, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond)
	more := appendAlerts(t, ts.l, 3, 1)
	a := <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	decodeStrict(t, "feed page", a.r.body, &p)
	if len(p.Alerts) != 1 || p.Alerts[0].Index != more[0] || a.took > 10*time.Second {
		t.Errorf("wait=30s woken by alert %d = %v after %v", more[0], a.r, a.took)
	}

	size := size(ts.l)
	for _, q := range []string{
		"?after=abc", "?after=-2", "?after=1.5", fmt.Sprintf("?after=%d", size), "?after=99999999999999999999",
		"?after=0&wait=61s", "?after=0&wait=-1s", "?after=0&wait=soon", "?wait=1s",
		"?after=0&cursor=1", "?after=0&level=high", "?after=0&rule=bf", "?after=0&since=2026-01-01T00:00:00Z",
		"?after=0&limit=0", "?after=0&limit=1001",
	} {
		wantError(t, "GET /v1/alerts"+q, ts.get(t, "/v1/alerts"+q, ts.responder()), http.StatusBadRequest)
	}
	if r := ts.get(t, "/v1/alerts?after=0&wait=1", ts.responder()); r.status != http.StatusOK {
		t.Errorf("wait=1 (seconds) = %v, want 200", r)
	}
	// A number of seconds out of range is said to be one.
	for _, w := range []string{"61", "255", "256", "99999999999"} {
		eb := wantError(t, "wait="+w, ts.get(t, "/v1/alerts?after=0&wait="+w, ts.responder()), http.StatusBadRequest)
		if !strings.Contains(eb.Error, "from 0 to 60 seconds") {
			t.Errorf("wait=%s: error %q, want it to give the range in seconds", w, eb.Error)
		}
	}
	// Without after, GET /v1/alerts is the detector's (off here).
	wantError(t, "GET /v1/alerts without after and detection", ts.get(t, "/v1/alerts", ts.responder()), http.StatusNotFound)
}

// recordedAnswer mirrors the answer of ack, resolve and digest.
type recordedAnswer struct {
	Index    uint64          `json:"index"`
	LeafHash string          `json:"leaf_hash"`
	Response json.RawMessage `json:"response"`
}

func TestAckResolve(t *testing.T) {
	ts, _ := respondServer(t, nil)
	ts.post(t, "application/json", eventJSON(t, 0))
	ids := appendAlerts(t, ts.l, 0, 2, 0)
	ts.waitFeed(t, 2)
	a := ids[0]
	post := func(path, token, body string) response {
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		return call(t, ts.srv.URL, http.MethodPost, path, token, "application/json", b)
	}
	ack := fmt.Sprintf("/v1/alerts/%d/ack", a)
	r := post(ack, ts.responder(), `{"note":"looking into it"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST %s = %v, want 201", ack, r)
	}
	var rec recordedAnswer
	decodeStrict(t, "ack answer", r.body, &rec)
	// The response leaf is in the log, at that index, by the key's name.
	e := ts.getEntry(t, rec.Index)
	if e.LeafHash != rec.LeafHash {
		t.Errorf("ack leaf_hash %s, want the entry's %s", rec.LeafHash, e.LeafHash)
	}
	_, resp, err := alertevent.DecodeResponseLeaf(e.Entry)
	if err != nil {
		t.Fatalf("entry %d = %s: %v", rec.Index, e.Entry, err)
	}
	if resp.Action != alertevent.ActionAcknowledged || resp.Alert == nil || *resp.Alert != a || resp.By != "test-responder" || resp.Note != "looking into it" {
		t.Errorf("response leaf = %+v, want acknowledged of %d by test-responder with the note", resp, a)
	}
	if string(rec.Response) != string(resp.Canonical()) {
		t.Errorf("answer response = %s, want the leaf's canonical %s", rec.Response, resp.Canonical())
	}
	ts.waitStatus(t, a, respond.StatusAcknowledged)
	if eb := wantError(t, "ack again", post(ack, ts.responder(), ""), http.StatusConflict); !strings.Contains(eb.Error, "already acknowledged") {
		t.Errorf("ack again: %q, want it to say the alert is already acknowledged", eb.Error)
	}

	// Resolve, with no body, by an admin.
	resolve := fmt.Sprintf("/v1/alerts/%d/resolve", a)
	r = post(resolve, ts.admin(), "")
	if r.status != http.StatusCreated {
		t.Fatalf("POST %s = %v, want 201", resolve, r)
	}
	decodeStrict(t, "resolve answer", r.body, &rec)
	if _, resp, err := alertevent.DecodeResponseLeaf(ts.getEntry(t, rec.Index).Entry); err != nil || resp.Action != alertevent.ActionResolved || resp.By != "test-admin" || resp.Note != "" {
		t.Errorf("resolve leaf = %+v (%v), want resolved by test-admin without a note", resp, err)
	}
	ts.waitStatus(t, a, respond.StatusResolved)
	wantError(t, "resolve again", post(resolve, ts.responder(), ""), http.StatusConflict)
	wantError(t, "ack a resolved alert", post(ack, ts.responder(), ""), http.StatusConflict)
	// The other alert can be resolved without an acknowledgement.
	if r := post(fmt.Sprintf("/v1/alerts/%d/resolve", ids[1]), ts.responder(), `{"note":"false positive:\r\n\tthe scanner"}`); r.status != http.StatusCreated {
		t.Errorf("resolve an open alert = %v, want 201", r)
	}

	for _, tt := range []struct {
		path, contentType, body string
		status                  int
	}{
		{"/v1/alerts/0/ack", "application/json", "", http.StatusNotFound}, // an event, not an alert
		{"/v1/alerts/999999/ack", "application/json", "", http.StatusNotFound},
		{"/v1/alerts/abc/ack", "application/json", "", http.StatusBadRequest},
		{"/v1/alerts/-1/resolve", "application/json", "", http.StatusBadRequest},
		{ack, "application/json", `{"notes":"x"}`, http.StatusBadRequest},
		{ack, "application/json", `{"note":1}`, http.StatusBadRequest},
		{ack, "application/json", `{"note":"a","note":"b"}`, http.StatusBadRequest},
		{ack, "application/json", `{"note":"a"} {}`, http.StatusBadRequest},
		{ack, "application/json", `[]`, http.StatusBadRequest},
		{ack, "application/json", `{"note":"` + strings.Repeat("x", 4097) + `"}`, http.StatusBadRequest},
		{ack, "application/json", `{"note":"` + strings.Repeat("x", 40<<10) + `"}`, http.StatusRequestEntityTooLarge},
		{ack, "text/plain", `{"note":"x"}`, http.StatusUnsupportedMediaType},
		// Escape sequences would act on an analyst's terminal.
		{ack, "application/json", `{"note":"hi\u001b[2J\u001b]0;pwned\u0007"}`, http.StatusBadRequest},
		{ack, "application/json", `{"note":"a\u0000b"}`, http.StatusBadRequest},
		{ack, "application/json", `{"note":"csi \u009b2J"}`, http.StatusBadRequest},
		// So would a bidirectional override ("evilexe.png").
		{ack, "application/json", `{"note":"evil\u202egnp.exe"}`, http.StatusBadRequest},
	} {
		r := call(t, ts.srv.URL, http.MethodPost, tt.path, ts.responder(), tt.contentType, []byte(tt.body))
		wantError(t, fmt.Sprintf("POST %s %.40s", tt.path, tt.body), r, tt.status)
	}
	// GET /v1/alerts/<id> of an event is 404 too.
	wantError(t, "GET /v1/alerts/0", ts.get(t, "/v1/alerts/0", ts.responder()), http.StatusNotFound)
}

// incidentAnswer mirrors GET /v1/incidents/<id>.
type incidentAnswer struct {
	Index          uint64          `json:"index"`
	Status         string          `json:"status"`
	Alert          json.RawMessage `json:"alert"`
	Evidence       []uint64        `json:"evidence"`
	EvidenceCount  int             `json:"evidence_count"`
	Responses      []uint64        `json:"responses"`
	Processed      uint64          `json:"processed"`
	CheckpointSize uint64          `json:"checkpoint_size"`
	Pending        []uint64        `json:"pending"`
	Bundle         string          `json:"bundle"`
}

// bundleEntry is an entry line of an evidence bundle.
type bundleEntry struct {
	Index     uint64          `json:"index"`
	LeafHash  string          `json:"leaf_hash"`
	Entry     json.RawMessage `json:"entry"`
	TLogProof string          `json:"tlog_proof"`
}

// bundleEntries reads the entry lines of an evidence bundle.
func bundleEntries(t testing.TB, bundle string) []bundleEntry {
	t.Helper()
	var out []bundleEntry
	for _, line := range strings.Split(bundle, "\n") {
		if !strings.HasPrefix(line, `{"index":`) {
			continue
		}
		var e bundleEntry
		decodeStrict(t, "bundle entry", []byte(strings.TrimSuffix(line, ",")), &e)
		out = append(out, e)
	}
	return out
}

func TestIncident(t *testing.T) {
	ts, _ := respondServer(t, nil)
	var evidenceIdx []uint64
	for i := range 3 {
		evidenceIdx = append(evidenceIdx, *singleResult(t, ts.post(t, "application/json", eventJSON(t, i))).Index)
	}
	ids := appendAlerts(t, ts.l, 0, 1, evidenceIdx...)
	a := ids[0]
	ts.waitFeed(t, 1)
	// The checkpoint will not cover the acknowledgement: it is pending,
	// left out of the bundle.
	if _, err := ts.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	r := call(t, ts.srv.URL, http.MethodPost, fmt.Sprintf("/v1/alerts/%d/ack", a), ts.responder(), "", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("ack = %v", r)
	}
	var ack recordedAnswer
	decodeStrict(t, "ack", r.body, &ack)
	ts.waitStatus(t, a, respond.StatusAcknowledged)

	var inc incidentAnswer
	get := func() {
		t.Helper()
		r := ts.get(t, fmt.Sprintf("/v1/incidents/%d", a), ts.auditor())
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/incidents/%d = %v", a, r)
		}
		wantJSON(t, "incident", r)
		inc = incidentAnswer{}
		decodeStrict(t, "incident", r.body, &inc)
	}
	get()
	if inc.Index != a || inc.Status != respond.StatusAcknowledged || !slices.Equal(inc.Evidence, evidenceIdx) || inc.EvidenceCount != 3 ||
		!slices.Equal(inc.Responses, []uint64{ack.Index}) || inc.CheckpointSize != ack.Index {
		t.Fatalf("incident = %+v, want alert %d acknowledged, evidence %v, responses [%d], checkpoint size %d",
			inc, a, evidenceIdx, ack.Index, ack.Index)
	}
	if !slices.Equal(inc.Pending, []uint64{ack.Index}) || len(bundleEntries(t, inc.Bundle)) != 4 {
		t.Fatalf("incident pending %v with %d entries in the bundle, want pending [%d] and 4 entries", inc.Pending, len(bundleEntries(t, inc.Bundle)), ack.Index)
	}

	// Once a checkpoint covers it, everything is in the bundle.
	if _, err := ts.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	get()
	if len(inc.Pending) != 0 || inc.CheckpointSize != size(ts.l) {
		t.Fatalf("incident after a checkpoint: pending %v, checkpoint size %d, want none and %d", inc.Pending, inc.CheckpointSize, size(ts.l))
	}
	// Our verifier accepts the bundle.
	sum, err := evidence.Verify(strings.NewReader(inc.Bundle), ts.l.VerifierKey())
	if err != nil || sum.Entries != 5 || sum.Size != inc.CheckpointSize {
		t.Fatalf("evidence.Verify(incident bundle) = %+v, %v, want 5 entries at size %d", sum, err, inc.CheckpointSize)
	}
	// And so does third-party code, entry by entry.
	v, err := note.NewVerifier(ts.l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	entries := bundleEntries(t, inc.Bundle)
	want := append(append(slices.Clone(evidenceIdx), a), ack.Index)
	var got []uint64
	for _, e := range entries {
		got = append(got, e.Index)
		if err := prooftest.CheckTLogProof(e.Entry, e.TLogProof, v); err != nil {
			t.Errorf("entry %d: the proof does not verify with x/mod/sumdb: %v", e.Index, err)
		}
		h := tlog.RecordHash(e.Entry)
		if e.LeafHash != b64(h[:]) {
			t.Errorf("entry %d: leaf_hash %s, want %s", e.Index, e.LeafHash, b64(h[:]))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bundle entries %v, want %v (evidence, alert, acknowledgement)", got, want)
	}
	if _, al, err := alertevent.DecodeAlertLeaf(entries[3].Entry); err != nil || !slices.Equal(al.Evidence, evidenceIdx) {
		t.Errorf("bundle entry %d = %s (%v), want the alert", a, entries[3].Entry, err)
	}
	if _, rs, err := alertevent.DecodeResponseLeaf(entries[4].Entry); err != nil || rs.Alert == nil || *rs.Alert != a {
		t.Errorf("bundle entry %d = %s (%v), want the acknowledgement of %d", ack.Index, entries[4].Entry, err, a)
	}

	// A changed byte fails: in the entry, in each proof hash, in the
	// checkpoint's signature.
	e := entries[3]
	bad := bytes.Replace(e.Entry, []byte("brute force"), []byte("brute-force"), 1)
	if err := prooftest.CheckTLogProof(bad, e.TLogProof, v); err == nil {
		t.Errorf("a changed entry verifies")
	}
	lines := strings.Split(e.TLogProof, "\n")
	for i := 2; lines[i] != ""; i++ {
		b, _ := base64.StdEncoding.DecodeString(lines[i])
		b[i%len(b)] ^= 1
		changed := slices.Clone(lines)
		changed[i] = base64.StdEncoding.EncodeToString(b)
		if err := prooftest.CheckTLogProof(e.Entry, strings.Join(changed, "\n"), v); err == nil {
			t.Errorf("a changed proof hash %d verifies", i-2)
		}
	}
	sig := strings.LastIndex(e.TLogProof, " ") + 5
	changed := []byte(e.TLogProof)
	if changed[sig] == 'A' {
		changed[sig] = 'B'
	} else {
		changed[sig] = 'A'
	}
	if err := prooftest.CheckTLogProof(e.Entry, string(changed), v); err == nil {
		t.Errorf("a changed checkpoint signature verifies")
	}
	if _, err := evidence.Verify(strings.NewReader(strings.Replace(inc.Bundle, "brute force", "brute-force", 1)), ts.l.VerifierKey()); err == nil {
		t.Errorf("evidence.Verify of a changed bundle succeeds")
	}

	wantError(t, "incident of an event", ts.get(t, fmt.Sprintf("/v1/incidents/%d", evidenceIdx[0]), ts.responder()), http.StatusNotFound)
	wantError(t, "incident of x", ts.get(t, "/v1/incidents/x", ts.responder()), http.StatusBadRequest)
}

// failingSender refuses every message for good: each is dead-lettered.
type failingSender struct{}

func (failingSender) Send(context.Context, *respond.Message) respond.Outcome {
	return respond.Outcome{Err: fmt.Errorf("refused"), Status: http.StatusBadRequest, Permanent: true}
}

// TestRespondersShowBounds: GET /v1/responders shows each responder's
// bounds and how often they were hit: a responder that refuses every
// message, with room for one dead letter, lost the older one.
func TestRespondersShowBounds(t *testing.T) {
	ts, _ := respondServer(t, func(rc *respond.Config, _ *api.Config) {
		rc.Responders = []respond.ResponderConfig{{Name: "hook", Type: respond.TypeWebhook, URL: "http://192.0.2.1/hook"}}
		rc.Senders = map[string]respond.Sender{"hook": failingSender{}}
		rc.Delivery = respond.DeliveryConfig{MaxQueued: 50, MaxDeadLetters: 1}
	})
	appendAlerts(t, ts.l, 0, 2)
	ts.waitFeed(t, 2)
	var rs struct {
		Responders []map[string]any `json:"responders"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.get(t, "/v1/responders", ts.responder())
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/responders = %v", r)
		}
		if err := json.Unmarshal(r.body, &rs); err != nil {
			t.Fatal(err)
		}
		if len(rs.Responders) == 1 && rs.Responders[0]["dead_letters_dropped"] == 1.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/responders = %s, want hook with 1 dead letter deleted", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for field, want := range map[string]float64{"max_queued": 50, "max_dead_letters": 1, "dead_letters": 1, "dead_lettered_queue_full": 0, "queued": 0} {
		if got := rs.Responders[0][field]; got != want {
			t.Errorf("GET /v1/responders: %s = %v, want %v", field, got, want)
		}
	}
}

func TestResponderAdmin(t *testing.T) {
	ts, _ := respondServer(t, func(rc *respond.Config, _ *api.Config) {
		rc.Responders = []respond.ResponderConfig{{Name: "hook", Type: respond.TypeWebhook, URL: "http://192.0.2.1/hook"}}
		rc.Senders = map[string]respond.Sender{"hook": failingSender{}}
	})
	appendAlerts(t, ts.l, 0, 2)
	ts.waitFeed(t, 2)

	var rs struct {
		Service struct {
			Running bool   `json:"running"`
			Cursor  uint64 `json:"cursor"`
			LogSize uint64 `json:"log_size"`
			Error   string `json:"error"`
		} `json:"service"`
		Responders []respond.ResponderStatus `json:"responders"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.get(t, "/v1/responders", ts.responder())
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/responders = %v", r)
		}
		decodeStrict(t, "responders", r.body, &rs)
		if len(rs.Responders) == 1 && rs.Responders[0].Dead == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/responders = %s, want hook with 2 dead letters", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !rs.Service.Running || rs.Service.Error != "" || rs.Service.LogSize == 0 {
		t.Errorf("GET /v1/responders service = %+v, want running, following a log", rs.Service)
	}
	if h := rs.Responders[0]; h.Name != "hook" || h.Type != respond.TypeWebhook || h.Disabled {
		t.Errorf("responder = %+v, want hook, a webhook, enabled", h)
	}

	r := ts.get(t, "/v1/responders/hook/dead-letters?limit=1", ts.admin())
	var dl struct {
		Responder   string               `json:"responder"`
		DeadLetters []respond.DeadLetter `json:"dead_letters"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET dead-letters = %v", r)
	}
	if err := json.Unmarshal(r.body, &dl); err != nil || dl.Responder != "hook" || len(dl.DeadLetters) != 1 || dl.DeadLetters[0].ID == 0 {
		t.Fatalf("GET dead-letters?limit=1 = %s (%v), want one dead letter of hook", r.body, err)
	}
	post := func(path, body string) response {
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		return call(t, ts.srv.URL, http.MethodPost, path, ts.admin(), "", b)
	}
	var redelivered struct {
		Responder   string `json:"responder"`
		Redelivered int    `json:"redelivered"`
	}
	r = post("/v1/responders/hook/redeliver", fmt.Sprintf(`{"id":%d}`, dl.DeadLetters[0].ID))
	if r.status != http.StatusOK {
		t.Fatalf("redeliver one = %v", r)
	}
	decodeStrict(t, "redeliver", r.body, &redelivered)
	if redelivered.Redelivered != 1 {
		t.Errorf("redeliver one = %s, want 1", r.body)
	}
	wantError(t, "redeliver the same again", post("/v1/responders/hook/redeliver", fmt.Sprintf(`{"id":%d}`, dl.DeadLetters[0].ID)), http.StatusNotFound)
	if r := post("/v1/responders/hook/redeliver", ""); r.status != http.StatusOK {
		t.Errorf("redeliver all = %v", r)
	}
	wantError(t, "redeliver id 0", post("/v1/responders/hook/redeliver", `{"id":0}`), http.StatusBadRequest)
	wantError(t, "redeliver id x", post("/v1/responders/hook/redeliver", `{"id":"x"}`), http.StatusBadRequest)
	wantError(t, "redeliver id null", post("/v1/responders/hook/redeliver", `{"id":null}`), http.StatusBadRequest)
	wantError(t, "redeliver id -1", post("/v1/responders/hook/redeliver", `{"id":-1}`), http.StatusBadRequest)
	if r := post("/v1/responders/hook/enable", ""); r.status != http.StatusOK {
		t.Errorf("enable = %v", r)
	}
	for _, p := range []string{"/v1/responders/nope/redeliver", "/v1/responders/nope/enable"} {
		wantError(t, "POST "+p, post(p, ""), http.StatusNotFound)
	}
	wantError(t, "dead letters of nope", ts.get(t, "/v1/responders/nope/dead-letters", ts.admin()), http.StatusNotFound)
	wantError(t, "dead letters limit=0", ts.get(t, "/v1/responders/hook/dead-letters?limit=0", ts.admin()), http.StatusBadRequest)

	r = post("/v1/admin/digest?day=2026-01-05", "")
	if r.status != http.StatusOK {
		t.Fatalf("POST digest = %v", r)
	}
	var rec recordedAnswer
	decodeStrict(t, "digest", r.body, &rec)
	if _, resp, err := alertevent.DecodeResponseLeaf(ts.getEntry(t, rec.Index).Entry); err != nil || resp.Action != alertevent.ActionDigest ||
		!resp.Digest.Start.Equal(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)) || resp.By != "test-admin" {
		t.Errorf("digest leaf = %+v (%v), want the digest of 2026-01-05, by the admin key that asked", resp, err)
	}
	// Without day: the day just ended, as the schedule does.
	r = post("/v1/admin/digest", "")
	if r.status != http.StatusOK {
		t.Fatalf("POST digest without day = %v", r)
	}
	decodeStrict(t, "digest", r.body, &rec)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if _, resp, err := alertevent.DecodeResponseLeaf(ts.getEntry(t, rec.Index).Entry); err != nil || !resp.Digest.Start.Equal(today.AddDate(0, 0, -1)) {
		t.Errorf("digest without day = %+v (%v), want the digest of yesterday, %s", resp, err, today.AddDate(0, 0, -1).Format(time.DateOnly))
	}
	wantError(t, "digest day=yesterday", post("/v1/admin/digest?day=yesterday", ""), http.StatusBadRequest)
	// A day not ended would freeze a digest with partial counts, or a
	// future one with none (9999-12-31 used to panic on its end).
	for _, d := range []string{today.Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly), "2099-01-01", "9999-12-31"} {
		eb := wantError(t, "digest day="+d, post("/v1/admin/digest?day="+d, ""), http.StatusBadRequest)
		if !strings.Contains(eb.Error, "has not ended") {
			t.Errorf("digest day=%s: error %q, want it to say the day has not ended", d, eb.Error)
		}
	}
}

// TestAlertStreamWindow streams more alerts than the server keeps
// encoded for its streams, to clients keeping up and to a client falling
// behind (which reads the feed itself until it catches up): each gets
// every alert exactly once, in order.
func TestAlertStreamWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 8,500 alerts")
	}
	ts, _ := respondServer(t, nil)
	const total, batch = 8_500, 500 // more than twice the window
	fast := []*sseStream{openStream(t, ts.srv.URL, "", ts.responder(), ""), openStream(t, ts.srv.URL, "", ts.responder(), "")}
	slow := openStream(t, ts.srv.URL, "", ts.responder(), "")
	var want []uint64
	for b := range total / batch {
		want = append(want, appendAlerts(t, ts.l, b*batch, batch)...)
	}
	late := openStream(t, ts.srv.URL, "", ts.responder(), "")
	for i, s := range append(fast, late) {
		if got := indexesOf(s.events(t, total)); !slices.Equal(got, want) {
			t.Errorf("stream %d: got %d alerts, want %d in order", i, len(got), total)
		}
	}
	// The slow one has not read yet: its buffered answer is far behind.
	if got := indexesOf(slow.events(t, total)); !slices.Equal(got, want) {
		t.Errorf("slow stream: got %d alerts, want %d in order", len(got), total)
	}
	more := appendAlerts(t, ts.l, total, 10)
	for i, s := range append(fast, late, slow) {
		if got := indexesOf(s.events(t, 10)); !slices.Equal(got, more) {
			t.Errorf("stream %d after the window moved: %v, want %v", i, got, more)
		}
		s.quiet(t, 20*time.Millisecond)
	}
}
