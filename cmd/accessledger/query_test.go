package main

import (
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// qdoc is what the brute-force scan reads of an entry.
type qdoc struct {
	Kind string `json:"kind"`
	Body struct {
		ID      string    `json:"id"`
		Time    time.Time `json:"time"`
		Service string    `json:"service"`
		Actor   struct {
			ID string `json:"id"`
		} `json:"actor"`
		Source struct {
			IP string `json:"ip"`
		} `json:"source"`
		Action   string `json:"action"`
		Category string `json:"category"`
		Outcome  string `json:"outcome"`
		Resource struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"resource"`
		Tenant string `json:"tenant"`
	} `json:"body"`
}

var qBase = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// queryEventJSON is event n of the crash test: fields drawn from small
// pools so that every filter matches something.
func queryEventJSON(n int) json.RawMessage {
	ip := fmt.Sprintf("198.51.%d.%d", n%4, n%251)
	if n%5 == 0 {
		ip = fmt.Sprintf("2001:db8:%x::%x", n%3, n%97+1)
	}
	ev := map[string]any{
		"id":       "k-" + strconv.Itoa(n),
		"time":     qBase.Add(time.Duration(n%20000) * 13 * time.Second).Format(time.RFC3339Nano),
		"service":  []string{"sso", "vpn", "crm", "git"}[n%4],
		"actor":    map[string]any{"id": fmt.Sprintf("user-%d", n%61), "type": "user"},
		"source":   map[string]any{"ip": ip},
		"action":   []string{"login", "logout", "read", "update", "delete"}[n%5*n%7%5],
		"category": []string{"authentication", "data_access", "admin"}[n%3],
		"outcome":  []string{"success", "failure", "unknown"}[n%11%3],
	}
	if n%3 > 0 {
		ev["resource"] = map[string]any{"type": []string{"doc", "repo"}[n%2], "id": "r" + strconv.Itoa(n%13)}
	}
	if n%2 == 0 {
		ev["tenant"] = []string{"acme", "globex"}[n/2%2]
	}
	b, _ := json.Marshal(ev)
	return b
}

// loadAcked posts events from next on, in batches, from several
// goroutines, until stop is closed or the server fails; it records every
// acknowledged id with its index.
func loadAcked(s *server, next *atomic.Int64, limit int64, acked *sync.Map, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				first := next.Add(500) - 500
				if first >= limit {
					return
				}
				var evs []json.RawMessage
				for n := first; n < min(first+500, limit); n++ {
					evs = append(evs, queryEventJSON(int(n)))
				}
				// Generous: a batch that times out on a loaded machine
				// would stop this goroutine, and may still be appended
				// after the test has taken the log's size.
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				status, res, _, err := s.postEvents(ctx, "", evs)
				cancel()
				if err != nil || status/100 != 2 {
					return // the server is gone
				}
				for i, r := range res {
					acked.Store("k-"+strconv.FormatInt(first+int64(i), 10), r.Index)
				}
			}
		})
	}
	wg.Wait()
}

// TestQueriesAfterKill9 runs the real binary, appends events from several
// clients, SIGKILLs it mid-load, restarts it, appends more, and checks
// that the index catches up and that queries answer exactly as a
// brute-force scan of every entry does, with every acknowledged event
// found.
func TestQueriesAfterKill9(t *testing.T) {
	dir := t.TempDir()
	// Reads are not recorded: the queries must match the entries read.
	s := startServer(t, dir, "--detect=false", "--audit-reads=false")
	var next atomic.Int64
	var acked sync.Map
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() { loadAcked(s, &next, 1<<40, &acked, stop); close(loaded) }()
	for next.Load() < 40_000 {
		time.Sleep(10 * time.Millisecond)
	}
	s.kill()
	close(stop)
	<-loaded

	s = startServer(t, dir, "--detect=false", "--audit-reads=false")
	restart := next.Load()
	loadAcked(s, &next, restart+20_000, &acked, nil)
	// The signer runs on its own cadence, which a loaded machine delays:
	// wait for a checkpoint that covers every acknowledged index rather
	// than guessing when it has caught up.
	var maxIdx uint64
	acked.Range(func(_, v any) bool { maxIdx = max(maxIdx, v.(uint64)); return true })
	size := s.waitQuiet(maxIdx+1, 60*time.Second)

	docs := s.allEntries(size)
	if len(docs) < 50_000 {
		t.Fatalf("the log holds %d entries, want at least 50,000", len(docs))
	}
	// Every acknowledged event is in the log, where its answer said.
	nAcked := 0
	acked.Range(func(k, v any) bool {
		nAcked++
		i := v.(uint64)
		if i >= uint64(len(docs)) || docs[i].Body.ID != k.(string) {
			t.Errorf("acknowledged event %s at index %d is not in the log", k, i)
		}
		return nAcked < 1e9
	})
	t.Logf("%d entries, %d acknowledged; killed at %d events sent", len(docs), nAcked, restart)

	type qc struct {
		query string
		keep  func(qdoc) bool
	}
	in := func(p string) func(qdoc) bool {
		pfx := netip.MustParsePrefix(p)
		return func(d qdoc) bool { a, err := netip.ParseAddr(d.Body.Source.IP); return err == nil && pfx.Contains(a) }
	}
	since, until := qBase.Add(10*time.Hour+17*time.Second), qBase.Add(30*time.Hour+1)
	cases := []qc{
		{"actor=user-7", func(d qdoc) bool { return d.Body.Actor.ID == "user-7" }},
		{"action=login&outcome=failure", func(d qdoc) bool { return d.Body.Action == "login" && d.Body.Outcome == "failure" }},
		{"service=vpn&service=git&tenant=acme", func(d qdoc) bool {
			return (d.Body.Service == "vpn" || d.Body.Service == "git") && d.Body.Tenant == "acme"
		}},
		{"category=admin&resource_type=repo&resource_id=r3", func(d qdoc) bool {
			return d.Body.Category == "admin" && d.Body.Resource.Type == "repo" && d.Body.Resource.ID == "r3"
		}},
		{"kind=event", func(d qdoc) bool { return d.Kind == "event" }},
		{"source_ip=198.51.2.17", func(d qdoc) bool { return d.Body.Source.IP == "198.51.2.17" }},
		{"cidr=198.51.0.0/16", in("198.51.0.0/16")},
		{"cidr=198.51.1.0/24", in("198.51.1.0/24")},
		{"cidr=198.51.3.128/25", in("198.51.3.128/25")},
		{"cidr=0.0.0.0/0", in("0.0.0.0/0")},
		{"cidr=2001:db8:1::/48", in("2001:db8:1::/48")},
		{"cidr=::/0", in("::/0")},
		{"cidr=2001:db8::/32&actor=user-5", func(d qdoc) bool { return in("2001:db8::/32")(d) && d.Body.Actor.ID == "user-5" }},
		{"since=" + url.QueryEscape(since.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(until.Format(time.RFC3339Nano)) + "&outcome=unknown",
			func(d qdoc) bool {
				return !d.Body.Time.Before(since) && d.Body.Time.Before(until) && d.Body.Outcome == "unknown"
			}},
	}
	for _, c := range cases {
		var want []uint64
		for i, d := range docs {
			if c.keep(d) {
				want = append(want, uint64(i))
			}
		}
		got := s.queryAll(c.query, 1000)
		if !slices.Equal(got, want) {
			t.Errorf("GET /v1/events?%s: %d events, want %d", c.query, len(got), len(want))
		}
		var cnt struct {
			Count uint64 `json:"count"`
		}
		s.get("/v1/events/count?"+c.query, &cnt)
		if cnt.Count != uint64(len(want)) {
			t.Errorf("GET /v1/events/count?%s = %d, want %d", c.query, cnt.Count, len(want))
		}
	}
}

// waitQuiet waits, once appends have stopped, until a checkpoint covers
// at least size entries and the index has reached exactly that
// checkpoint's size, and returns it. The index follows commits, not
// checkpoints, so it may run ahead of a checkpoint: only when both agree
// do the queries answer over exactly the entries the checkpoint covers.
func (s *server) waitQuiet(size uint64, timeout time.Duration) uint64 {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cp := s.waitCheckpoint(size, time.Until(deadline))
		s.waitIndexed(cp.size, time.Until(deadline))
		if indexed := s.indexedSize(); indexed == cp.size {
			return cp.size
		} else if indexed > size {
			// Committed beyond the checkpoint: wait for the signer.
			size = indexed
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the checkpoint (%d) and the index (%d) did not agree within %s", cp.size, s.indexedSize(), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// indexedSize is the index's size, as the count endpoint reports it.
func (s *server) indexedSize() uint64 {
	s.t.Helper()
	var c struct {
		IndexedSize uint64 `json:"indexed_size"`
	}
	s.get("/v1/events/count", &c)
	return c.IndexedSize
}

// waitIndexed polls the count endpoint until the index reaches size.
func (s *server) waitIndexed(size uint64, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var c struct {
			IndexedSize uint64 `json:"indexed_size"`
		}
		s.get("/v1/events/count", &c)
		if c.IndexedSize >= size {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("indexed size %d after %s, want %d", c.IndexedSize, timeout, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allEntries reads every entry below size from the entry bundles.
func (s *server) allEntries(size uint64) []qdoc {
	s.t.Helper()
	docs := make([]qdoc, 0, size)
	for b := uint64(0); b*256 < size; b++ {
		path := fmt.Sprintf("/tile/entries/%s", tileIndexPath(b))
		if w := size - b*256; w < 256 {
			path += fmt.Sprintf(".p/%d", w)
		}
		raw := s.get(path, nil)
		for len(raw) >= 2 {
			n := int(binary.BigEndian.Uint16(raw))
			var d qdoc
			if err := json.Unmarshal(raw[2:2+n], &d); err != nil {
				s.t.Fatalf("entry %d: %v", len(docs), err)
			}
			docs = append(docs, d)
			raw = raw[2+n:]
		}
	}
	if uint64(len(docs)) != size {
		s.t.Fatalf("read %d entries, want %d", len(docs), size)
	}
	return docs
}

// tileIndexPath is the C2SP tlog-tiles encoding of a tile index.
func tileIndexPath(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

// queryAll pages through GET /v1/events?query.
func (s *server) queryAll(query string, limit int) []uint64 {
	s.t.Helper()
	var got []uint64
	cursor := ""
	for {
		var p struct {
			Events []struct {
				Index uint64 `json:"index"`
			} `json:"events"`
			Next string `json:"next"`
		}
		s.get(fmt.Sprintf("/v1/events?%s&limit=%d&cursor=%s", query, limit, cursor), &p)
		for _, e := range p.Events {
			got = append(got, e.Index)
		}
		if len(p.Events) < limit {
			return got
		}
		cursor = p.Next
	}
}

// TestQueryExportVerifyCLI runs query, export and verify as a user
// would, against a real server.
func TestQueryExportVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	var evs []json.RawMessage
	for n := range 600 {
		evs = append(evs, queryEventJSON(n))
	}
	s.mustPost(evs[:300]...)
	s.mustPost(evs[300:]...)
	s.waitCheckpoint(601, 10*time.Second) // and the admin leaf of the generated key
	s.waitIndexed(601, 10*time.Second)
	keyFile := filepath.Join(dir, "admin.key")
	vkeyFile := filepath.Join(dir, "log.vkey")
	common := []string{"--url", s.base, "--api-key-file", keyFile}

	code, out, errOut := runCLI(t, nil, append([]string{"query", "--actor", "user-7", "--count"}, common...)...)
	if code != 0 || strings.TrimSpace(out) != "10" {
		t.Errorf("query --count = %d %q %q, want 10", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, append([]string{"query", "--actor", "user-7", "--format", "ndjson"}, common...)...)
	if code != 0 || strings.Count(out, "\n") != 10 || strings.Contains(errOut, "events/s") {
		t.Errorf("query --format ndjson = %d, %d lines, stderr %q; want 10 lines and no progress bar off a terminal", code, strings.Count(out, "\n"), errOut)
	}
	code, out, _ = runCLI(t, nil, append([]string{"query", "--actor", "user-7", "--limit", "3"}, common...)...)
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.HasPrefix(out, "INDEX") {
		t.Errorf("query (table) = %d %q, want a header and 3 rows", code, out)
	}
	bundle := filepath.Join(t.TempDir(), "alice.json")
	code, out, errOut = runCLI(t, nil, append([]string{"export", "--actor", "user-7", "--since", "2026-05-01T00:00:00Z", "-o", bundle, "--vkey", vkeyFile}, common...)...)
	if code != 0 || !strings.Contains(out, "verified: 10 entries") {
		t.Fatalf("export = %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "verify", bundle, "--vkey", vkeyFile)
	if code != 0 || !strings.Contains(out, "OK: 10 entries") {
		t.Errorf("verify = %d %q %q", code, out, errOut)
	}
	// A changed byte: verify exits 1 and names the entry.
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(raw), `"actor":{"id":"user-7"`)
	raw[i+len(`"actor":{"id":"user-`)] = '8'
	if err := os.WriteFile(bundle, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, nil, "verify", bundle, "--vkey", s.vkey)
	if code != 1 || !strings.Contains(errOut, "entry 0 of the bundle (log index 8)") {
		t.Errorf("verify(changed) = %d %q, want exit 1 naming entry 0 (log index 8)", code, errOut)
	}
}

// TestQuerySubmittedByCLI: after a submitter key is revoked, query
// --submitted-by lists what it wrote (and only that), in every format;
// export --submitted-by takes it into an evidence bundle that verify
// proves.
func TestQuerySubmittedByCLI(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	status, resp, err := s.do(t.Context(), http.MethodPost, "/v1/admin/keys", "", []byte(`{"name":"billing-svc","roles":["submitter"]}`))
	var created struct {
		Secret string `json:"secret"`
	}
	if err != nil || status != http.StatusCreated || json.Unmarshal(resp, &created) != nil {
		t.Fatalf("POST /v1/admin/keys = %d %s, %v", status, resp, err)
	}
	var evs []json.RawMessage
	for n := range 50 {
		evs = append(evs, queryEventJSON(n))
	}
	s.mustPost(evs[:30]...) // with the admin key, "admin"
	if status, _, body, err := s.postEvents(t.Context(), created.Secret, evs[30:]); err != nil || status != http.StatusCreated {
		t.Fatalf("POST /v1/events as billing-svc = %d %s, %v", status, body, err)
	}
	if status, resp, err := s.do(t.Context(), http.MethodPost, "/v1/admin/keys/billing-svc/revoke", "", nil); err != nil || status != http.StatusOK {
		t.Fatalf("revoking billing-svc = %d %s, %v", status, resp, err)
	}
	s.waitCheckpoint(53, 10*time.Second) // the generated key, billing-svc created and revoked, 50 events
	s.waitIndexed(53, 10*time.Second)
	common := []string{"--url", s.base, "--api-key-file", filepath.Join(dir, "admin.key")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--submitted-by", "billing-svc"}, "20"},
		{[]string{"--submitted-by", "admin"}, "30"},
		{[]string{"--submitted-by", "billing-svc", "--submitted-by", "admin"}, "50"},
		{[]string{"--submitted-by", "nobody"}, "0"},
	} {
		code, out, errOut := runCLI(t, nil, append(append([]string{"query", "--count"}, tc.args...), common...)...)
		if code != 0 || strings.TrimSpace(out) != tc.want {
			t.Errorf("query --count %v = %d %q %q, want %s", tc.args, code, out, errOut, tc.want)
		}
	}
	code, out, errOut := runCLI(t, nil, append([]string{"query", "--submitted-by", "billing-svc", "--format", "ndjson"}, common...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 20 {
		t.Fatalf("query --submitted-by billing-svc --format ndjson = %d, %d lines, %q; want 20", code, len(lines), errOut)
	}
	for _, l := range lines {
		var e struct {
			Entry struct {
				SubmittedBy string `json:"submitted_by"`
			} `json:"entry"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Entry.SubmittedBy != "billing-svc" {
			t.Errorf("query --submitted-by billing-svc printed %s (%v), want an entry submitted by billing-svc", l, err)
		}
	}
	code, out, errOut = runCLI(t, nil, append([]string{"query", "--submitted-by", "billing-svc", "--format", "csv", "--limit", "2"}, common...)...)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 || rows[0][len(rows[0])-1] != "submitted_by" || rows[1][len(rows[1])-1] != "billing-svc" {
		t.Errorf("query --submitted-by billing-svc --format csv = %d %q %q, %v; want submitted_by last", code, out, errOut, err)
	}
	bundle := filepath.Join(t.TempDir(), "billing-svc.json")
	code, out, errOut = runCLI(t, nil, append([]string{"export", "--submitted-by", "billing-svc", "-o", bundle, "--vkey", filepath.Join(dir, "log.vkey")}, common...)...)
	if code != 0 || !strings.Contains(out, "verified: 20 entries") {
		t.Fatalf("export --submitted-by billing-svc = %d %q %q", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, nil, "verify", bundle, "--vkey", s.vkey); code != 0 || !strings.Contains(out, "OK: 20 entries") {
		t.Errorf("verify = %d %q %q", code, out, errOut)
	}
}

// TestQueryAndExportOutputs: what -o writes, against a server that
// answers tersely. A query that fails leaves an existing file as it was;
// output that cannot be written is an error, not exit 0; export writes
// through a symbolic link rather than replacing it; a download cut a few
// bytes into an entry line is reported, not a panic.
func TestQueryAndExportOutputs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/events/count":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"count":3,"indexed_size":3}`)
		case "/v1/evidence":
			if r.URL.Query().Get("actor") == "cut" {
				fmt.Fprint(w, `{"in`) // 3 bytes of an entry line, then the end
				return
			}
			fmt.Fprint(w, "accessledger-evidence/v1\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	common := []string{"--url", srv.URL, "--key", "k"}

	keep := filepath.Join(dir, "keep.csv")
	writeFile(t, keep, "precious\n")
	for _, bad := range [][]string{{"--format", "xml"}, {"--order", "sideways"}, {"--actor", "x", "--format", "csv", "--since", "yesterday"}} {
		args := append(append([]string{"query"}, common...), append(bad, "-o", keep)...)
		if code, _, _ := runCLI(t, nil, args...); code == 0 {
			t.Errorf("%v = exit 0, want an error", bad)
		}
		if got, _ := os.ReadFile(keep); string(got) != "precious\n" {
			t.Errorf("after the failed %v, %s holds %q, want it unchanged", bad, keep, got)
		}
	}
	if code, out, _ := runCLI(t, nil, append(append([]string{"query"}, common...), "--count", "-o", keep)...); code != 0 || out != "" {
		t.Errorf("query --count -o = exit %d %q", code, out)
	} else if got, _ := os.ReadFile(keep); string(got) != "3\n" {
		t.Errorf("query --count -o wrote %q, want 3", got)
	}
	// -o - is standard output, as for simulate --out; export refuses it
	// (it checks the file before it replaces the one there). Both made
	// a file named "-".
	dashDir := t.TempDir()
	if code, out, _ := runCLIIn(t, dashDir, nil, append(append([]string{"query"}, common...), "--count", "-o", "-")...); code != 0 || out != "3\n" {
		t.Errorf("query --count -o - = exit %d %q, want 3 on standard output", code, out)
	}
	if code, _, errOut := runCLIIn(t, dashDir, nil, append(append([]string{"export"}, common...), "-o", "-")...); code == 0 || !strings.Contains(errOut, "give a file name") {
		t.Errorf("export -o - = exit %d %q, want a refusal", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dashDir, "-")); err == nil {
		t.Errorf("a file named - was made")
	}
	if _, err := os.Stat("/dev/full"); err == nil {
		if code, _, errOut := runCLI(t, nil, append(append([]string{"query"}, common...), "--count", "-o", "/dev/full")...); code == 0 {
			t.Errorf("query --count -o /dev/full = exit 0 (%q), want the write error", errOut)
		}
	}

	target := filepath.Join(dir, "target.json")
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, nil, append(append([]string{"export"}, common...), "-o", link)...); code != 0 {
		t.Fatalf("export -o link = exit %d %q", code, errOut)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("export -o through a symbolic link replaced the link (%v, %v)", fi.Mode(), err)
	}
	if got, _ := os.ReadFile(target); string(got) != "accessledger-evidence/v1\n" {
		t.Errorf("the link's target holds %q, want the bundle", got)
	}
	code, _, errOut := runCLI(t, nil, append(append([]string{"export"}, common...), "--actor", "cut", "-o", filepath.Join(dir, "cut.json"))...)
	if code == 2 || strings.Contains(errOut, "panic") {
		t.Errorf("export of a download cut short = exit %d %q, want no panic", code, errOut)
	}
}

// TestQueryTableNeutralisesText: logs written before the log refused them
// may hold C1 controls (U+009B starts a terminal escape sequence) and
// bidirectional overrides (evil\u202egnp.exe shows as evilexe.png); the
// table printed them raw to the analyst's terminal. The page is served
// by a stand-in for such a log.
func TestQueryTableNeutralisesText(t *testing.T) {
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"indexed_size":2,"events":[{"index":1,"leaf_hash":"AAAA","entry":{"kind":"event","received_at":"2026-11-29T10:00:00Z",`+
			`"body":{"time":"2026-11-29T10:00:00Z","service":"tty","actor":{"id":"evil\u009b2J\u202egnp.exe"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"success"}}}]}`)
	}))
	defer old.Close()
	code, out, errOut := runCLI(t, nil, "query", "--url", old.URL, "--key", "al_test", "--service", "tty")
	if code != 0 || !strings.Contains(out, "evil") {
		t.Fatalf("query = %d %q %q", code, out, errOut)
	}
	if strings.ContainsAny(out, "\u009b\u202e") {
		t.Errorf("query printed the raw controls: %q", out)
	}
}

// TestQueryFollowsShortPages: the server bounds a page's bytes as well as
// its count, so a page may hold fewer events than asked for and have more
// after it. query took a short page for the last one and printed the
// first page alone; it follows next until a page is empty (or has no
// next), asking each time for what it still needs.
func TestQueryFollowsShortPages(t *testing.T) {
	ev := func(i int) string {
		return fmt.Sprintf(`{"index":%d,"leaf_hash":"AAAA","entry":{"kind":"event","body":{"service":"s","actor":{"id":"a%d"}}}}`, i, i)
	}
	pages := map[string][]int{"": {0, 1, 2}, "c1": {3, 4}, "c2": {}} // by cursor
	nexts := map[string]string{"": "c1", "c1": "c2", "c2": "c3"}
	var asked []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			http.NotFound(w, r)
			return
		}
		cur := r.URL.Query().Get("cursor")
		mu.Lock()
		asked = append(asked, cur+"/"+r.URL.Query().Get("limit"))
		mu.Unlock()
		evs, ok := pages[cur]
		if !ok {
			http.Error(w, `{"error":"unexpected cursor"}`, http.StatusBadRequest)
			return
		}
		if n, _ := strconv.Atoi(r.URL.Query().Get("limit")); n < len(evs) {
			evs = evs[:n] // the next cursor is then wrong, but never used
		}
		var parts []string
		for _, i := range evs {
			parts = append(parts, ev(i))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"indexed_size":5,"events":[%s],"next":%q}`, strings.Join(parts, ","), nexts[cur])
	}))
	defer srv.Close()
	for _, tc := range []struct {
		limit  string
		want   int
		asked  []string
		format string
	}{
		{"10", 5, []string{"/10", "c1/7", "c2/5"}, "json"},
		{"4", 4, []string{"/4", "c1/1"}, "json"},
		{"10", 5, []string{"/10", "c1/7", "c2/5"}, "table"},
	} {
		asked = nil
		code, out, errOut := runCLI(t, nil, "query", "--url", srv.URL, "--key", "k", "--limit", tc.limit, "--format", tc.format)
		if code != 0 {
			t.Fatalf("query --limit %s = exit %d %q", tc.limit, code, errOut)
		}
		var got []int
		if tc.format == "json" {
			var evs []struct{ Index int }
			if err := json.Unmarshal([]byte(out), &evs); err != nil {
				t.Fatalf("query --format json: %v\n%s", err, out)
			}
			for _, e := range evs {
				got = append(got, e.Index)
			}
		} else {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
				n, _ := strconv.Atoi(strings.Fields(line)[0])
				got = append(got, n)
			}
		}
		if len(got) != tc.want || !slices.Equal(got, []int{0, 1, 2, 3, 4}[:tc.want]) {
			t.Errorf("query --limit %s --format %s printed events %v, want the first %d of 0..4", tc.limit, tc.format, got, tc.want)
		}
		if !slices.Equal(asked, tc.asked) {
			t.Errorf("query --limit %s asked for cursor/limit %v, want %v", tc.limit, asked, tc.asked)
		}
	}
}

// TestQueryCSVRaw: --csv-raw asks the server for the CSV values as
// recorded (csv_raw=true), and goes with --format csv alone.
func TestQueryCSVRaw(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Query().Get("format")+"/"+r.URL.Query().Get("csv_raw"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		io.WriteString(w, "index\n")
	}))
	defer srv.Close()
	common := []string{"query", "--url", srv.URL, "--key", "k"}
	if code, _, errOut := runCLI(t, nil, append(common, "--format", "csv", "--csv-raw")...); code != 0 {
		t.Fatalf("query --format csv --csv-raw = exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, append(common, "--format", "csv")...); code != 0 {
		t.Fatalf("query --format csv = exit %d %q", code, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"csv/true", "csv/"}) {
		t.Errorf("the server was asked for format/csv_raw %v, want [csv/true csv/]", got)
	}
	for _, bad := range [][]string{{"--csv-raw"}, {"--format", "ndjson", "--csv-raw"}, {"--format", "csv", "--csv-raw", "--count"}} {
		if code, _, errOut := runCLI(t, nil, append(common, bad...)...); code == 0 || !strings.Contains(errOut, "--csv-raw") {
			t.Errorf("query %v = exit %d %q, want an error naming --csv-raw", bad, code, errOut)
		}
	}
}

// TestParseWhenStrict: --since and --until are parsed as the log parses
// event times. time.Parse took a ',' before the fraction and cut digits
// finer than a nanosecond, so --since ...,1234000001Z asked the server
// for ...,1234Z; it also took offsets such as +24:00.
func TestParseWhenStrict(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-20T11:11:11.123456789Z": time.Date(2026, 11, 20, 11, 11, 11, 123456789, time.UTC),
		"2026-11-20t11:11:11z":           time.Date(2026, 11, 20, 11, 11, 11, 0, time.UTC),
		"2026-11-20T12:11:11+01:00":      time.Date(2026, 11, 20, 11, 11, 11, 0, time.UTC),
		"0001-01-01T00:00:00Z":           {},
		"24h":                            now.Add(-24 * time.Hour),
	} {
		if got, err := parseWhen(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"2026-11-20T11:11:11,1234000001Z": "neither",
		"2026-11-20T11:11:11,1234Z":       "neither",
		"2026-11-20T11:11:11.1234000001Z": "more than 9 fractional digits",
		"2026-11-20T11:11:11+24:00":       "neither",
		"2026-11-20T11:11:11+00:60":       "neither",
		"-24h":                            "neither",
	} {
		if got, err := parseWhen(in, now); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseWhen(%q) = %v, %v; want an error saying %q", in, got, err, msg)
		}
	}
}

