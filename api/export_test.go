package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/accessledger/accessledger/api"
	evpkg "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// newExportServer is newQueryServer with the ledger's bundle cache set
// to cacheBytes (1: nothing is ever cached).
func newExportServer(t testing.TB, cacheBytes int64) *queryServer {
	t.Helper()
	return newQueryServer(t, func(c *ledger.Config) { c.BundleCacheBytes = cacheBytes })
}

// oldEventLine is one NDJSON line of an export as the server wrote it
// before exports read bundle by bundle (appendEventJSON and leafHash of
// that version, verbatim but for the newline): the reference the new
// code must match byte for byte.
func oldEventLine(b []byte, index uint64, entry []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	sum := [32]byte(h.Sum(nil))
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, `,"leaf_hash":"`...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	if jsontext.Value(entry).IsValid() {
		b = append(b, `","entry":`...)
		b = append(b, entry...)
	} else {
		b = append(b, `","entry_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, entry)
		b = append(b, '"')
	}
	return append(append(b, '}'), '\n')
}

// oddEntries are leaves the API never writes, appended straight to the
// ledger: an export must embed each exactly as before (as entry if
// jsontext finds it valid, else as entry_base64).
func oddEntries() [][]byte {
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	var many strings.Builder
	many.WriteString(`{"kind":"many"`)
	for i := range 200 {
		fmt.Fprintf(&many, `,"k%d":"v"`, i)
	}
	many.WriteString("}")
	big := `{"kind":"big","pad":"` + strings.Repeat("x0123456789", 5900) + `"}`
	return [][]byte{
		[]byte(`not json at all`),
		[]byte(`{"kind": "spaced", "x": [1, 2]}`),
		[]byte(` {"kind":"ws"} `),
		[]byte(`{"kind":"dup","a":1,"a":2}`),
		[]byte(`{"kind":"dup-escaped","a":1,"\u0061":2}`),
		[]byte(`{"kind":"esc","s":"\u00e9\ud83d\ude00"}`),
		[]byte(`{"kind":"lone","s":"\ud800"}`),
		[]byte(`{"kind":"utf8","s":"é日本","é":true}`),
		[]byte("{\"kind\":\"bad-utf8\",\"s\":\"\xff\"}"),
		[]byte("{\"kind\":\"ctl\",\"s\":\"a\tb\"}"),
		[]byte(`{"kind":"num","n":-0.5e+10,"m":01}`),
		[]byte(`{"kind":"x"}x`),
		[]byte(`{"kind":"name\"esc","a":null}`),
		[]byte(`[1,2,3]`),
		[]byte(`"a string"`),
		[]byte(deep),
		[]byte(many.String()),
		[]byte(big),
	}
}

// fillExportLog posts n events (qevents) and, every 97 events, the odd
// entries, so that the odd ones fall at bundle boundaries and inside
// bundles, then waits for the index. It returns the log size.
func fillExportLog(t testing.TB, qs *queryServer, n int) uint64 {
	t.Helper()
	odd := oddEntries()
	for first := 0; first < n; first += 97 {
		k := min(97, n-first)
		qs.post(t, first, qevents(first, k))
		entries := make([]ledger.Entry, 0, len(odd))
		for _, o := range odd[first/97%3:] { // vary the count, hence the offsets
			entries = append(entries, ledger.Entry{Data: o})
		}
		if _, err := qs.l.Append(bg, entries...); err != nil {
			t.Fatalf("Append(odd entries) = %v", err)
		}
	}
	size, _ := qs.l.Size()
	if size%ledger.TileWidth == 0 { // keep a partial last bundle
		if _, err := qs.l.Append(bg, ledger.Entry{Data: odd[0]}); err != nil {
			t.Fatal(err)
		}
		size++
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := qs.x.Wait(ctx, size); err != nil {
		t.Fatalf("Index.Wait(%d) = %v", size, err)
	}
	return size
}

// stream GETs path with Accept: application/x-ndjson and returns the
// body.
func (qs *queryServer) stream(t testing.TB, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", qs.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+qs.auditor())
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET %s = %d %v %s", path, resp.StatusCode, resp.Header, body)
	}
	return body
}

// TestExportNDJSONUnchanged: the NDJSON export of a log equals, byte for
// byte, what the server wrote before exports read bundle by bundle
// (oldEventLine over each match, read entry by entry): filtered and not,
// in both orders, with limits ending inside and at the edge of bundles,
// from a cursor, across bundle boundaries, through the partial last
// bundle, over leaves that are not valid JSON or not canonical, with the
// bundle cache (full bundles read from it) and without.
func TestExportNDJSONUnchanged(t *testing.T) {
	for _, cache := range []struct {
		name  string
		bytes int64
	}{{"nocache", 1}, {"cache", 32 << 20}} {
		t.Run(cache.name, func(t *testing.T) {
			qs := newExportServer(t, cache.bytes)
			size := fillExportLog(t, qs, 1400)
			if size%ledger.TileWidth == 0 || size < 5*ledger.TileWidth {
				t.Fatalf("log size %d: want several bundles and a partial last one", size)
			}
			// A cursor from the middle of bundle 2.
			r := qs.get(t, "/v1/events?limit=600", qs.auditor())
			var page struct{ Next string }
			if err := json.Unmarshal(r.body, &page); err != nil || page.Next == "" {
				t.Fatalf("page: %v %s", err, r.body)
			}
			for _, tc := range []struct {
				query string
				q     index.Query
				from  uint64
				desc  bool
				limit int
			}{
				{query: ""},
				{query: "order=desc", desc: true},
				{query: "action=login", q: index.Query{Action: []string{"login"}}},
				{query: "action=login&order=desc", q: index.Query{Action: []string{"login"}}, desc: true},
				{query: "limit=256", limit: 256},
				{query: "limit=257", limit: 257},
				{query: "limit=300&action=read", q: index.Query{Action: []string{"read"}}, limit: 300},
				{query: "limit=1&order=desc", desc: true, limit: 1},
				{query: "cursor=" + page.Next, from: 600},
				{query: "format=ndjson&actor=user-3", q: index.Query{Actor: []string{"user-3"}}},
				{query: "actor=nobody", q: index.Query{Actor: []string{"nobody"}}},
			} {
				var want []byte
				n := 0
				if _, err := qs.x.Search(bg, tc.q, tc.from, size, tc.desc, func(i uint64) bool {
					entry, _, err := qs.l.Entry(bg, i)
					if err != nil {
						t.Fatalf("Entry(%d) = %v", i, err)
					}
					want = oldEventLine(want, i, entry)
					n++
					return tc.limit == 0 || n < tc.limit
				}); err != nil {
					t.Fatal(err)
				}
				for pass := range 2 { // the second with whatever the first cached
					got := qs.stream(t, "/v1/events?"+tc.query)
					if !bytes.Equal(got, want) {
						t.Fatalf("GET /v1/events?%s (pass %d): %d bytes (%d lines), want %d bytes (%d lines); first difference at byte %d",
							tc.query, pass, len(got), bytes.Count(got, []byte("\n")), len(want), n, firstDiff(got, want))
					}
				}
				if tc.query == "" && !bytes.Contains(want, []byte(`"entry_base64":"`)) {
					t.Errorf("no entry of the log is exported as entry_base64")
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestExportClientGone: a client that stops reading mid-export does not
// stall the server: later exports and queries are answered.
func TestExportClientGone(t *testing.T) {
	qs := newExportServer(t, 1)
	fillExportLog(t, qs, 1000)
	for range 5 {
		ctx, cancel := context.WithCancel(bg)
		req, _ := http.NewRequestWithContext(ctx, "GET", qs.srv.URL+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+qs.auditor())
		req.Header.Set("Accept", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, 1000))
		cancel()
		resp.Body.Close()
	}
	if got := qs.ndjson(t, "/v1/events?action=login"); len(got) == 0 {
		t.Fatal("no login events after the abandoned exports")
	}
}

// benchEventLeaf is the canonical leaf of a loadgen-like event: one in
// seven is a login.
func benchEventLeaf(t testing.TB, n int, now time.Time) []byte {
	action := []string{"read", "read", "read", "update", "login", "create", "logout"}[n%7]
	raw := fmt.Appendf(nil, `{"time":%q,"service":"billing-api","actor":{"id":"user-%d","type":"user","session":"s%x"},`+
		`"source":{"ip":"10.%d.%d.%d","port":%d,"user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0","geo":{"country":"DE"}},`+
		`"action":%q,"category":"data_access","outcome":"success","mfa":true,"request_id":"%016x","tenant":"acme"}`,
		now.Add(-time.Duration(n)*time.Millisecond).Format(time.RFC3339Nano), n%5000, n*7919, n>>16&255, n>>8&255, n&255, 1024+n%60000, action, uint64(n)*0x9e3779b97f4a7c15)
	ev, err := evpkg.Parse(raw, evpkg.ParseOptions{})
	if err != nil {
		t.Fatalf("event.Parse(%s) = %v", raw, err)
	}
	leaf, err := evpkg.EncodeLeaf(evpkg.KindEvent, now, ev.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// BenchmarkExport measures exports (GET /v1/events?action=login as a
// stream) of a 200,000-entry log: about 28,600 matches spread over every
// bundle, as in the 1,000,000-event benchmark of BENCHMARKS.md; events/s
// counts matches. "loopback" streams NDJSON (Accept:
// application/x-ndjson) to an HTTP client on 127.0.0.1 that discards what
// it reads; the others call ServeHTTP with a discarding writer, so that a
// profile shows the server's costs only. The ledger's bundle cache holds
// 32 MiB, a sixth of the log's bundles.
//
//	go test ./api -run '^$' -bench Export -benchtime 10x
func BenchmarkExport(b *testing.B) {
	const n = 200_000
	qs := newExportServer(b, 32<<20)
	now := time.Now().UTC()
	for first := 0; first < n; first += 1000 {
		entries := make([]ledger.Entry, 1000)
		for i := range entries {
			entries[i].Data = benchEventLeaf(b, first+i, now)
		}
		if _, err := qs.l.Append(bg, entries...); err != nil {
			b.Fatalf("Append() = %v", err)
		}
	}
	size, _ := qs.l.Size()
	ctx, cancel := context.WithTimeout(bg, 5*time.Minute)
	defer cancel()
	if err := qs.x.Wait(ctx, size); err != nil {
		b.Fatalf("Index.Wait(%d) = %v", size, err)
	}
	matches, _, err := qs.x.Count(bg, index.Query{Action: []string{"login"}})
	if err != nil {
		b.Fatal(err)
	}
	const path = "/v1/events?action=login"
	b.Run("ndjson/loopback", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("GET", qs.srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+qs.auditor())
			req.Header.Set("Accept", "application/x-ndjson")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			got, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || got == 0 {
				b.Fatalf("GET %s = %d, %d bytes, %v", path, resp.StatusCode, got, err)
			}
			b.SetBytes(got)
		}
		b.ReportMetric(float64(matches)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, format := range []string{"ndjson", "csv", "ocsf"} {
		b.Run(format+"/handler", func(b *testing.B) {
			h := qs.api.Handler()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", path+"&format="+format, nil)
				req.Header.Set("Authorization", "Bearer "+qs.auditor())
				w := &discardWriter{header: http.Header{}}
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK || w.n == 0 {
					b.Fatalf("GET %s = %d, %d bytes", path, w.status, w.n)
				}
				b.SetBytes(w.n)
			}
			b.ReportMetric(float64(matches)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// discardWriter is an http.ResponseWriter that counts and drops the body.
type discardWriter struct {
	header http.Header
	status int
	n      int64
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += int64(len(b))
	return len(b), nil
}
func (w *discardWriter) Flush() {}

// TestExportEndsWhenKeyRevoked: an export and an evidence bundle check
// their key as they go. A key revoked while its export ran went on
// receiving the log to the end (39 s and 12.7 MB after the revocation, in
// the reviewer's run); an evidence bundle went on too.
func TestExportEndsWhenKeyRevoked(t *testing.T) {
	qs := newExportServer(t, 0)
	const n = 20_000 // about 10 MB of NDJSON: more than the sockets' buffers hold
	qs.post(t, 0, qevents(0, n))
	if _, err := qs.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/events?format=ndjson", fmt.Sprintf("/v1/evidence?limit=%d", n)} {
		t.Run(path, func(t *testing.T) {
			tokens := maps.Clone(qs.tokens)
			qs.api.SetKeyring(mustKeyring(t, tokens))
			lines, err := readRevokedMidway(t, qs, path, func() {
				delete(tokens, api.RoleAuditor) // the auditor's key removed: revoked
				qs.api.SetKeyring(mustKeyring(t, tokens))
			})
			if err == nil || lines >= n {
				t.Errorf("GET %s after its key was revoked: %d lines of %d events, then %v; want it cut short with an error", path, lines, n, err)
			}
		})
	}
}

// readRevokedMidway GETs path as the auditor through a slow reader, reads
// 4 KiB, calls revoke, then reads the rest: it returns the lines read and
// how the answer ended.
func readRevokedMidway(t *testing.T, qs *queryServer, path string, revoke func()) (int, error) {
	t.Helper()
	conn, err := net.Dial("tcp", qs.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(16 << 10) // a slow reader
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", path, qs.auditor())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %v, %v", path, resp, err)
	}
	defer resp.Body.Close()
	first := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server now waits for the reader
	revoke()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	rest, err := io.ReadAll(resp.Body)
	return bytes.Count(first, []byte("\n")) + bytes.Count(rest, []byte("\n")), err
}
