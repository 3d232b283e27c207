package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
	evt "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// readEvents returns the access events recording reads in the entries
// from index from on, read from the ledger (not over HTTP, which would be
// audited). Each must be a valid event.
func readEvents(t testing.TB, l *ledger.Ledger, from uint64) []*evt.Event {
	t.Helper()
	var out []*evt.Event
	for i := from; i < size(l); i++ {
		data, _, err := l.Entry(bg, i)
		if err != nil {
			t.Fatalf("Entry(%d) = %v", i, err)
		}
		leaf, err := evt.DecodeLeaf(data)
		if err != nil || leaf.Kind != evt.KindEvent {
			continue
		}
		ev, err := evt.Parse(leaf.Body, evt.ParseOptions{})
		if err != nil {
			t.Fatalf("entry %d = %s: Parse() = %v", i, data, err)
		}
		if ev.Service == api.ReadAuditService {
			out = append(out, ev)
		}
	}
	return out
}

// waitSize waits until the log holds at least n entries.
func waitSize(t testing.TB, l *ledger.Ledger, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for size(l) < n {
		if time.Now().After(deadline) {
			t.Fatalf("Size() = %d after 10s, want %d", size(l), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// auditingServer serves qs's log and index with read auditing on, its
// background work running until the test ends.
func auditingServer(t *testing.T, qs *queryServer, adjust ...func(*api.Config)) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := api.Config{Ledger: qs.l, Keys: mustKeyring(t, qs.tokens), Index: qs.x, Gatherer: reg, Registerer: reg,
		ReadAudit: api.ReadAudit{Enabled: true, Interval: 10 * time.Millisecond}}
	for _, a := range adjust {
		a(&cfg)
	}
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// TestReadAuditRecordsReads reads personal data every way there is, and
// checks that each read (and each refused for want of a role) is in the
// log as an access event naming the key, and nothing else is.
func TestReadAuditRecordsReads(t *testing.T) {
	qs := newQueryServer(t)
	qs.post(t, 0, qevents(0, 5))
	if _, err := qs.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	srv := auditingServer(t, qs)

	before := size(qs.l)
	type read struct {
		path, token    string
		status         int
		kind, id, qry  string
		actor, outcome string
	}
	reads := []read{
		{"/v1/entries/1", qs.auditor(), 200, "entry", "1", "", "k-auditor", "success"},
		{"/tile/entries/000.p/5", qs.auditor(), 200, "entry_bundle", "entries/000.p/5", "", "k-auditor", "success"},
		{"/v1/events?actor=user-1", qs.auditor(), 200, "events_query", "", "actor=user-1", "k-auditor", "success"},
		{"/v1/events/count?action=login", qs.admin(), 200, "events_count", "", "action=login", "k-admin", "success"},
		{"/v1/events/top?field=actor.id", qs.auditor(), 200, "events_top", "", "field=actor.id", "k-auditor", "success"},
		{"/v1/evidence?actor=user-2", qs.auditor(), 200, "evidence", "", "actor=user-2", "k-auditor", "success"},
		{"/v1/events?format=csv", qs.auditor(), 200, "events_query", "", "format=csv", "k-auditor", "success"},
		{"/v1/entries/1", qs.submitter(), 403, "entry", "1", "", "k-submitter", "failure"},
		{"/v1/entries/999", qs.auditor(), 404, "entry", "999", "", "k-auditor", "failure"},
	}
	for _, r := range reads {
		if got := call(t, srv.URL, "GET", r.path, r.token, "", nil); got.status != r.status {
			t.Fatalf("GET %s = %v, want %d", r.path, got, r.status)
		}
	}
	// Not recorded: no valid key, or no personal data.
	for _, path := range []string{"/v1/entries/1", "/tile/entries/000.p/5"} {
		call(t, srv.URL, "GET", path, "", "", nil)
		call(t, srv.URL, "GET", path, "al_unknown", "", nil)
	}
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/5", "/v1/log", "/v1/proofs/inclusion?index=0&size=5", "/metrics"} {
		call(t, srv.URL, "GET", path, qs.admin(), "", nil)
	}

	waitSize(t, qs.l, before+uint64(len(reads)))
	time.Sleep(50 * time.Millisecond) // anything recorded too much would land by now
	got := readEvents(t, qs.l, before)
	// The clients connect from the listener's loopback address (::1 when
	// httptest fell back to it).
	loopback := srv.Listener.Addr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	if len(got) != len(reads) {
		t.Fatalf("%d read events in the log, want %d: %+v", len(got), len(reads), got)
	}
	// Batches keep the order of the reads.
	for i, r := range reads {
		ev := got[i]
		what := "read event of GET " + r.path
		if ev.Actor.ID != r.actor || ev.Actor.Type != evt.ActorService || ev.Action != "read" ||
			ev.Category != evt.CategoryDataAccess || ev.Outcome != r.outcome {
			t.Errorf("%s = actor %+v action %q category %q outcome %q, want %s, read, data_access, %s",
				what, ev.Actor, ev.Action, ev.Category, ev.Outcome, r.actor, r.outcome)
		}
		if ev.Resource == nil || ev.Resource.Type != r.kind || ev.Resource.ID != r.id {
			t.Errorf("%s: resource = %+v, want type %q id %q", what, ev.Resource, r.kind, r.id)
		}
		if ev.Attributes["query"] != r.qry || ev.Attributes["status"] != strconv.Itoa(r.status) {
			t.Errorf("%s: attributes = %v, want query %q and status %d", what, ev.Attributes, r.qry, r.status)
		}
		if ev.Source.IP != loopback || !strings.HasPrefix(ev.Source.UserAgent, "Go-http-client") {
			t.Errorf("%s: source = %+v, want %s and the Go client", what, ev.Source, loopback)
		}
		if time.Since(ev.Time) > time.Minute || ev.Time.After(time.Now()) {
			t.Errorf("%s: time %s, want the time of the read", what, ev.Time)
		}
	}
	r := call(t, srv.URL, "GET", "/metrics", qs.admin(), "", nil)
	if v, ok := metricValue(t, r.body, `accessledger_read_audit_events_total{result="appended"}`); !ok || v != float64(len(reads)) {
		t.Errorf("read audit appended = %v (found %v), want %d", v, ok, len(reads))
	}
}

// TestReadAuditCleansText: a reader's user agent is recorded as free text
// the log accepts from clients: C1 controls and bidirectional overrides,
// which a client's event may not hold, were stored as sent.
func TestReadAuditCleansText(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) { c.ReadAudit = api.ReadAudit{Enabled: true, Interval: time.Hour} }))
	ts.appendHTTP(t, 0, 2)
	before := size(ts.l)
	req, _ := http.NewRequest(http.MethodGet, ts.srv.URL+"/v1/entries/1", nil)
	req.Header.Set("Authorization", "Bearer "+ts.auditor())
	req.Header.Set("User-Agent", "curl\u202e-evil\u0085x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	runAndStop(t, ts)
	evs := readEvents(t, ts.l, before)
	if len(evs) != 1 || evs[0].Source.UserAgent != "curl?-evil?x" {
		t.Errorf("read events = %+v, want one with user agent %q", evs, "curl?-evil?x")
	}
}

// TestReadAuditOff: with the setting off, reads append nothing.
func TestReadAuditOff(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) { c.ReadAudit = api.ReadAudit{Enabled: false, Interval: time.Millisecond} }))
	ts.run(t)
	ts.appendHTTP(t, 0, 3)
	before := size(ts.l)
	for range 5 {
		ts.getEntry(t, 1)
		if r := ts.get(t, "/tile/entries/000.p/3", ts.auditor()); r.status != http.StatusOK {
			t.Fatalf("GET bundle = %v", r)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := size(ts.l); got != before {
		t.Errorf("Size() after reads with read auditing off = %d, want %d", got, before)
	}
}

// TestReadAuditNeverBlocks: a full queue drops records (counted), never
// reads; what is queued is appended once Run runs, and at its end.
func TestReadAuditNeverBlocks(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.ReadAudit = api.ReadAudit{Enabled: true, QueueSize: 2, Interval: time.Hour}
	}))
	ts.appendHTTP(t, 0, 1)
	before := size(ts.l)
	for range 5 {
		ts.getEntry(t, 0) // served although nobody appends the records
	}
	r := ts.get(t, "/metrics", ts.admin())
	if v, ok := metricValue(t, r.body, `accessledger_read_audit_events_total{result="dropped"}`); !ok || v != 3 {
		t.Errorf("read audit dropped = %v (found %v), want 3", v, ok)
	}
	// Run appends the two queued records when it stops, although its
	// interval is an hour.
	runAndStop(t, ts)
	// The two reads of one entry by one key make one event.
	if got := size(ts.l); got != before+1 {
		t.Errorf("Size() after Run stopped = %d, want %d", got, before+1)
	}
	evs := readEvents(t, ts.l, before)
	if len(evs) != 1 || evs[0].Actor.ID != "test-auditor" || evs[0].Attributes["reads"] != "2" {
		t.Errorf("read events = %+v, want one by test-auditor recording 2 reads", evs)
	}
}