// TestQueryRefusesInexactTimes: accessledger query --since with a time
// the log cannot search by fails, naming the flag, and asks nothing.
func TestQueryRefusesInexactTimes(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"count":1,"indexed_size":1}`)
	}))
	defer srv.Close()
	for _, v := range []string{"2026-11-20T11:11:11,1234000001Z", "2026-11-20T11:11:11.1234000001Z"} {
		code, out, errOut := runCLI(t, nil, "query", "--url", srv.URL, "--key", "k", "--since", v, "--count")
		if code == 0 || out != "" || !strings.Contains(errOut, "--since") || !strings.Contains(errOut, v) {
			t.Errorf("query --since %s --count = exit %d %q %q, want an error naming --since and the value", v, code, out, errOut)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 0 {
		t.Errorf("the server was asked %d times", asked)
	}
}

// TestQueryTopNeutralisesText: --top printed each value raw, where the
// table of events neutralises C1 controls and bidirectional overrides: an
// actor id evil\u202egnp.exe showed as evilexe.png, and U+009B began an
// escape sequence on the analyst's terminal. The answer is served by a
// stand-in for a log written before such values were refused.
func TestQueryTopNeutralisesText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events/top" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"field":"actor.id","top":[{"value":"evil\u009b2J\u202egnp.exe","count":7},{"value":"tab\there\nnewline","count":2}],"indexed_size":9}`)
	}))
	defer srv.Close()
	code, out, errOut := runCLI(t, nil, "query", "--url", srv.URL, "--key", "k", "--top", "actor.id")
	if code != 0 || !strings.Contains(out, "evil") || !strings.Contains(out, "gnp.exe") {
		t.Fatalf("query --top = %d %q %q", code, out, errOut)
	}
	if strings.ContainsAny(out, "\u009b\u202e\t") {
		t.Errorf("query --top printed the raw controls: %q", out)
	}
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != 3 {
		t.Errorf("query --top printed %d lines, want a header and 2 rows: %q", len(lines), out)
	}
}