// TestReadAuditCoalescesBundleReads: the bundle and entry reads of one key
// in one batch make one event, which says how many and which was last;
// another key's reads, a failed read and queries stay apart; the metric
// counts reads.
func TestReadAuditCoalescesBundleReads(t *testing.T) {
	ts := newTestServer(t, withAPI(func(c *api.Config) {
		c.ReadAudit = api.ReadAudit{Enabled: true, Interval: time.Hour, MaxBatch: 1000}
	}))
	ts.appendHTTP(t, 0, 3)
	before := size(ts.l)
	for range 20 {
		if r := ts.get(t, "/tile/entries/000.p/3", ts.auditor()); r.status != http.StatusOK {
			t.Fatalf("GET bundle = %v", r)
		}
	}
	ts.getEntry(t, 1)                                                                   // another kind: its own event
	if r := ts.get(t, "/tile/entries/000.p/3", ts.admin()); r.status != http.StatusOK { // another key
		t.Fatalf("GET bundle = %v", r)
	}
	if r := ts.get(t, "/tile/entries/001", ts.auditor()); r.status != http.StatusNotFound { // another status
		t.Fatalf("GET missing bundle = %v", r)
	}
	if r := ts.get(t, "/tile/entries/000.p/2", ts.auditor()); r.status != http.StatusOK { // joins the first
		t.Fatalf("GET bundle = %v", r)
	}
	runAndStop(t, ts)
	evs := readEvents(t, ts.l, before)
	type want struct{ actor, kind, id, reads, lastID, status string }
	wants := []want{
		{"test-auditor", "entry_bundle", "entries/000.p/3", "21", "entries/000.p/2", "200"},
		{"test-auditor", "entry", "1", "", "", "200"},
		{"test-admin", "entry_bundle", "entries/000.p/3", "", "", "200"},
		{"test-auditor", "entry_bundle", "entries/001", "", "", "404"},
	}
	if len(evs) != len(wants) {
		t.Fatalf("%d read events, want %d: %+v", len(evs), len(wants), evs)
	}
	for i, w := range wants {
		ev := evs[i]
		if ev.Actor.ID != w.actor || ev.Resource == nil || ev.Resource.Type != w.kind || ev.Resource.ID != w.id ||
			ev.Attributes["reads"] != w.reads || ev.Attributes["last_id"] != w.lastID || ev.Attributes["status"] != w.status {
			t.Errorf("event %d = actor %q resource %+v attributes %v, want %+v", i, ev.Actor.ID, ev.Resource, ev.Attributes, w)
		}
	}
	if last, err := time.Parse(time.RFC3339Nano, evs[0].Attributes["last_time"]); err != nil || last.Before(evs[0].Time) {
		t.Errorf("last_time %q (%v), want a time at or after the first read (%s)", evs[0].Attributes["last_time"], err, evs[0].Time)
	}
	r := ts.get(t, "/metrics", ts.admin())
	if v, ok := metricValue(t, r.body, `accessledger_read_audit_events_total{result="appended"}`); !ok || v != 24 {
		t.Errorf("read audit appended = %v (found %v), want 24 reads", v, ok)
	}
}

// BenchmarkReadEntry measures GET /v1/entries/<i> over loopback with
// read auditing off and on (the read queues its record; Run appends).
func BenchmarkReadEntry(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("audit_reads="+strconv.FormatBool(on), func(b *testing.B) {
			ts := newTestServer(b, withAPI(func(c *api.Config) { c.ReadAudit = api.ReadAudit{Enabled: on} }))
			ts.run(b)
			ts.appendHTTP(b, 0, 100)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r, err := tryCall(ts.srv.URL, "GET", "/v1/entries/"+strconv.Itoa(i%100), ts.auditor(), "", nil)
				if err != nil || r.status != http.StatusOK {
					b.Fatalf("GET = %v, %v", r, err)
				}
			}
		})
	}
}

// runAndStop runs the server's Run and stops it at once: it appends the
// reads queued.
func runAndStop(t *testing.T, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- ts.api.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
}

// TestReadAuditRecordsCutStreams: a client that reads part of a query's
// stream and hangs up has still read personal data: the read is recorded.
// (The handler ends with panic(http.ErrAbortHandler) when its write fails;
// the record was made after it returned, so it was lost.)
func TestReadAuditRecordsCutStreams(t *testing.T) {
	qs := newQueryServer(t)
	const n = 20000 // ~9 MB of NDJSON: more than loopback's socket buffers hold
	qs.post(t, 0, qevents(0, n))
	srv := auditingServer(t, qs)
	deadline := time.Now().Add(20 * time.Second)
	for qs.x.Size() < size(qs.l) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	before := size(qs.l)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /v1/events?format=ndjson HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", qs.auditor())
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatalf("reading the start of the stream: %v", err)
	}
	conn.Close() // hang up mid-stream
	waitSize(t, qs.l, before+1)
	got := readEvents(t, qs.l, before)
	if len(got) != 1 || got[0].Resource == nil || got[0].Resource.Type != "events_query" || got[0].Actor.ID != "k-auditor" {
		t.Fatalf("read events after a cut stream = %+v, want one events_query by k-auditor", got)
	}
}