// TestAPIKeyNotInUsage: the commands that talk to a server print their
// flags' defaults in the usage text, on a mistyped flag or -h; the key
// from ACCESSLEDGER_API_KEY was the --key flag's default, so it went to
// terminals and CI logs.
func TestAPIKeyNotInUsage(t *testing.T) {
	const secret = "al_SECRETSECRETSECRET"
	env := []string{"ACCESSLEDGER_API_KEY=" + secret}
	for _, args := range [][]string{
		{"submit", "--bogus", "x"}, {"query", "-h"}, {"export", "--bogus"}, {"alerts", "list", "--bogus"},
	} {
		_, out, errOut := runCLI(t, env, args...)
		if strings.Contains(out+errOut, secret) {
			t.Errorf("accessledger %v printed the API key:\n%s%s", args, out, errOut)
		}
	}
	// The key is still read from the environment.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secret {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"count":3,"indexed_size":3}`)
	}))
	defer srv.Close()
	if code, out, errOut := runCLI(t, env, "query", "--url", srv.URL, "--count", "--service", "sso"); code != 0 || !strings.Contains(out, "3") {
		t.Errorf("query --count with the key in the environment = %d %q %q, want 3", code, out, errOut)
	}
}

// TestQueryTableSaysWhenCut: the table (and json) stop at 100 events
// unless --limit; query --service sso printed 100 rows of 450 matches
// without a word. When the pages stop at the limit with a next one, a
// note on standard error says how many more match (by the count of the
// same filters), or that more may if the count fails; nothing when the
// matches end there.
func TestQueryTableSaysWhenCut(t *testing.T) {
	var total atomic.Int64 // the matches; -1: the count fails
	var counted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n := int(total.Load())
		switch r.URL.Path {
		case "/v1/events/count":
			counted.Add(1)
			if n < 0 || q.Get("cursor") != "" || q.Get("limit") != "" || q.Get("service") != "sso" {
				http.Error(w, `{"error":"no"}`, http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, `{"count":%d,"indexed_size":%d}`, n, n)
		case "/v1/events":
			if n < 0 {
				n = 450
			}
			from, _ := strconv.Atoi(q.Get("cursor"))
			limit, _ := strconv.Atoi(q.Get("limit"))
			var parts []string
			for i := from; i < min(n, from+limit); i++ {
				parts = append(parts, fmt.Sprintf(`{"index":%d,"leaf_hash":"AAAA","entry":{"kind":"event","body":{"service":"sso","actor":{"id":"a%d"}}}}`, i, i))
			}
			next := from + len(parts)
			if q.Get("order") == "desc" && next >= n {
				fmt.Fprintf(w, `{"indexed_size":%d,"events":[%s]}`, n, strings.Join(parts, ","))
				return
			}
			fmt.Fprintf(w, `{"indexed_size":%d,"events":[%s],"next":"%d"}`, n, strings.Join(parts, ","), next)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		matches int64
		args    []string
		rows    int
		note    string // "" for none
		counts  bool   // asks for the count
	}{
		{"cut", 450, nil, 100, "the table stops at 100 events; 350 more match: use --limit N, or --format ndjson or csv", true},
		{"cut by --limit", 450, []string{"--limit", "400"}, 400, "the table stops at 400 events; 50 more match", true},
		{"json", 450, []string{"--format", "json"}, 100, "the JSON stops at 100 events; 350 more match", true},
		// In log order the last page has a next: only the count tells.
		{"exactly the limit", 100, nil, 100, "", true},
		{"fewer", 30, nil, 30, "", false},
		{"newest first, exactly the limit", 100, []string{"--order", "desc"}, 100, "", false},
		{"the count fails", -1, nil, 100, "the table stops at 100 events, and more may match: use --limit N", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total.Store(tc.matches)
			counted.Store(0)
			code, out, errOut := runCLI(t, nil, append([]string{"query", "--url", srv.URL, "--key", "k", "--service", "sso"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("query = exit %d %q", code, errOut)
			}
			rows := strings.Count(out, "\n") - 1 // the header
			if slices.Contains(tc.args, "json") {
				var evs []json.RawMessage
				if err := json.Unmarshal([]byte(out), &evs); err != nil {
					t.Fatal(err)
				}
				rows = len(evs)
			}
			if rows != tc.rows {
				t.Errorf("query %v printed %d events, want %d", tc.args, rows, tc.rows)
			}
			if tc.note == "" && errOut != "" || !strings.Contains(errOut, tc.note) {
				t.Errorf("query %v (%d matches) wrote %q on standard error, want %q", tc.args, tc.matches, errOut, tc.note)
			}
			if got := counted.Load() > 0; got != tc.counts {
				t.Errorf("query %v (%d matches) asked for the count: %v, want %v", tc.args, tc.matches, got, tc.counts)
			}
		})
	}
}

// TestQueryTableShowsEveryKind: the table showed only "(admin)" for an
// admin leaf, "(response)" for a response, "(alert)" for an alert, every
// other column empty; query -h listed no admin kind. Each kind now fills
// the columns with what says most about it. The leaves are encoded as the
// server encodes them.
func TestQueryTableShowsEveryKind(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	must := func(b []byte, err error) json.RawMessage {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	alertIdx := uint64(2)
	a := &event.Alert{DedupKey: "al-bruteforce-fast:k", Time: at, Rule: event.AlertRule{ID: "al-bruteforce-fast", Title: "Fast brute force", Level: event.LevelHigh},
		Group: []event.GroupValue{{Field: "source.ip", Value: "45.83.64.1"}, {Field: "service", Value: "sso"}}, Window: event.Window{Start: at, End: at},
		Evidence: []uint64{1}, EvidenceCount: 6, Summary: "s"}
	ev, err := event.Parse([]byte(`{"time":"2026-11-29T09:59:00Z","service":"sso","actor":{"id":"root"},"source":{"ip":"45.83.64.1"},"action":"login","category":"authentication","outcome":"failure"}`), event.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaves := []json.RawMessage{
		must(event.EncodeAdminLeaf(&event.Admin{Action: event.AdminKeyCreated, Time: at, By: event.AdminByServer, Key: "admin", Roles: []string{"admin"}}, at)),
		must(event.EncodeLeaf(event.KindEvent, at, ev.Canonical())),
		must(event.EncodeAlertLeaf(a, at)),
		must(event.EncodeResponseLeaf(&event.Response{Action: event.ActionDecisionAdded, Time: at, By: "accessledger", DedupKey: a.DedupKey,
			Decision: &event.Decision{ID: 7, Origin: "accessledger", Type: "ban", Scope: "Ip", Value: "45.83.64.1", Scenario: "al-bruteforce-fast", Until: at.Add(4 * time.Hour)}}, at)),
		must(event.EncodeResponseLeaf(&event.Response{Action: event.ActionDelivered, Time: at, Alert: &alertIdx, By: "soc-webhook", Responder: "soc-webhook", Message: "m", Attempts: 2, Status: 200}, at)),
		must(event.EncodeResponseLeaf(&event.Response{Action: event.ActionAcknowledged, Time: at, Alert: &alertIdx, By: "soc-analyst", Note: "mine"}, at)),
		must(event.EncodeResponseLeaf(&event.Response{Action: event.ActionDigest, Time: at, By: "accessledger", Digest: &event.Digest{Start: at.Add(-24 * time.Hour), End: at}}, at)),
		must(event.EncodeAdminLeaf(&event.Admin{Action: event.AdminKeyRevoked, Time: at, By: "ops", Key: "billing-svc", Roles: []string{"submitter"}}, at)),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			http.NotFound(w, r)
			return
		}
		var parts []string
		for i, l := range leaves {
			parts = append(parts, fmt.Sprintf(`{"index":%d,"leaf_hash":"AAAA","entry":%s}`, i, l))
		}
		fmt.Fprintf(w, `{"indexed_size":%d,"events":[%s]}`, len(leaves), strings.Join(parts, ","))
	}))
	defer srv.Close()
	code, out, errOut := runCLI(t, nil, "query", "--url", srv.URL, "--key", "k")
	if code != 0 {
		t.Fatalf("query = exit %d %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("query:\n%s", out)
	if len(lines) != 1+len(leaves) {
		t.Fatalf("query printed %d lines, want a header and %d rows:\n%s", len(lines), len(leaves), out)
	}
	const ts = "2026-11-29T10:00:00"
	for i, want := range [][]string{
		{"0", ts, "(admin)", "accessledger", "key_created", "key/admin"},
		{"1", "2026-11-29T09:59:00", "sso", "root", "45.83.64.1", "login", "failure"},
		{"2", ts, "(alert)", "45.83.64.1", "al-bruteforce-fast", "high", "service=sso"},
		{"3", ts, "(response)", "accessledger", "45.83.64.1", "decision_added", "ban", "decision/7"},
		{"4", ts, "(response)", "soc-webhook", "delivered", "to", "soc-webhook", "status", "200", "alert/2"},
		{"5", ts, "(response)", "soc-analyst", "acknowledged", "alert/2"},
		{"6", ts, "(response)", "accessledger", "digest", "digest/2026-11-28"},
		{"7", ts, "(admin)", "ops", "key_revoked", "key/billing-svc"},
	} {
		got := strings.Fields(lines[1+i])
		if len(got) != len(want) {
			t.Errorf("row %d = %q, want %q", i, got, want)
			continue
		}
		for j := range want {
			if !strings.HasPrefix(got[j], want[j]) { // times carry their fraction
				t.Errorf("row %d = %q, want %q", i, got, want)
				break
			}
		}
	}
	if _, _, usage := runCLI(t, nil, "query", "-h"); !strings.Contains(usage, "(event, alert, response, admin)") {
		t.Errorf("query -h = %q, want the kinds event, alert, response, admin", usage)
	}
}