// TestClientAddressFromXForwardedForOnly: behind a trusted proxy the
// reader's address recorded is the one the proxy puts in
// X-Forwarded-For, and never one from X-Real-IP, which gin believed too
// when X-Forwarded-For was absent: an operator whose proxy sets X-Real-IP
// alone believed the address safe, while a client's own X-Forwarded-For,
// read first, chose it (found by review). Only X-Forwarded-For is read
// now, and the README says the proxy must set it.
func TestClientAddressFromXForwardedForOnly(t *testing.T) {
	qs := newQueryServer(t)
	qs.post(t, 0, qevents(0, 2))
	srv := auditingServer(t, qs, func(c *api.Config) { c.TrustedProxies = []string{"127.0.0.0/8", "::1"} })
	loopback := srv.Listener.Addr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	for _, c := range []struct {
		name   string
		header http.Header
		want   netip.Addr
	}{
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"192.0.2.7"}}, netip.MustParseAddr("192.0.2.7")},
		{"X-Real-IP alone", http.Header{"X-Real-Ip": {"192.0.2.99"}}, loopback},
	} {
		before := size(qs.l)
		if r := callAPIKeyWith(t, srv.URL, http.MethodGet, "/v1/entries/1", qs.auditor(), c.header, nil); r.status != http.StatusOK {
			t.Fatalf("%s: GET /v1/entries/1 = %v", c.name, r)
		}
		waitSize(t, qs.l, before+1)
		got := readEvents(t, qs.l, before)
		if len(got) != 1 || got[0].Source.IP != c.want {
			t.Errorf("%s: recorded reader %+v, want source %s", c.name, got, c.want)
		}
	}
}
